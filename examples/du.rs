//! Walks a directory tree and prints the size of each top-level entry, like `du -s *`: directory
//! listings and `statx` calls run concurrently (up to `--jobs` at once), all through the ring.
//!
//! ```sh
//! cargo run --release --example du -- [DIR] [--jobs N]
//! ```

#[path = "common/args.rs"]
mod args;

use hoop::fs::{self, FileType};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// A counting semaphore for `!Send` tasks on one worker.
struct Limit {
    free: Cell<usize>,
    waiting: RefCell<VecDeque<Waker>>,
}

impl Limit {
    async fn acquire(self: &Rc<Self>) -> Permit {
        std::future::poll_fn(|cx| {
            if self.free.get() == 0 {
                self.waiting.borrow_mut().push_back(cx.waker().clone());
                return Poll::Pending;
            }
            self.free.set(self.free.get() - 1);
            Poll::Ready(Permit(self.clone()))
        })
        .await
    }
}

struct Permit(Rc<Limit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.free.set(self.0.free.get() + 1);
        if let Some(w) = self.0.waiting.borrow_mut().pop_front() {
            w.wake();
        }
    }
}

/// Bytes allocated under `path` (not following symlinks; hard links counted once per walk).
fn walk(path: PathBuf, limit: Rc<Limit>) -> Pin<Box<dyn Future<Output = io::Result<u64>>>> {
    Box::pin(async move {
        let meta = {
            let _p = limit.acquire().await;
            fs::symlink_metadata(&path).await?
        };
        let mut total = meta.blocks() * 512;
        if meta.file_type() != FileType::Dir {
            return Ok(total);
        }
        let mut children = Vec::new();
        {
            let _p = limit.acquire().await;
            let mut entries = fs::read_dir(&path).await?;
            while let Some(entry) = entries.next_entry().await? {
                children.push(hoop::spawn(walk(entry.path(), limit.clone())));
            }
        }
        for child in children {
            match child.await? {
                Ok(n) => total += n,
                // Vanished or unreadable entries are reported and skipped, like du does.
                Err(e) => eprintln!("du: {e}"),
            }
        }
        Ok(total)
    })
}

#[hoop::main(workers = 1)]
async fn main() -> io::Result<()> {
    let mut root = PathBuf::from(".");
    let mut jobs = 64;
    let mut args = args::Args::new("du", "[DIR] [--jobs N]");
    let mut dir_given = false;
    while let Some(arg) = args.next() {
        match arg {
            args::Arg::Flag(f) if f == "jobs" => {
                jobs = args.value::<std::num::NonZeroUsize>("jobs").get()
            }
            args::Arg::Word(dir) if !dir_given => {
                root = PathBuf::from(dir);
                dir_given = true;
            }
            other => args.unknown(other),
        }
    }
    let limit = Rc::new(Limit {
        free: Cell::new(jobs.max(1)),
        waiting: RefCell::new(VecDeque::new()),
    });
    let mut entries = fs::read_dir(&root).await?;
    let mut tops = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        tops.push((name, hoop::spawn(walk(entry.path(), limit.clone()))));
    }
    let mut sizes = Vec::new();
    for (name, h) in tops {
        match h.await? {
            Ok(n) => sizes.push((n, name)),
            Err(e) => eprintln!("du: {e}"),
        }
    }
    sizes.sort();
    let mut total = 0;
    for (n, name) in &sizes {
        total += n;
        println!("{:>10}K  {}", n / 1024, name);
    }
    println!("{:>10}K  total", total / 1024);
    Ok(())
}
