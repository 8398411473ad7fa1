//! The parts of the `modelfleet` binary that tests and other commands reuse:
//! the wiring of an embedded cluster (sandbox API server, simulated nodes,
//! and the real operator against it) and of the whole hub that `modelfleet
//! serve` runs. The crates themselves do not know
//! each other beyond ARCHITECTURE.md's table; this is where they meet.

pub mod embedded;
pub mod gateway;
pub mod hub;
