//! Tokens per minute, per API key and per tenant: a bucket of a minute's
//! tokens refilled evenly. A request's tokens are known only once it is
//! answered, so a request is let in while its bucket is not in debt, and
//! its tokens are taken when it ends — a large answer can leave the
//! bucket in debt, and the next requests wait until the refill pays it
//! back (what OpenAI's own token limits do, without guessing a request's
//! size in advance).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most this many keys are tracked. When the table is full, the
/// buckets that have refilled are forgotten (a new bucket starts full, so
/// nothing changes for them); a key that still does not fit is not held
/// to the limit until there is room.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of `per_minute` tokens by key; 0 is no limit.
#[derive(Debug)]
pub struct TokenRate<K> {
    per_minute: u64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> TokenRate<K> {
    pub fn new(per_minute: u64) -> Self {
        TokenRate {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    fn per_second(&self) -> f64 {
        self.per_minute as f64 / 60.0
    }

    fn level(&self, bucket: &Bucket, now: Instant) -> f64 {
        let gained = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second();
        (bucket.tokens + gained).min(self.per_minute as f64)
    }

    /// Whether `key` may send a request now, or how long until it may.
    pub fn admit(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(bucket) = buckets.get(key) else {
            return Ok(());
        };
        let level = self.level(bucket, now);
        if level >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - level) / self.per_second()))
        }
    }

    /// Takes `tokens` a request used from `key`'s bucket.
    pub fn spend(&self, key: &K, tokens: u64, now: Instant) {
        if self.per_minute == 0 || tokens == 0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            // Forget the buckets that are full again: they hold nothing.
            let full = self.per_minute as f64;
            buckets.retain(|_, b| self.level(b, now) < full);
            if buckets.len() >= MAX_TRACKED {
                return;
            }
        }
        let full = Bucket {
            tokens: self.per_minute as f64,
            at: now,
        };
        let bucket = buckets.entry(key.clone()).or_insert(full);
        *bucket = Bucket {
            tokens: self.level(bucket, now) - tokens as f64,
            at: now,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_answer_puts_the_bucket_in_debt_until_the_refill_pays_it() {
        let rate = TokenRate::new(600); // ten a second
        let t = Instant::now();
        assert!(rate.admit(&"k", t).is_ok(), "a new key may send");
        rate.spend(&"k", 500, t);
        assert!(rate.admit(&"k", t).is_ok(), "100 left");
        rate.spend(&"k", 300, t);
        // 200 in debt: 201 tokens to refill, at ten a second.
        let wait = rate.admit(&"k", t).unwrap_err();
        assert!((20.0..20.2).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(rate.admit(&"k", t + Duration::from_secs(21)).is_ok());
        assert!(rate.admit(&"other", t).is_ok(), "keys are apart");
    }

    #[test]
    fn zero_is_no_limit() {
        let rate = TokenRate::new(0);
        let t = Instant::now();
        rate.spend(&"k", u64::MAX, t);
        assert!(rate.admit(&"k", t).is_ok());
    }
}
