//! Where a simulated cluster's pods get their addresses.
//!
//! By default each node's pod CIDR is `10.<n>.<n>.0/24`, as in a real
//! cluster, and nothing on this machine answers there: a pod's simulated
//! engine listens on a loopback port of its own, which only
//! [`EngineAddresses::resolve`](crate::engine::EngineAddresses::resolve)
//! in the same process knows. With a loopback pod network each node's pod
//! CIDR is `127.<block>.<n>.0/24` instead, and an engine listens at its
//! pod's own address and port — so any process on this machine (a
//! `modelfleet gateway`, `curl`) reaches a Ready pod at `status.podIP`, as
//! a VPC-native pod network lets anything in the VPC reach it. Linux routes
//! all of `127.0.0.0/8` to the loopback interface; other systems answer
//! only on `127.0.0.1`, where this does not work.
//!
//! The block (the second octet) is held by this process for the
//! cluster's life through a socket on an address no pod gets, so two
//! sandboxes on one machine never share pod addresses.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;

/// The lowest second octet a loopback pod network uses: below lie
/// `127.0.0.1` and the resolvers' `127.0.0.53` and the like.
const FIRST_BLOCK: u8 = 64;
/// Nodes per loopback pod network: `127.<block>.255.0/24` is the holder's.
pub const MAX_LOOPBACK_NODES: u32 = 255;
/// The port the holding socket listens on (any port would do).
const HOLDER_PORT: u16 = modelfleet_core::contract::engine::ENGINE_HTTP_PORT;

/// Where pods' addresses come from.
#[derive(Debug, Clone, Default)]
pub enum PodNetwork {
    /// `10.<n>.<n>.0/24` per node; engines answer on loopback ports.
    #[default]
    Simulated,
    /// `127.<block>.<n>.0/24` per node; engines answer at their pods'
    /// addresses.
    Loopback(Arc<LoopbackBlock>),
}

impl PodNetwork {
    /// Takes a free loopback block for this process.
    pub fn loopback() -> std::io::Result<PodNetwork> {
        LoopbackBlock::take().map(|block| PodNetwork::Loopback(Arc::new(block)))
    }

    /// The pod CIDR of the `index`th node.
    pub fn pod_cidr(&self, index: u32) -> String {
        match self {
            PodNetwork::Simulated => format!("10.{}.{}.0/24", index / 256, index % 256),
            PodNetwork::Loopback(block) => {
                format!("127.{}.{}.0/24", block.octet, index % MAX_LOOPBACK_NODES)
            }
        }
    }
}

/// A second octet of `127.0.0.0/8` that this process holds.
#[derive(Debug)]
pub struct LoopbackBlock {
    octet: u8,
    _held: TcpListener,
}

impl LoopbackBlock {
    /// The first block no other process holds, starting at one derived
    /// from the process id so that parallel sandboxes rarely try the same.
    pub fn take() -> std::io::Result<LoopbackBlock> {
        let span = u32::from(u8::MAX - FIRST_BLOCK) + 1;
        let start = std::process::id() % span;
        let mut last = None;
        for i in 0..span {
            let octet = FIRST_BLOCK + u8::try_from((start + i) % span).unwrap_or(0);
            match TcpListener::bind((Ipv4Addr::new(127, octet, 255, 1), HOLDER_PORT)) {
                Ok(held) => return Ok(LoopbackBlock { octet, _held: held }),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no loopback block is free")))
    }

    /// The second octet of the pods' addresses.
    pub fn octet(&self) -> u8 {
        self.octet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_loopback_networks_in_one_machine_never_share_addresses() {
        let (a, b) = (
            PodNetwork::loopback().unwrap(),
            PodNetwork::loopback().unwrap(),
        );
        assert_ne!(a.pod_cidr(0), b.pod_cidr(0));
        assert!(a.pod_cidr(3).starts_with("127."), "{}", a.pod_cidr(3));
        assert_eq!(PodNetwork::Simulated.pod_cidr(257), "10.1.1.0/24");
    }
}
