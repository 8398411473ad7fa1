//! The engine's scheduler, as far as a client can tell: at most
//! `--max-num-seqs` sequences run at once and their tokens fit in the KV
//! cache; the others wait, first come first served. A request that goes
//! away (its client disconnected) leaves the queue or frees its slot.
//!
//! Simpler than vLLM's: a sequence is admitted when its whole length
//! (prompt and every token it will generate) fits beside the running ones,
//! so nothing is ever preempted. vLLM admits on the prompt alone and
//! preempts (recomputes) sequences when the cache fills.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// What the queue holds now, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Sequences running.
    pub running: u32,
    /// Sequences waiting.
    pub waiting: u32,
    /// Tokens in the KV cache: every running sequence's prompt and what it
    /// has generated so far.
    pub kv_tokens: u64,
    pub kv_capacity: u64,
}

#[derive(Debug)]
pub struct Queue {
    max_seqs: u32,
    capacity: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    running: u32,
    /// Tokens the running sequences may grow to.
    reserved: u64,
    /// Tokens they hold now.
    used: u64,
    waiting: VecDeque<Waiter>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    seqs: u32,
    reserve: u64,
    admit: oneshot::Sender<()>,
}

impl State {
    fn fits(&self, max_seqs: u32, capacity: u64, seqs: u32, reserve: u64) -> bool {
        // Alone, anything runs: one request larger than the engine must
        // not wait forever.
        self.running == 0
            || (self.running + seqs <= max_seqs && self.reserved + reserve <= capacity)
    }

    /// Admits waiters from the head while they fit.
    fn admit_waiting(&mut self, max_seqs: u32, capacity: u64) {
        while let Some(head) = self.waiting.front() {
            if !self.fits(max_seqs, capacity, head.seqs, head.reserve) {
                return;
            }
            let Some(head) = self.waiting.pop_front() else {
                return;
            };
            self.running += head.seqs;
            self.reserved += head.reserve;
            // A waiter gone meanwhile finds itself admitted and releases.
            let _ = head.admit.send(());
        }
    }
}

/// A place among the running sequences; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    queue: Arc<Queue>,
    seqs: u32,
    reserve: u64,
    used: u64,
}

/// A request waiting for a slot; dropped, it leaves the queue.
struct Pending {
    queue: Arc<Queue>,
    id: u64,
    seqs: u32,
    reserve: u64,
    admitted: bool,
}

impl Queue {
    pub fn new(max_seqs: u32, capacity: u64) -> Arc<Queue> {
        Arc::new(Queue {
            max_seqs: max_seqs.max(1),
            capacity,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn gauges(&self) -> Gauges {
        let state = self.state();
        Gauges {
            running: state.running,
            waiting: state.waiting.iter().map(|w| w.seqs).sum(),
            kv_tokens: state.used,
            kv_capacity: self.capacity,
        }
    }

    /// Waits for room for `seqs` sequences that will hold at most
    /// `reserve` tokens together. Cancel-safe: dropped while waiting, the
    /// request leaves the queue.
    pub async fn admit(self: &Arc<Self>, seqs: u32, reserve: u64) -> Slot {
        let (receiver, mut pending) = {
            let mut state = self.state();
            if state.waiting.is_empty() && state.fits(self.max_seqs, self.capacity, seqs, reserve) {
                state.running += seqs;
                state.reserved += reserve;
                return self.slot(seqs, reserve);
            }
            let (admit, receiver) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            state.waiting.push_back(Waiter {
                id,
                seqs,
                reserve,
                admit,
            });
            let pending = Pending {
                queue: self.clone(),
                id,
                seqs,
                reserve,
                admitted: false,
            };
            (receiver, pending)
        };
        // The sender is only dropped after sending (admitted) or with the
        // queue, which this request holds: either way it is admitted.
        let _ = receiver.await;
        pending.admitted = true;
        self.slot(seqs, reserve)
    }

    fn slot(self: &Arc<Self>, seqs: u32, reserve: u64) -> Slot {
        Slot {
            queue: self.clone(),
            seqs,
            reserve,
            used: 0,
        }
    }

    fn release(&self, seqs: u32, reserve: u64, used: u64) {
        let mut state = self.state();
        state.running = state.running.saturating_sub(seqs);
        state.reserved = state.reserved.saturating_sub(reserve);
        state.used = state.used.saturating_sub(used);
        state.admit_waiting(self.max_seqs, self.capacity);
    }
}

impl Slot {
    /// The sequences now hold `tokens` more tokens in the KV cache.
    pub fn hold(&mut self, tokens: u64) {
        self.used += tokens;
        self.queue.state().used += tokens;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.release(self.seqs, self.reserve, self.used);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        let mut state = self.queue.state();
        let before = state.waiting.len();
        state.waiting.retain(|w| w.id != self.id);
        if state.waiting.len() == before {
            // Admitted between the send and this drop: give it back.
            drop(state);
            self.queue.release(self.seqs, self.reserve, 0);
        } else {
            // The head may have been all that blocked the rest.
            state.admit_waiting(self.queue.max_seqs, self.queue.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn at_most_max_seqs_run_and_the_rest_wait_in_order() {
        let queue = Queue::new(2, 1_000_000);
        let a = queue.admit(1, 10).await;
        let b = queue.admit(1, 10).await;
        let mut c = Box::pin(queue.admit(1, 10));
        let mut d = Box::pin(queue.admit(1, 10));
        assert!((&mut c).now_or_never().is_none());
        assert!((&mut d).now_or_never().is_none());
        assert_eq!(queue.gauges().running, 2);
        assert_eq!(queue.gauges().waiting, 2);
        drop(a);
        let c = (&mut c).now_or_never().expect("the first waiter runs");
        assert!((&mut d).now_or_never().is_none(), "the second still waits");
        drop(b);
        let d = (&mut d).now_or_never().expect("then the second");
        assert_eq!(queue.gauges().waiting, 0);
        drop((c, d));
        assert_eq!(queue.gauges().running, 0);
    }

    #[tokio::test]
    async fn a_request_that_goes_away_leaves_the_queue_or_frees_its_slot() {
        let queue = Queue::new(1, 1_000_000);
        let mut a = queue.admit(1, 10).await;
        a.hold(7);
        assert_eq!(queue.gauges().kv_tokens, 7);
        let mut gone = Box::pin(queue.admit(1, 10));
        assert!((&mut gone).now_or_never().is_none());
        assert_eq!(queue.gauges().waiting, 1);
        drop(gone);
        assert_eq!(queue.gauges().waiting, 0);
        drop(a);
        let g = queue.gauges();
        assert_eq!((g.running, g.kv_tokens), (0, 0));
        let _next = queue.admit(1, 10).now_or_never().expect("room again");
    }

    #[tokio::test]
    async fn the_kv_cache_bounds_what_runs_but_a_lone_request_always_runs() {
        let queue = Queue::new(256, 100);
        let big = queue.admit(1, 500).await;
        let mut small = Box::pin(queue.admit(1, 10));
        assert!((&mut small).now_or_never().is_none());
        drop(big);
        let _small = (&mut small).now_or_never().expect("admitted");
        let mut over = Box::pin(queue.admit(1, 95));
        assert!((&mut over).now_or_never().is_none(), "10 + 95 > 100");
    }
}
