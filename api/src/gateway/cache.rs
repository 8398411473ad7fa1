//! What the gateway read from the database moments ago, kept so that a
//! request costs no database read: the API keys that authenticated, and
//! the deployments that `model` named. Without them every inference
//! request made two reads (the key by its prefix, the deployment by its
//! name), most of the gateway's CPU per request (docs/benchmarks.md).
//!
//! - **Keys** are kept for [`KEY_FOR`] under the SHA-256 of the token
//!   presented (never the token itself), and only once they authenticated:
//!   a refused token is checked against the database every time, and
//!   spends its source's failure budget as before. A kept key still
//!   expires on its own time. A key revoked through this process drops
//!   every kept key at once ([`Store::key_revocations`]); revoked through
//!   another hub or gateway sharing the database, it stops working here
//!   within [`KEY_FOR`] — what `docs/security.md` states.
//! - **Deployments** are kept for [`DEPLOYMENT_FOR`] under their tenant
//!   and name, as long as the gateway's list of their replicas: a deleted
//!   deployment answers 404 within that time, and in the meantime its
//!   requests find no ready replica.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::ids::TenantId;
use crate::store::{AuthenticatedKey, Deployment, Store, now};

/// How long an authenticated key is used without reading it again.
pub const KEY_FOR: Duration = Duration::from_secs(5);
/// How long a deployment found by name is used without reading it again.
pub const DEPLOYMENT_FOR: Duration = Duration::from_secs(2);
/// Entries kept at most per cache; beyond, stale ones are dropped, and if
/// none is stale, all of them.
const MAX_ENTRIES: usize = 100_000;

/// Entries that expire a fixed time after they were made.
#[derive(Debug)]
struct Timed<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
}

impl<K: Hash + Eq, V: Clone> Timed<K, V> {
    fn new(ttl: Duration) -> Self {
        Timed {
            entries: Mutex::default(),
            ttl,
        }
    }

    fn get(&self, key: &K, at: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(made, _)| at.saturating_duration_since(*made) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (made, _)| at.saturating_duration_since(*made) < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (at, value));
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Keys that authenticated in the last [`KEY_FOR`].
#[derive(Debug)]
pub struct KeyCache {
    keys: Timed<[u8; 32], AuthenticatedKey>,
    /// The store's revocation count the kept keys were read under.
    revocations: Mutex<u64>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            keys: Timed::new(KEY_FOR),
            revocations: Mutex::new(0),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl KeyCache {
    /// The key `token` authenticated as moments ago, if it is still good.
    pub fn get(&self, store: &Store, token: &str) -> Option<AuthenticatedKey> {
        self.drop_if_revoked(store);
        let key = self.keys.get(&digest(token), Instant::now())?;
        key.expires_at.is_none_or(|e| e > now()).then_some(key)
    }

    /// Keeps `key`, which `token` authenticated as in a read that began
    /// when the store's revocation count was `revocations`; not kept when
    /// a key was revoked since (the read may have seen it before).
    pub fn put(&self, store: &Store, token: &str, key: AuthenticatedKey, revocations: u64) {
        self.drop_if_revoked(store);
        let seen = *self
            .revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if revocations == seen {
            self.keys.put(digest(token), key, Instant::now());
        }
    }

    fn drop_if_revoked(&self, store: &Store) {
        let current = store.key_revocations();
        let mut seen = self
            .revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *seen != current {
            self.keys.clear();
            *seen = current;
        }
    }
}

/// Deployments found by tenant and name in the last [`DEPLOYMENT_FOR`].
#[derive(Debug)]
pub struct DeploymentCache {
    // Shared, not cloned per request: a deployment row is a few dozen
    // allocations (its conditions, its pods' weights).
    deployments: Timed<(TenantId, String), Arc<Deployment>>,
}

impl Default for DeploymentCache {
    fn default() -> Self {
        DeploymentCache {
            deployments: Timed::new(DEPLOYMENT_FOR),
        }
    }
}

impl DeploymentCache {
    pub fn get(&self, tenant: TenantId, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&(tenant, name.to_owned()), Instant::now())
    }

    pub fn put(&self, deployment: &Arc<Deployment>) {
        self.deployments.put(
            (deployment.tenant, deployment.name.clone()),
            deployment.clone(),
            Instant::now(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_time() {
        let timed = Timed::new(Duration::from_secs(5));
        let t0 = Instant::now();
        timed.put("a", 1, t0);
        assert_eq!(timed.get(&"a", t0 + Duration::from_secs(4)), Some(1));
        assert_eq!(timed.get(&"a", t0 + Duration::from_secs(5)), None);
        assert_eq!(timed.get(&"b", t0), None);
    }

    #[test]
    fn a_full_cache_drops_stale_entries_first() {
        let timed = Timed::new(Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES - 1 {
            timed.put(i, i, t0);
        }
        let fresh = t0 + Duration::from_secs(10);
        timed.put(MAX_ENTRIES, 0, fresh);
        // Full: the next entry drops the stale ones, not the fresh one.
        timed.put(MAX_ENTRIES + 1, 1, fresh);
        assert_eq!(timed.get(&MAX_ENTRIES, fresh), Some(0));
        assert_eq!(timed.get(&(MAX_ENTRIES + 1), fresh), Some(1));
        assert_eq!(timed.get(&0, t0), None);
    }
}
