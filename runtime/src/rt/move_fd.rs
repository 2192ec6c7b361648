//! [`Handle::spawn_on_with_fd`]: hand a connection (any fd, or a direct descriptor) to another
//! worker, as an acceptor thread hands connections to the workers of a thread-per-core server.

use super::context;
use super::handle::Handle;
use super::shared::Remote;
use crate::fd::SharedFd;
use crate::op::direct::InstallFd;
use crate::op::send_fd::SendFd;
use crate::op::Op;
use crate::task::JoinHandle;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;

impl Handle {
    /// Moves `fd` to worker `worker` and spawns the future `make(fd)` builds there; `fd` is
    /// the worker's own from then on. Call it on a worker of this runtime.
    ///
    /// A plain fd travels as itself. A direct descriptor (see [`SharedFd::direct_slot`]) is put
    /// in the target ring's table by this worker's ring (`IORING_OP_MSG_RING` with
    /// `IORING_MSG_SEND_FD`): no fd is ever made for it, and the target, woken by the message,
    /// owns the new slot; this worker's slot is closed. Where the target cannot take it (its
    /// table is full, or the rings exchange no messages: epoll, restricted rings, before 6.3
    /// with the default ring setup) the descriptor is given an fd (`FIXED_FD_INSTALL`, 6.8)
    /// and travels as that; before 6.8 it cannot move, and `fd` comes back with the error.
    ///
    /// ```
    /// # let rt = hoop_runtime::Runtime::builder().workers(2).build().unwrap();
    /// # rt.block_on(async {
    /// use hoop_runtime::fd::SharedFd;
    /// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let handle = hoop_runtime::Handle::current();
    /// let done = handle
    ///     .spawn_on_with_fd(1, SharedFd::new(a.into()), |fd| async move {
    ///         // On worker 1, which owns the fd now.
    ///         let buf = b"moved".to_vec();
    ///         let op = hoop_runtime::op::send_recv::Send::new(&fd, buf, 0);
    ///         hoop_runtime::op::Op::new(op).await.0.unwrap()
    ///     })
    ///     .await
    ///     .map_err(|(e, _)| e)
    ///     .unwrap();
    /// assert_eq!(done.await.unwrap(), 5);
    /// # drop(b);
    /// # });
    /// ```
    pub async fn spawn_on_with_fd<M, F>(
        &self,
        worker: usize,
        fd: SharedFd,
        make: M,
    ) -> Result<JoinHandle<F::Output>, (io::Error, SharedFd)>
    where
        M: FnOnce(SharedFd) -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let Some(target) = self.shared().get(worker).cloned() else {
            let count = self.workers();
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("worker {worker} out of range: the runtime has {count}"),
            );
            return Err((e, fd));
        };
        let here = context::with_core(|core| core.shared.id);
        if here == Some(target.id) {
            // Already there.
            return Ok(super::spawn::spawn(make(fd)));
        }
        let fd = match fd.try_unwrap() {
            Ok(owned) => return Ok(spawn_with_owned(self, worker, owned, make)),
            Err(fd) => fd,
        };
        if fd.direct_slot().is_none() || !fd.is_unique() {
            // Another holder (an operation, a receive stream) would keep using it here.
            let e = io::Error::other("hoop: the fd is still in use by an operation");
            return Err((e, fd));
        }
        if let Some((ring, budget)) = target.fd_target() {
            // A place in the target's table first: a send the kernel cannot place fails, but one
            // it places past the budget could make one of the target's accepts fail.
            if budget.take() {
                let closer = target.clone();
                // The target adopts (and so closes) a slot nobody is left to hand over.
                let orphan = Box::new(move |slot: u32| {
                    let _ = closer.push(Remote::Spawn(Box::new(move || drop(adopt(slot)))));
                });
                match Op::new(SendFd::new(&fd, ring, budget, orphan)).await {
                    Ok(slot) => {
                        // The connection lives on in the target's table.
                        fd.keep_connection();
                        drop(fd);
                        // Aborted on the way, the task never adopts the slot: it is adopted and
                        // closed there all the same.
                        return Ok(self.spawn_remote(
                            worker,
                            move || {
                                make(
                                    adopt(slot)
                                        .expect("a worker that takes descriptors has a table"),
                                )
                            },
                            move || drop(adopt(slot)),
                        ));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EOVERFLOW) => {
                        // Placed in the target, whose completion queue could not say where:
                        // the slot stays there (and in the budget) until its table goes. The
                        // connection stays here rather than exist twice.
                        return Err((e, fd));
                    }
                    // The op gave its place back.
                    Err(_) => {}
                }
            }
        }
        match Op::new(InstallFd::new(&fd)).await {
            Ok(owned) => Ok(spawn_with_owned(self, worker, owned, make)),
            Err(e) => Err((e, fd)),
        }
    }
}

/// Takes ownership, on the worker running this, of the descriptor another worker's ring put in
/// `slot` (with its place in this worker's budget).
fn adopt(slot: u32) -> Option<SharedFd> {
    Some(crate::driver::direct_table()?.adopt(slot))
}

fn spawn_with_owned<M, F>(
    handle: &Handle,
    worker: usize,
    owned: OwnedFd,
    make: M,
) -> JoinHandle<F::Output>
where
    M: FnOnce(SharedFd) -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    handle.spawn_on_with(worker, move || make(SharedFd::new(owned)))
}
