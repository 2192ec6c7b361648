//! [`OpClass`]: the opcode allowlist of a restricted ring (`IORING_REGISTER_RESTRICTIONS`).
//!
//! A sandboxed server can create its rings disabled, register which SQE opcodes (and which
//! `io_uring_register` calls) they accept, and only then enable them: an SQE outside the list
//! fails with `EACCES`, so a bug or an attacker steering the server cannot reach the rest of
//! io_uring's kernel surface through its rings. The runtime's own machinery (cancels, readiness
//! polls — the doorbell too is a poll on a restricted ring — and no-ops) is always allowed.
//! Operations that would run outside the ring (no opcode, or one the kernel lacks: the blocking
//! pool or a syscall on the worker) are held to the same list: one that is not on it fails with
//! `EACCES` too (`OpCode::ring_equivalent` names the opcode an operation without one stands
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

impl OpClass {
    fn opcodes(self) -> &'static [u8] {
        match self {
            OpClass::Files => &[
                opcode::Read::CODE,
                opcode::Write::CODE,
                opcode::Readv::CODE,
                opcode::Writev::CODE,
                opcode::ReadFixed::CODE,
                opcode::WriteFixed::CODE,
                opcode::Fsync::CODE,
                opcode::Fallocate::CODE,
                opcode::Fadvise::CODE,
                opcode::Ftruncate::CODE,
                opcode::Statx::CODE,
                opcode::Close::CODE,
            ],
            OpClass::Paths => &[
                opcode::OpenAt::CODE,
                opcode::OpenAt2::CODE,
                opcode::Statx::CODE,
                opcode::RenameAt::CODE,
                opcode::UnlinkAt::CODE,
                opcode::MkDirAt::CODE,
                opcode::SymlinkAt::CODE,
                opcode::LinkAt::CODE,
                opcode::GetXattr::CODE,
                opcode::SetXattr::CODE,
                opcode::FGetXattr::CODE,
                opcode::FSetXattr::CODE,
                opcode::Close::CODE,
            ],
            OpClass::Net => &[
                opcode::Accept::CODE,
                opcode::AcceptMulti::CODE,
                opcode::Connect::CODE,
                opcode::Send::CODE,
                opcode::Recv::CODE,
                opcode::RecvMulti::CODE,
                opcode::SendMsg::CODE,
                opcode::RecvMsg::CODE,
                opcode::SendZc::CODE,
                opcode::SendMsgZc::CODE,
                opcode::Shutdown::CODE,
                opcode::Read::CODE,
                opcode::Write::CODE,
                opcode::Readv::CODE,
                opcode::Writev::CODE,
                opcode::Close::CODE,
            ],
            OpClass::Splice => &[opcode::Splice::CODE, opcode::Tee::CODE],
        }
    }
}

/// Opcodes the runtime itself submits: cancels, readiness polls (and the doorbell's), no-ops,
/// and closes (every class's fds are closed through the ring; a refused close would leak).
const RUNTIME_OPCODES: &[u8] = &[
    opcode::Close::CODE,
    opcode::AsyncCancel::CODE,
    opcode::PollAdd::CODE,
    opcode::PollRemove::CODE,
    opcode::Nop::CODE,
];

/// The sorted, deduplicated opcode list for `classes`, with the runtime's own.
pub(crate) fn allowlist(classes: &[OpClass]) -> Vec<u8> {
    let mut ops: Vec<u8> = RUNTIME_OPCODES.to_vec();
    for c in classes {
        ops.extend_from_slice(c.opcodes());
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
