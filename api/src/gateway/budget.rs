//! The budget check on the inference path: a tenant whose `refuseAtLimit`
//! budget is spent gets no more answers (429 `insufficient_quota`, as
//! OpenAI answers an account out of credit) until a tenant admin raises
//! the budget or the month ends.
//!
//! Rating a month ([`crate::billing::budget_refusal`]) reads prices,
//! intervals and tokens: far too slow for every request. Each tenant's
//! verdict is kept for [`VERDICT_FOR`], so a tenant costs one rating per
//! few seconds however many requests it sends, and spend that crosses the
//! limit is refused within that time (tokens of requests in flight then
//! still count: the budget can be passed by what those few seconds
//! served). A rating that fails lets requests through, and is retried at
//! the next request: a database hiccup must not take every tenant's
//! inference down.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;

use super::error::OpenAiError;
use crate::billing::budget_refusal;
use crate::ids::TenantId;
use crate::store::Store;

/// How long a tenant's verdict is used before the budget is rated again.
pub const VERDICT_FOR: Duration = Duration::from_secs(5);

/// Tenants whose verdicts are kept at most; beyond, stale ones are dropped.
const MAX_TENANTS: usize = 100_000;

/// Each tenant's last verdict: `Some(reason)` when refused.
#[derive(Debug, Default)]
pub struct BudgetGate {
    verdicts: Mutex<HashMap<TenantId, (Instant, Option<String>)>>,
}

impl BudgetGate {
    fn cached(&self, tenant: TenantId, now: Instant) -> Option<Option<String>> {
        let verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        verdicts
            .get(&tenant)
            .filter(|(at, _)| now.duration_since(*at) < VERDICT_FOR)
            .map(|(_, refusal)| refusal.clone())
    }

    fn remember(&self, tenant: TenantId, now: Instant, refusal: Option<String>) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        if verdicts.len() >= MAX_TENANTS {
            verdicts.retain(|_, (at, _)| now.duration_since(*at) < VERDICT_FOR);
        }
        verdicts.insert(tenant, (now, refusal));
    }

    /// Refuses `tenant`'s request if its budget says so.
    pub async fn check(&self, store: &Store, tenant: TenantId) -> Result<(), OpenAiError> {
        let now = Instant::now();
        let refusal = match self.cached(tenant, now) {
            Some(refusal) => refusal,
            None => match budget_refusal(store, tenant).await {
                Ok(refusal) => {
                    self.remember(tenant, now, refusal.clone());
                    refusal
                }
                Err(e) => {
                    warn!(%tenant, error = %e, "cannot rate this month's spend for the budget; letting the request through");
                    None
                }
            },
        };
        match refusal {
            Some(reason) => Err(OpenAiError::insufficient_quota(reason)),
            None => Ok(()),
        }
    }
}
