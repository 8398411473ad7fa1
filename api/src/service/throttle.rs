//! What unauthenticated callers may cost the hub (issue 16, finding 4):
//! token buckets per source address and per account on sign-in and on
//! failed authentication, and refusals from one source recorded as one
//! audit record per source per window instead of one each.
//!
//! Everything here is in memory and per hub process: behind a load
//! balancer each hub keeps its own buckets, so a source gets each hub's
//! budget. Memory is bounded: each table tracks at most [`MAX_KEYS`] keys,
//! buckets that have refilled (idle) and windows that are over are swept,
//! and a key that no longer fits is counted under a shared one (sources)
//! or not limited per account (the lockout still counts its failures).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Error, Hub};
use crate::config::ApiSettings;
use crate::identity::{Actor, Origin};
use crate::store::AuditEntry;

/// Keys each table tracks at most.
pub const MAX_KEYS: usize = 65_536;

/// Longest user name a sign-in is looked at with, in bytes; a longer one
/// is refused before any hashing, lookup or recording.
pub const MAX_USERNAME_BYTES: usize = 256;

/// The verb of the record that counts a window's further refusals.
pub const REFUSED_REPEATEDLY: &str = "refused-repeatedly";

/// How often the background task sweeps the tables and writes the
/// records of windows that are over.
const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// A full table is swept at most this often (a sweep looks at every key).
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Where a request came from, as the limits count it: an IPv4 address, an
/// IPv6 /64 (one subscriber's; the rest of the address is theirs to
/// choose), no known address, or — when a table is full — every other
/// source together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Addr(IpAddr),
    Unknown,
    Others,
}

impl Source {
    pub fn of(ip: Option<IpAddr>) -> Source {
        match ip {
            None => Source::Unknown,
            Some(IpAddr::V4(v4)) => Source::Addr(IpAddr::V4(v4)),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::Addr(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Source::Addr(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }

    /// The address its records carry.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Source::Addr(ip) => Some(ip),
            Source::Unknown | Source::Others => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Addr(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Source::Addr(ip) => write!(f, "{ip}"),
            Source::Unknown => f.write_str("an unknown address"),
            Source::Others => f.write_str("addresses too many to track one by one"),
        }
    }
}

/// A token bucket's size and refill: `burst` requests at once, then one
/// every `refill`. A burst of 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub burst: u32,
    pub refill: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key, at most `max_keys` of them.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    limit: Limit,
    max_keys: usize,
    state: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    buckets: HashMap<K, Bucket>,
    swept: Option<Instant>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub(crate) fn new(limit: Limit, max_keys: usize) -> Self {
        Limiter {
            limit,
            max_keys,
            state: Mutex::new(Buckets {
                buckets: HashMap::new(),
                swept: None,
            }),
        }
    }

    fn off(&self) -> bool {
        self.limit.burst == 0
    }

    fn burst(&self) -> f64 {
        f64::from(self.limit.burst)
    }

    /// The bucket's tokens at `now`.
    fn tokens(&self, bucket: &Bucket, now: Instant) -> f64 {
        let refill = self.limit.refill.as_secs_f64().max(f64::MIN_POSITIVE);
        let gained = now.saturating_duration_since(bucket.at).as_secs_f64() / refill;
        (bucket.tokens + gained).min(self.burst())
    }

    /// How long until a bucket holding `tokens` has one.
    fn wait(&self, tokens: f64) -> Duration {
        self.limit.refill.mul_f64((1.0 - tokens).clamp(0.0, 1.0))
    }

    /// Takes a token from `key`'s bucket, or says how long until it has
    /// one. A key that does not fit in a full table takes from
    /// `overflow`'s bucket, or is not limited when there is none.
    pub(crate) fn take(&self, key: &K, overflow: Option<&K>, now: Instant) -> Result<(), Duration> {
        if self.off() {
            return Ok(());
        }
        let Ok(mut state) = self.state.lock() else {
            return Ok(());
        };
        let Some(key) = self.fitting(&mut state, key, overflow, now) else {
            return Ok(());
        };
        let full = Bucket {
            tokens: self.burst(),
            at: now,
        };
        let bucket = state.buckets.entry(key).or_insert(full);
        let tokens = self.tokens(bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            Err(self.wait(tokens))
        }
    }

    /// Whether `key`'s bucket has a token, without taking it (`overflow`'s
    /// when `key` is not tracked and the table is full).
    pub(crate) fn check(
        &self,
        key: &K,
        overflow: Option<&K>,
        now: Instant,
    ) -> Result<(), Duration> {
        if self.off() {
            return Ok(());
        }
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        let bucket = match (state.buckets.get(key), overflow) {
            (Some(bucket), _) => Some(bucket),
            (None, Some(overflow)) if state.buckets.len() >= self.max_keys => {
                state.buckets.get(overflow)
            }
            (None, _) => None,
        };
        match bucket {
            Some(bucket) => {
                let tokens = self.tokens(bucket, now);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait(tokens))
                }
            }
            None => Ok(()),
        }
    }

    /// The key whose bucket a request for `key` uses: `key` when it is
    /// tracked or fits, else `overflow`.
    fn fitting(
        &self,
        state: &mut Buckets<K>,
        key: &K,
        overflow: Option<&K>,
        now: Instant,
    ) -> Option<K> {
        if state.buckets.contains_key(key) {
            return Some(key.clone());
        }
        if state.buckets.len() >= self.max_keys
            && state
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_AT_MOST_EVERY)
        {
            self.sweep_locked(state, now);
        }
        if state.buckets.len() < self.max_keys {
            Some(key.clone())
        } else {
            overflow.cloned()
        }
    }

    /// Forgets buckets that are full again: they are as good as new.
    pub(crate) fn sweep(&self, now: Instant) {
        if let Ok(mut state) = self.state.lock() {
            self.sweep_locked(&mut state, now);
        }
    }

    fn sweep_locked(&self, state: &mut Buckets<K>, now: Instant) {
        let burst = self.burst();
        state
            .buckets
            .retain(|_, bucket| self.tokens(bucket, now) < burst);
        state.swept = Some(now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map(|s| s.buckets.len()).unwrap_or(0)
    }
}

/// Whether a refusal is recorded on its own or counted in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Record,
    Counted,
}

#[derive(Debug, Clone)]
struct Window {
    started: Instant,
    started_at: DateTime<Utc>,
    /// Refusals counted after the first, by status.
    more: BTreeMap<u16, u64>,
}

/// The refusals from one source in one window after the first, which was
/// recorded on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalSummary {
    pub source: Source,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub by_status: BTreeMap<u16, u64>,
}

impl RefusalSummary {
    pub fn count(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// The audit record that says how many.
    fn entry(&self) -> AuditEntry {
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(status, n)| format!("{n} × {status}"))
            .collect();
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "modelfleet.io/refused-count".to_owned(),
            self.count().to_string(),
        );
        AuditEntry {
            verb: REFUSED_REPEATEDLY.to_owned(),
            resource: "api".to_owned(),
            code: self.by_status.keys().next_back().copied(),
            message: Some(format!(
                "{} more requests from {} were refused ({}) between {} and {}; the first \
                 refusal of the window is recorded on its own",
                self.count(),
                self.source,
                statuses.join(", "),
                self.from.to_rfc3339(),
                self.until.to_rfc3339(),
            )),
            annotations,
            ..AuditEntry::default()
        }
    }
}

/// Refusals by source: the first in a window is recorded, the rest
/// counted, and one record per window says how many.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    /// 0: every refusal is recorded on its own.
    window: Duration,
    max_keys: usize,
    windows: Mutex<HashMap<Source, Window>>,
}

impl RefusalLog {
    pub(crate) fn new(window: Duration, max_keys: usize) -> Self {
        RefusalLog {
            window,
            max_keys,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn over(&self, window: &Window, now: Instant) -> bool {
        now.saturating_duration_since(window.started) >= self.window
    }

    fn summary(&self, source: Source, window: Window, wall: DateTime<Utc>) -> RefusalSummary {
        let end = window.started_at
            + chrono::TimeDelta::from_std(self.window).unwrap_or(chrono::TimeDelta::zero());
        RefusalSummary {
            source,
            from: window.started_at,
            until: end.min(wall),
            by_status: window.more,
        }
    }

    /// Whether a refusal from `source` now would be recorded on its own.
    pub(crate) fn would_record(&self, source: Source, now: Instant) -> bool {
        if self.window.is_zero() {
            return true;
        }
        let Ok(windows) = self.windows.lock() else {
            return true;
        };
        windows.get(&source).is_none_or(|w| self.over(w, now))
    }

    /// Counts a refusal from `source`: whether to record it on its own,
    /// and the summaries of windows that are over and must be written.
    pub(crate) fn note(
        &self,
        source: Source,
        status: u16,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> (Refusal, Vec<RefusalSummary>) {
        if self.window.is_zero() {
            return (Refusal::Record, Vec::new());
        }
        let Ok(mut windows) = self.windows.lock() else {
            return (Refusal::Record, Vec::new());
        };
        let mut due = Vec::new();
        let mut key = source;
        if !windows.contains_key(&source) && windows.len() >= self.max_keys {
            due = self.take_over(&mut windows, now, wall);
            if windows.len() >= self.max_keys {
                key = Source::Others;
            }
        }
        match windows.get_mut(&key) {
            Some(window) if !self.over(window, now) => {
                *window.more.entry(status).or_default() += 1;
                return (Refusal::Counted, due);
            }
            Some(_) => {
                if let Some(old) = windows.remove(&key)
                    && !old.more.is_empty()
                {
                    due.push(self.summary(key, old, wall));
                }
            }
            None => {}
        }
        windows.insert(
            key,
            Window {
                started: now,
                started_at: wall,
                more: BTreeMap::new(),
            },
        );
        (Refusal::Record, due)
    }

    /// The summaries of windows that are over (every window, when `all`),
    /// which are forgotten.
    pub(crate) fn take_due(
        &self,
        now: Instant,
        wall: DateTime<Utc>,
        all: bool,
    ) -> Vec<RefusalSummary> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        if all {
            windows
                .drain()
                .filter(|(_, w)| !w.more.is_empty())
                .map(|(source, w)| self.summary(source, w, wall))
                .collect()
        } else {
            self.take_over(&mut windows, now, wall)
        }
    }

    fn take_over(
        &self,
        windows: &mut HashMap<Source, Window>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<RefusalSummary> {
        let over: Vec<Source> = windows
            .iter()
            .filter(|(_, w)| self.over(w, now))
            .map(|(s, _)| *s)
            .collect();
        over.into_iter()
            .filter_map(|source| {
                let window = windows.remove(&source)?;
                (!window.more.is_empty()).then(|| self.summary(source, window, wall))
            })
            .collect()
    }
}

/// The hub's limits and refusal log (see the module's documentation).
#[derive(Debug)]
pub struct Throttle {
    sign_in_source: Limiter<Source>,
    sign_in_account: Limiter<String>,
    auth_failures: Limiter<Source>,
    /// Sources that signed in to an account, by account: the per-account
    /// limit does not apply to them.
    known: Mutex<HashMap<(String, Source), Instant>>,
    refusals: RefusalLog,
}

fn limit(burst: u32, refill_seconds: u32) -> Limit {
    Limit {
        burst,
        refill: Duration::from_secs(u64::from(refill_seconds.max(1))),
    }
}

/// The answer to a request over a limit.
fn too_many(what: &str, wait: Duration) -> Error {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = u32::try_from(seconds).unwrap_or(u32::MAX).max(1);
    Error::too_many_requests(format!("{what}; retry after {seconds} seconds"), seconds)
}

impl Throttle {
    pub fn new(settings: &ApiSettings) -> Self {
        Throttle {
            sign_in_source: Limiter::new(
                limit(settings.sign_in_burst, settings.sign_in_refill_seconds),
                MAX_KEYS,
            ),
            sign_in_account: Limiter::new(
                limit(
                    settings.sign_in_account_burst,
                    settings.sign_in_account_refill_seconds,
                ),
                MAX_KEYS,
            ),
            auth_failures: Limiter::new(
                limit(
                    settings.auth_failure_burst,
                    settings.auth_failure_refill_seconds,
                ),
                MAX_KEYS,
            ),
            known: Mutex::new(HashMap::new()),
            refusals: RefusalLog::new(
                Duration::from_secs(u64::from(settings.refusal_window_seconds)),
                MAX_KEYS,
            ),
        }
    }

    /// Lets a sign-in from `source` as `username` go on, or refuses it
    /// (429): the source's sign-in budget, then — unless this source
    /// signed in to the account before — the account's failure budget.
    pub fn admit_sign_in(&self, source: Source, username: &str) -> Result<(), Error> {
        let now = Instant::now();
        self.sign_in_source
            .take(&source, Some(&Source::Others), now)
            .map_err(|wait| too_many("too many sign-ins from this address", wait))?;
        if self.is_known(username, source) {
            return Ok(());
        }
        self.sign_in_account
            .check(&username.to_owned(), None, now)
            .map_err(|wait| too_many("too many failed sign-ins to this account", wait))
    }

    /// A sign-in as `username` was refused: it spends the account's
    /// failure budget.
    pub fn sign_in_failed(&self, username: &str) {
        let _ = self
            .sign_in_account
            .take(&username.to_owned(), None, Instant::now());
    }

    /// `source` signed in as `username`.
    pub fn signed_in(&self, username: &str, source: Source) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let key = (username.to_owned(), source);
        if !known.contains_key(&key)
            && known.len() >= MAX_KEYS
            && let Some(oldest) = known
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
        {
            known.remove(&oldest);
        }
        known.insert(key, Instant::now());
    }

    fn is_known(&self, username: &str, source: Source) -> bool {
        source != Source::Others
            && self
                .known
                .lock()
                .is_ok_and(|known| known.contains_key(&(username.to_owned(), source)))
    }

    /// Lets a request with credentials from `source` be checked, or
    /// refuses it (429) when the source's failure budget is spent.
    pub fn admit_credentials(&self, source: Source) -> Result<(), Error> {
        self.auth_failures
            .check(&source, Some(&Source::Others), Instant::now())
            .map_err(|wait| too_many("too many failed authentications from this address", wait))
    }

    /// Credentials from `source` were refused: they spend its budget.
    pub fn credentials_failed(&self, source: Source) {
        let _ = self
            .auth_failures
            .take(&source, Some(&Source::Others), Instant::now());
    }

    /// Whether a refusal from `source` now would be recorded on its own
    /// (else it is counted in its window's record).
    pub fn refusal_recorded_alone(&self, source: Source) -> bool {
        self.refusals.would_record(source, Instant::now())
    }

    /// Counts a refusal (401, 429) from `source`.
    pub(crate) fn refused(
        &self,
        source: Source,
        status: StatusCode,
    ) -> (Refusal, Vec<RefusalSummary>) {
        self.refusals
            .note(source, status.as_u16(), Instant::now(), crate::store::now())
    }

    /// Forgets what no longer limits anyone; returns the windows that are
    /// over (all of them, when `all`) to be written.
    fn tidy(&self, all: bool) -> Vec<RefusalSummary> {
        let now = Instant::now();
        self.sign_in_source.sweep(now);
        self.sign_in_account.sweep(now);
        self.auth_failures.sweep(now);
        self.refusals.take_due(now, crate::store::now(), all)
    }
}

impl Hub {
    /// The limits on sign-in and authentication, and the refusal log.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Writes the records of refusal windows that are over, through the
    /// store's audit trail.
    pub async fn record_refusals(&self, summaries: Vec<RefusalSummary>) {
        for summary in summaries {
            let actor = Actor::anonymous(Origin {
                source_ip: summary.source.ip(),
                ..Origin::default()
            });
            if let Err(e) = self.store.record_request(&actor, summary.entry()).await {
                tracing::error!(error = %e, source = %summary.source,
                    "could not record a window's refusals in the audit trail");
            }
        }
    }

    /// Writes the records of every refusal window that is over (`all`:
    /// every window, as at shutdown).
    pub async fn flush_refusals(&self, all: bool) {
        let due = self.throttle.tidy(all);
        self.record_refusals(due).await;
    }
}

/// Sweeps the limits and writes the records of refusal windows that are
/// over every few seconds, and every window's when `stop` turns true.
pub fn spawn(hub: Hub, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                break;
            }
            hub.flush_refusals(false).await;
        }
        hub.flush_refusals(true).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Source {
        Source::of(Some(text.parse().unwrap()))
    }

    #[test]
    fn ipv6_sources_are_counted_by_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills() {
        let limiter = Limiter::new(
            Limit {
                burst: 2,
                refill: Duration::from_secs(10),
            },
            100,
        );
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert!(limiter.take(&a, None, t0).is_ok());
        assert!(limiter.take(&a, None, t0).is_ok());
        let wait = limiter.take(&a, None, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(limiter.check(&a, None, t0).is_err());
        // Another source has its own bucket.
        assert!(limiter.take(&ip("192.0.2.2"), None, t0).is_ok());
        // Half-way, half a token: still 5 s to wait.
        let half = t0 + Duration::from_secs(5);
        assert_eq!(
            limiter.take(&a, None, half).unwrap_err(),
            Duration::from_secs(5)
        );
        assert!(limiter.take(&a, None, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_full_table_forgets_idle_buckets_then_shares_one() {
        let limiter = Limiter::new(
            Limit {
                burst: 1,
                refill: Duration::from_secs(60),
            },
            2,
        );
        let t0 = Instant::now();
        assert!(
            limiter
                .take(&ip("192.0.2.1"), Some(&Source::Others), t0)
                .is_ok()
        );
        assert!(
            limiter
                .take(&ip("192.0.2.2"), Some(&Source::Others), t0)
                .is_ok()
        );
        // Full: a third source shares the overflow bucket with a fourth.
        assert!(
            limiter
                .take(&ip("192.0.2.3"), Some(&Source::Others), t0)
                .is_ok()
        );
        assert!(
            limiter
                .take(&ip("192.0.2.4"), Some(&Source::Others), t0)
                .is_err()
        );
        assert_eq!(limiter.len(), 3);
        // Without an overflow key, a key that does not fit is not limited.
        assert!(limiter.take(&ip("192.0.2.5"), None, t0).is_ok());
        // Once the buckets are full again they are forgotten.
        let later = t0 + Duration::from_secs(120);
        limiter.sweep(later);
        assert_eq!(limiter.len(), 0);
        // Rotating through many keys never grows the table past its bound
        // (plus the shared bucket).
        for n in 0..1000u32 {
            let key = Source::of(Some(IpAddr::from(n.to_be_bytes())));
            let _ = limiter.take(&key, Some(&Source::Others), later);
        }
        assert!(limiter.len() <= 3, "{}", limiter.len());
    }

    #[test]
    fn refusals_in_a_window_are_counted_and_summed_once_it_is_over() {
        let log = RefusalLog::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let wall = crate::store::now();
        let a = ip("192.0.2.1");
        assert!(log.would_record(a, t0));
        assert_eq!(log.note(a, 401, t0, wall), (Refusal::Record, Vec::new()));
        assert!(!log.would_record(a, t0));
        for _ in 0..9 {
            assert_eq!(log.note(a, 401, t0, wall).0, Refusal::Counted);
        }
        assert_eq!(log.note(a, 429, t0, wall).0, Refusal::Counted);
        // Another source is recorded at once.
        assert_eq!(log.note(ip("192.0.2.2"), 401, t0, wall).0, Refusal::Record);
        assert!(log.take_due(t0, wall, false).is_empty());
        // The next refusal after the window writes its summary and is
        // recorded on its own.
        let later = t0 + Duration::from_secs(61);
        let (refusal, due) = log.note(a, 401, later, wall);
        assert_eq!(refusal, Refusal::Record);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count(), 10);
        assert_eq!(due[0].by_status[&429], 1);
        let entry = due[0].entry();
        assert_eq!(entry.verb, REFUSED_REPEATEDLY);
        assert!(
            entry
                .message
                .unwrap()
                .starts_with("10 more requests from 192.0.2.1")
        );
        // At shutdown every window with counted refusals is written.
        log.note(a, 401, later, wall);
        let all = log.take_due(later, wall, true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count(), 1);
    }

    #[test]
    fn a_zero_window_records_every_refusal() {
        let log = RefusalLog::new(Duration::ZERO, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                log.note(ip("192.0.2.1"), 401, t0, crate::store::now()).0,
                Refusal::Record
            );
        }
    }
}
