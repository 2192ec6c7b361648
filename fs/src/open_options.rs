//! [`OpenOptions`]: how to open a file, like `std::fs::OpenOptions`, plus `openat2` resolve flags.

use crate::error::with_path;
use crate::openat::{openat2, openat2_into};
use crate::{DirectFile, File};
use hoop_runtime::op::at::At;
use hoop_runtime::Credentials;
use std::io;
use std::path::Path;

/// Options for opening a file; `open(path).await` opens it.
///
/// ```
/// # hoop_runtime::block_on(async {
/// let dir = std::env::temp_dir().join(format!("hoop-doc-oo-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let f = hoop_fs::OpenOptions::new()
///     .write(true)
///     .create_new(true)
///     .mode(0o600)
///     .open(dir.join("new.txt"))
///     .await
///     .unwrap();
/// f.write_all_at(b"x".to_vec(), 0).await.0.unwrap();
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
    resolve: u64,
    creds: Option<Credentials>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// All options off, mode `0o666` (before the umask).
    pub fn new() -> Self {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
            resolve: 0,
            creds: None,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.read = on;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut Self {
        self.write = on;
        self
    }

    /// Writes go to the end of the file (`O_APPEND`); implies write.
    pub fn append(&mut self, on: bool) -> &mut Self {
        self.append = on;
        self
    }

    /// Truncate to zero length (`O_TRUNC`).
    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.truncate = on;
        self
    }

    /// Create if missing (`O_CREAT`).
    pub fn create(&mut self, on: bool) -> &mut Self {
        self.create = on;
        self
    }

    /// Create, failing if it exists (`O_CREAT | O_EXCL`).
    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.create_new = on;
        self
    }

    /// Permission bits for a created file (before the umask).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Extra `O_*` flags (`O_DIRECT`, `O_NOFOLLOW`, `O_NOATIME`, …); the access mode bits are
    /// ignored.
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// `RESOLVE_*` flags for `openat2(2)` (e.g. `libc::RESOLVE_NO_SYMLINKS`).
    pub fn resolve(&mut self, flags: u64) -> &mut Self {
        self.resolve = flags;
        self
    }

    /// Opens (and later operates on the file) as another user; see [`Credentials`].
    pub fn credentials(&mut self, creds: Credentials) -> &mut Self {
        self.creds = Some(creds);
        self
    }

    pub(crate) fn flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let writable = self.write || self.append;
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            _ if !writable => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            (_, true, _) if self.append => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }

    /// Opens `path` with these options.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        self.open_at(At::cwd(), path, 0, None)
            .await
            .map_err(with_path("open", path))
    }

    /// Opens `path` into a direct descriptor of this worker's ring (see [`DirectFile`]): the
    /// file never enters the process's fd table. A plain fd where the worker has none.
    ///
    /// ```
    /// # hoop_runtime::block_on(async {
    /// # let path = std::env::temp_dir().join(format!("hoop-doc-direct-{}", std::process::id()));
    /// let file = hoop_fs::OpenOptions::new()
    ///     .read(true)
    ///     .write(true)
    ///     .create(true)
    ///     .open_direct(&path)
    ///     .await
    ///     .unwrap();
    /// file.write_all_at(b"direct".to_vec(), 0).await.0.unwrap();
    /// let (res, buf) = file.read_exact_at(vec![0u8; 6], 0).await;
    /// res.unwrap();
    /// assert_eq!(buf, b"direct");
    /// # std::fs::remove_file(&path).unwrap();
    /// # });
    /// ```
    pub async fn open_direct(&self, path: impl AsRef<Path>) -> io::Result<DirectFile> {
        let path = path.as_ref();
        let flags = self.flags().map_err(with_path("open", path))?;
        let creds = self.creds.clone();
        let fd = openat2_into(
            &At::cwd(),
            path,
            (flags, self.mode, self.resolve),
            creds.as_ref(),
            true,
        )
        .await
        .map_err(with_path("open", path))?;
        let file = File::from_shared(fd, Some(path)).with_credentials(creds);
        Ok(DirectFile::new(file))
    }

    /// Opens `path` under `at`, adding `resolve` to the options' own resolve flags.
    pub(crate) async fn open_at(
        &self,
        at: At,
        path: &Path,
        resolve: u64,
        creds: Option<&Credentials>,
    ) -> io::Result<File> {
        let flags = self.flags()?;
        let creds = self.creds.as_ref().or(creds).cloned();
        let fd = openat2(
            &at,
            path,
            flags,
            self.mode,
            self.resolve | resolve,
            creds.as_ref(),
        )
        .await?;
        Ok(File::from_shared(fd, Some(path)).with_credentials(creds))
    }
}

#[cfg(test)]
mod tests {
    use super::OpenOptions;

    #[test]
    fn flags_follow_std_rules() {
        let mut o = OpenOptions::new();
        assert!(o.flags().is_err(), "no access mode");
        o.read(true);
        assert_eq!(o.flags().unwrap(), libc::O_RDONLY);
        o.create(true);
        assert!(o.flags().is_err(), "create needs write");
        o.write(true);
        assert_eq!(o.flags().unwrap(), libc::O_RDWR | libc::O_CREAT);
        o.append(true).truncate(true);
        assert!(o.flags().is_err(), "append + truncate");
        let mut o = OpenOptions::new();
        o.write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_RDWR);
        assert_eq!(
            o.flags().unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW
        );
    }
}
