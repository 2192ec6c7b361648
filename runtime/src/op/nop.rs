//! `IORING_OP_NOP`: an operation that does nothing, to measure and test the op path.

use super::{OpCode, Plan};
use io_uring::{opcode, squeue::Entry};
use std::io;

/// Completes at once with nothing done (a round trip through the ring on io_uring).
#[derive(Debug, Default)]
pub struct Nop;

// SAFETY: the SQE carries no pointers and `perform` touches nothing.
unsafe impl OpCode for Nop {
    type Output = io::Result<()>;

    fn uring_entry(&mut self) -> Option<Entry> {
        Some(opcode::Nop::new().build())
    }

    fn plan(&self) -> Plan {
        Plan::Now
    }

    fn perform(&mut self) -> io::Result<u32> {
        Ok(0)
    }

    fn complete(self, result: io::Result<u32>) -> io::Result<()> {
        result.map(drop)
    }
}
