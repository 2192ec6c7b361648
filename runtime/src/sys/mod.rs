//! Thin wrappers over process and thread syscalls the runtime's layers share: CPU affinity and
//! signal masks. A leaf: it imports no other module of the runtime.

pub(crate) mod affinity;
pub(crate) mod signals;
