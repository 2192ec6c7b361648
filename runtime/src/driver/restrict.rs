//! [`OpClass`]: the opcode allowlist of a restricted ring (`IORING_REGISTER_RESTRICTIONS`).
//!
//! A sandboxed server can create its rings disabled, register which SQE opcodes (and which
//! `io_uring_register` calls) they accept, and only then enable them: an SQE outside the list
//! fails with `EACCES`, so a bug or an attacker steering the server cannot reach the rest of
//! io_uring's kernel surface through its rings. The runtime's own machinery (cancels, readiness
//! polls — the doorbell too is a poll on a restricted ring — and no-ops) is always allowed.
//! Operations that would run outside the ring (no opcode, or one the kernel lacks: the blocking
//! pool or a syscall on the worker) are held to the same list: one that is not on it fails with
//! `EACCES` too (`OpTraits::ring_equivalent` names the opcode an operation without one stands
//! for).

use io_uring::opcode;

/// A group of operations a restricted ring allows (see [`Builder::restrict_to`]).
///
/// [`Builder::restrict_to`]: crate::Builder::restrict_to
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpClass {
    /// Reads and writes on open files (plain, vectored, registered buffers), fsync,
    /// fallocate, fadvise, ftruncate, statx of an open file, close.
    Files,
    /// Opening and path operations: openat2, statx, rename, unlink, mkdir, symlink, link,
    /// and the xattr calls.
    Paths,
    /// Sockets: accept, connect, send/recv (plain, vectored, zero-copy, msg), shutdown, and
    /// reads and writes on them.
    Net,
    /// splice and tee.
    Splice,
}

/// Opcodes, by code and by name (the names let a test check that every opcode the runtime
/// builds is classified).
#[derive(Clone, Copy)]
struct Opcodes {
    codes: &'static [u8],
    #[cfg_attr(not(test), allow(dead_code))]
    names: &'static [&'static str],
}

macro_rules! opcodes {
    ($($name:ident),* $(,)?) => {
        Opcodes {
            codes: &[$(opcode::$name::CODE),*],
            names: &[$(stringify!($name)),*],
        }
    };
}

impl OpClass {
    fn opcodes(self) -> Opcodes {
        match self {
            OpClass::Files => opcodes![
                Read, Write, Readv, Writev, ReadFixed, WriteFixed, Fsync, Fallocate, Fadvise,
                Ftruncate, Statx, Close
            ],
            OpClass::Paths => opcodes![
                OpenAt, OpenAt2, Statx, RenameAt, UnlinkAt, MkDirAt, SymlinkAt, LinkAt, GetXattr,
                SetXattr, FGetXattr, FSetXattr, Close
            ],
            OpClass::Net => opcodes![
                Accept,
                AcceptMulti,
                Connect,
                Send,
                Recv,
                RecvMulti,
                RecvMultiBundle,
                SendMsg,
                RecvMsg,
                SendZc,
                SendMsgZc,
                Shutdown,
                Read,
                Write,
                Readv,
                Writev,
                Close
            ],
            OpClass::Splice => opcodes![Splice, Tee],
        }
    }
}

/// Opcodes the runtime itself submits: cancels, readiness polls (and the doorbell's), no-ops,
/// and closes (every class's fds are closed through the ring; a refused close would leak).
const RUNTIME_OPCODES: Opcodes = opcodes![Close, AsyncCancel, PollAdd, PollRemove, Nop];

/// Opcodes the runtime uses only on unrestricted rings: `MSG_RING` (its fd-passing form would
/// let a restricted ring install files in other rings; a restricted ring rings other workers
/// by eventfd) and `FIXED_FD_INSTALL` (restricted rings have no direct descriptors).
#[cfg(test)]
const UNRESTRICTED_ONLY: Opcodes = opcodes![MsgRingData, MsgRingSendFd, FixedFdInstall];

/// The sorted, deduplicated opcode list for `classes`, with the runtime's own.
pub(crate) fn allowlist(classes: &[OpClass]) -> Vec<u8> {
    let mut ops: Vec<u8> = RUNTIME_OPCODES.codes.to_vec();
    for c in classes {
        ops.extend_from_slice(c.opcodes().codes);
    }
    ops.sort_unstable();
    ops.dedup();
    ops
}

/// `IORING_UNREGISTER_RING_FDS`.
pub(crate) const UNREGISTER_RING_FDS: u8 = 21;

/// `io_uring_register` calls a restricted ring still accepts: registered buffers, buffer rings
/// and personalities (each has a fallback if refused, but a sandbox usually wants them).
pub(crate) const REGISTER_OPS: &[u8] = &[
    0,                   // IORING_REGISTER_BUFFERS
    1,                   // IORING_UNREGISTER_BUFFERS
    8,                   // IORING_REGISTER_PROBE
    9,                   // IORING_REGISTER_PERSONALITY
    10,                  // IORING_UNREGISTER_PERSONALITY
    15,                  // IORING_REGISTER_BUFFERS2
    16,                  // IORING_REGISTER_BUFFERS_UPDATE
    UNREGISTER_RING_FDS, // the worker's ring fd, registered before the restrictions, is
    //                      released with the runtime (else the thread's table keeps the ring)
    22, // IORING_REGISTER_PBUF_RING
    23, // IORING_UNREGISTER_PBUF_RING
];

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [OpClass; 4] = [
        OpClass::Files,
        OpClass::Paths,
        OpClass::Net,
        OpClass::Splice,
    ];

    /// The `opcode::Name::` uses in the runtime's sources, outside this file.
    fn opcodes_built() -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("restrict.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("opcode::") {
                    let rest = &text[at + "opcode::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    let starts_upper = name.starts_with(|c: char| c.is_ascii_uppercase());
                    if starts_upper && rest[name.len()..].starts_with("::") {
                        found.push((name, path.display().to_string()));
                    }
                }
            }
        }
        found
    }

    /// Every opcode an operation (or the runtime) builds is in some class or the runtime's own
    /// list: an unclassified one would fail with `EACCES` on every restricted ring. Adding an
    /// op whose opcode no class names fails here.
    #[test]
    fn every_opcode_the_runtime_builds_is_classified() {
        if !crate::layers::sources_here() {
            return;
        }
        let built = opcodes_built();
        assert!(
            built.len() > 30,
            "the source scan found too little: {built:?}"
        );
        let classified: Vec<&str> = ALL
            .iter()
            .flat_map(|c| c.opcodes().names.iter().copied())
            .chain(RUNTIME_OPCODES.names.iter().copied())
            .chain(UNRESTRICTED_ONLY.names.iter().copied())
            .collect();
        let missing: Vec<_> = built
            .iter()
            .filter(|(name, _)| !classified.contains(&name.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "opcodes in no OpClass (driver/restrict.rs): {missing:?}"
        );
    }

    #[test]
    fn the_allowlist_is_sorted_and_holds_the_runtime_opcodes() {
        let list = allowlist(&[OpClass::Splice]);
        assert!(list.windows(2).all(|w| w[0] < w[1]));
        for code in RUNTIME_OPCODES
            .codes
            .iter()
            .chain(OpClass::Splice.opcodes().codes)
        {
            assert!(list.contains(code));
        }
        assert!(!list.contains(&opcode::Read::CODE));
    }
}
