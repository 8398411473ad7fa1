//! Fault injection for tests: a share of requests per verb answered with
//! 500 or 503, added latency, and watch streams cut after a while. The
//! random draws come from a seeded xorshift, so a failing run repeats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// The verbs faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    pub const WRITES: [Verb; 4] = [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete];
}

/// A tiny xorshift64* generator: deterministic, seedable, good enough for
/// fault draws and generated names.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
struct State {
    rng: Rng,
    error_rates: HashMap<Verb, f64>,
    latency: Duration,
    watch_lifetime: Option<Duration>,
    unreachable: bool,
}

/// A handle on one server's faults; clones share them.
#[derive(Debug, Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    disconnect: Arc<watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::new(Mutex::new(State {
                rng: Rng::new(0x5EED),
                error_rates: HashMap::new(),
                latency: Duration::ZERO,
                watch_lifetime: None,
                unreachable: false,
            })),
            disconnect: Arc::new(watch::channel(0).0),
        }
    }
}

/// The injected answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    InternalError,
    Unavailable,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Restarts the random sequence, so a run of faults repeats.
    pub fn seed(&self, seed: u64) -> &Self {
        self.lock().rng = Rng::new(seed);
        self
    }

    /// Fails `rate` (0.0–1.0) of the requests of `verb`.
    pub fn error_rate(&self, verb: Verb, rate: f64) -> &Self {
        self.lock().error_rates.insert(verb, rate.clamp(0.0, 1.0));
        self
    }

    /// Fails `rate` of every create, update, patch and delete.
    pub fn write_error_rate(&self, rate: f64) -> &Self {
        for verb in Verb::WRITES {
            self.error_rate(verb, rate);
        }
        self
    }

    /// Delays every request by `latency`.
    pub fn latency(&self, latency: Duration) -> &Self {
        self.lock().latency = latency;
        self
    }

    /// Ends every watch stream `lifetime` after it opened (`None`: never).
    pub fn drop_watches_every(&self, lifetime: Option<Duration>) -> &Self {
        self.lock().watch_lifetime = lifetime;
        self
    }

    /// Cuts the server off, as a network partition or an API server down
    /// behind its load balancer would: while on, every request — discovery
    /// and `/version` included — is answered 503 and open watch streams
    /// end. Off, it answers again; what it stores is untouched.
    pub fn unreachable(&self, on: bool) -> &Self {
        self.lock().unreachable = on;
        if on {
            self.disconnect_watches();
        }
        self
    }

    pub(crate) fn is_unreachable(&self) -> bool {
        self.lock().unreachable
    }

    /// Ends every open watch stream now.
    pub fn disconnect_watches(&self) {
        self.disconnect.send_modify(|n| *n += 1);
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.error_rates.clear();
        state.latency = Duration::ZERO;
        state.watch_lifetime = None;
        state.unreachable = false;
    }

    pub(crate) fn latency_now(&self) -> Duration {
        self.lock().latency
    }

    pub(crate) fn watch_lifetime(&self) -> Option<Duration> {
        self.lock().watch_lifetime
    }

    pub(crate) fn disconnects(&self) -> watch::Receiver<u64> {
        self.disconnect.subscribe()
    }

    /// Draws whether this request of `verb` fails, and how.
    pub(crate) fn draw(&self, verb: Verb) -> Option<Injected> {
        let mut state = self.lock();
        let rate = state.error_rates.get(&verb).copied().unwrap_or(0.0);
        if rate <= 0.0 {
            return None;
        }
        if state.rng.unit() >= rate {
            return None;
        }
        Some(if state.rng.next_u64().is_multiple_of(2) {
            Injected::InternalError
        } else {
            Injected::Unavailable
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_share_is_close_to_the_rate_and_repeats_with_the_seed() {
        let faults = Faults::default();
        faults.seed(7).error_rate(Verb::Create, 0.05);
        let run = |f: &Faults| {
            (0..10_000)
                .filter(|_| f.draw(Verb::Create).is_some())
                .count()
        };
        let first = run(&faults);
        assert!((400..600).contains(&first), "{first}");
        faults.seed(7);
        assert_eq!(run(&faults), first);
        assert!(faults.draw(Verb::Get).is_none());
    }
}
