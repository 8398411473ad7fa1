//! One request's run through the engine: it waits in the queue, then each
//! of its sequences gets its first token after the prefill time and one
//! more every decode step. Tokens are produced as they fall due, never
//! before; a request dropped midway (its client went away) frees its slot.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::queue::Slot;
use super::server::State;
use super::tokens::{Answer, Finish};

/// One sequence of a request: a prompt and the answer it will get.
#[derive(Debug, Clone, Copy)]
pub struct Sequence {
    pub prompt_tokens: u64,
    pub answer: Answer,
}

/// A token of sequence `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: usize,
    pub text: String,
    /// Set on a sequence's last token.
    pub finish: Option<Finish>,
}

pub struct Generation {
    state: Arc<State>,
    seqs: Vec<Sequence>,
    arrived: Instant,
    slot: Option<Slot>,
    admitted: Option<Instant>,
    /// Next token of each sequence.
    next: Vec<u32>,
    finished: usize,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("seqs", &self.seqs)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Generation {
    pub fn new(state: Arc<State>, seqs: Vec<Sequence>) -> Generation {
        let next = vec![0; seqs.len()];
        Generation {
            state,
            seqs,
            arrived: Instant::now(),
            slot: None,
            admitted: None,
            next,
            finished: 0,
        }
    }

    /// When token `index` of sequence `seq` falls due.
    fn due(&self, admitted: Instant, seq: usize, index: u32) -> Instant {
        let speed = &self.state.spec.speed;
        admitted + speed.ttft(self.seqs[seq].prompt_tokens) + speed.per_token.saturating_mul(index)
    }

    /// The next token of any sequence; `None` once all have ended.
    pub async fn next(&mut self) -> Option<Event> {
        if self.finished == self.seqs.len() {
            return None;
        }
        let admitted = match self.admitted {
            Some(at) => at,
            None => {
                let reserve = self
                    .seqs
                    .iter()
                    .map(|s| s.prompt_tokens + u64::from(s.answer.tokens))
                    .sum();
                let seqs = u32::try_from(self.seqs.len()).unwrap_or(u32::MAX);
                let mut slot = self.state.queue.admit(seqs, reserve).await;
                slot.hold(self.seqs.iter().map(|s| s.prompt_tokens).sum());
                let now = Instant::now();
                self.slot = Some(slot);
                self.admitted = Some(now);
                now
            }
        };
        let (seq, due) = (0..self.seqs.len())
            .filter(|s| self.next[*s] < self.seqs[*s].answer.tokens)
            .map(|s| (s, self.due(admitted, s, self.next[s])))
            .min_by_key(|(_, due)| *due)?;
        tokio::time::sleep_until(due).await;
        let index = self.next[seq];
        let answer = self.seqs[seq].answer;
        let metrics = &self.state.metrics;
        if index == 0 {
            metrics.first_token(self.seqs[seq].prompt_tokens, due - self.arrived);
        } else {
            metrics.next_token(self.state.spec.speed.per_token);
        }
        if let Some(slot) = &mut self.slot {
            slot.hold(1);
        }
        self.next[seq] += 1;
        let last = self.next[seq] == answer.tokens;
        if last {
            metrics.finished(Some(answer.finish), due - self.arrived);
            self.finished += 1;
            if self.finished == self.seqs.len() {
                // The engine is done with it, whether or not the client
                // has read it all.
                self.slot = None;
            }
        }
        Some(Event {
            seq,
            text: answer.token(index),
            finish: last.then_some(answer.finish),
        })
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        for _ in self.finished..self.seqs.len() {
            self.state.metrics.aborted();
        }
    }
}

/// An embedding request: it waits for a slot, then for its prefill.
pub async fn embed(state: &Arc<State>, prompt_tokens: &[u64]) {
    let arrived = Instant::now();
    let total: u64 = prompt_tokens.iter().sum();
    let seqs = u32::try_from(prompt_tokens.len()).unwrap_or(u32::MAX);
    let mut slot = state.queue.admit(seqs, total).await;
    slot.hold(total);
    let speed = &state.spec.speed;
    let longest = prompt_tokens.iter().copied().max().unwrap_or(0);
    // Inputs of one request are prefilled together: as long as the longest
    // plus the others' compute.
    let compute = speed
        .per_prompt_token
        .saturating_mul(u32::try_from(total - longest).unwrap_or(u32::MAX));
    tokio::time::sleep(speed.ttft(longest) + compute).await;
    state.metrics.prefilled(total);
    let e2e: Duration = arrived.elapsed();
    for _ in prompt_tokens {
        state.metrics.finished(None, e2e);
    }
}
