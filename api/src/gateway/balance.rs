//! Which replica takes a request: the least outstanding requests, except
//! that a prompt whose first bytes match an earlier one's goes where that
//! one went — the replica most likely to hold its prefix in its KV cache —
//! unless that replica already carries more than its share (consistent
//! hashing with bounded loads: at most 25% over the mean, plus one). A
//! replica that refused a connection or answered 5xx is left out for a
//! while, then tried again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clusters::Engine;

/// How long an ejected replica is left out.
pub const EJECTED_FOR: Duration = Duration::from_secs(10);
/// How many bytes of a prompt decide its affinity, and the least a prompt
/// must have for affinity to matter (shorter prefixes are cheap to
/// recompute).
pub const AFFINITY_BYTES: usize = 512;

/// Requests in flight per replica, and replicas left out until when.
#[derive(Debug, Default)]
pub struct Balancer {
    inflight: Mutex<HashMap<SocketAddr, usize>>,
    ejected: Mutex<HashMap<SocketAddr, Instant>>,
}

/// A request's hold on one replica; dropping it ends the request there.
#[derive(Debug)]
pub struct Lease {
    balancer: Arc<Balancer>,
    pub engine: Engine,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut inflight = self
            .balancer
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = inflight.get_mut(&self.engine.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inflight.remove(&self.engine.addr);
            }
        }
    }
}

/// The affinity of a prompt: a hash of its first [`AFFINITY_BYTES`], for
/// prompts at least that long.
pub fn affinity(prompt: &[u8]) -> Option<u64> {
    (prompt.len() >= AFFINITY_BYTES).then(|| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        prompt[..AFFINITY_BYTES].hash(&mut h);
        h.finish()
    })
}

fn rendezvous(key: u64, addr: &SocketAddr) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    addr.hash(&mut h);
    h.finish()
}

impl Balancer {
    /// Leaves `addr` out for [`EJECTED_FOR`].
    pub fn eject(&self, addr: SocketAddr, now: Instant) {
        self.ejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr, now + EJECTED_FOR);
    }

    /// Requests in flight at `addr`.
    #[cfg(test)]
    pub fn inflight(&self, addr: &SocketAddr) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(addr)
            .copied()
            .unwrap_or(0)
    }

    /// A replica of `engines` for a request, not one of `tried`: ejected
    /// replicas only when no other is left.
    pub fn pick(
        self: &Arc<Self>,
        engines: &[Engine],
        affinity: Option<u64>,
        tried: &[SocketAddr],
        now: Instant,
    ) -> Option<Lease> {
        let untried: Vec<&Engine> = engines
            .iter()
            .filter(|e| !tried.contains(&e.addr))
            .collect();
        let healthy: Vec<&Engine> = {
            let mut ejected = self.ejected.lock().unwrap_or_else(PoisonError::into_inner);
            ejected.retain(|_, until| *until > now);
            untried
                .iter()
                .copied()
                .filter(|e| !ejected.contains_key(&e.addr))
                .collect()
        };
        let candidates = if healthy.is_empty() { untried } else { healthy };
        if candidates.is_empty() {
            return None;
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let load = |e: &Engine| inflight.get(&e.addr).copied().unwrap_or(0);
        let chosen = match affinity {
            Some(key) => {
                let total: usize = candidates.iter().map(|e| load(e)).sum::<usize>() + 1;
                // ceil(1.25 × mean) + 1, in integers.
                let n = candidates.len();
                let bound = (total * 5).div_ceil(4 * n) + 1;
                let mut ranked = candidates.clone();
                ranked.sort_by_key(|e| std::cmp::Reverse(rendezvous(key, &e.addr)));
                ranked
                    .into_iter()
                    .find(|e| load(e) < bound)
                    .or_else(|| candidates.iter().copied().min_by_key(|e| load(e)))
            }
            None => candidates.iter().copied().min_by_key(|e| load(e)),
        }?
        .clone();
        *inflight.entry(chosen.addr).or_insert(0) += 1;
        Some(Lease {
            balancer: self.clone(),
            engine: chosen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engines(n: u16) -> Vec<Engine> {
        (0..n)
            .map(|i| Engine {
                pod: format!("p{i}"),
                addr: SocketAddr::from(([127, 0, 0, 1], 9000 + i)),
            })
            .collect()
    }

    #[test]
    fn requests_go_to_the_least_loaded_replica() {
        let b = Arc::new(Balancer::default());
        let e = engines(3);
        let now = Instant::now();
        let leases: Vec<Lease> = (0..6)
            .map(|_| b.pick(&e, None, &[], now).unwrap())
            .collect();
        for engine in &e {
            assert_eq!(b.inflight(&engine.addr), 2, "{engine:?}");
        }
        drop(leases);
        assert_eq!(b.inflight(&e[0].addr), 0, "leases end their requests");
    }

    #[test]
    fn a_shared_prefix_sticks_to_one_replica_until_it_carries_more_than_its_share() {
        let b = Arc::new(Balancer::default());
        let e = engines(4);
        let now = Instant::now();
        let key = affinity(&[7u8; AFFINITY_BYTES]).unwrap();
        let first = b.pick(&e, Some(key), &[], now).unwrap();
        let second = b.pick(&e, Some(key), &[], now).unwrap();
        assert_eq!(first.engine, second.engine, "same prefix, same replica");
        // One hot prefix: its replica takes no more than the bound, the
        // rest spill to the others.
        let hot: Vec<Lease> = (0..40)
            .map(|_| b.pick(&e, Some(key), &[], now).unwrap())
            .collect();
        let loads: Vec<usize> = e.iter().map(|x| b.inflight(&x.addr)).collect();
        // ceil(1.25 × 42 / 4) + 1 at the last pick.
        assert!(loads.iter().all(|l| *l <= 15), "bounded: {loads:?}");
        assert!(
            loads.iter().filter(|l| **l > 0).count() >= 3,
            "the next replicas in hash order take the overflow: {loads:?}"
        );
        drop(hot);
        assert_eq!(
            affinity(b"short prompt"),
            None,
            "short prompts balance by load"
        );
    }

    #[test]
    fn ejected_and_tried_replicas_are_skipped_while_others_remain() {
        let b = Arc::new(Balancer::default());
        let e = engines(2);
        let now = Instant::now();
        b.eject(e[0].addr, now);
        for _ in 0..3 {
            assert_eq!(b.pick(&e, None, &[], now).unwrap().engine, e[1]);
        }
        // Once the other was tried, the ejected one is the last resort.
        assert_eq!(b.pick(&e, None, &[e[1].addr], now).unwrap().engine, e[0]);
        assert!(b.pick(&e, None, &[e[0].addr, e[1].addr], now).is_none());
        // Ejection ends.
        let later = now + EJECTED_FOR + Duration::from_secs(1);
        let picks: Vec<Lease> = (0..2)
            .map(|_| b.pick(&e, None, &[], later).unwrap())
            .collect();
        assert_ne!(picks[0].engine, picks[1].engine);
    }
}
