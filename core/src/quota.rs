//! Quota arithmetic: does a tenant's live use plus one more deployment (or
//! one more replica) still fit its limits? Pure: the hub's store reads the
//! limits and the live deployments inside one transaction and asks this
//! module, so the answer is the same on every database backend.
//!
//! A rejection names the limit, what is in use, what the limit is and what
//! the request needs, because "quota exceeded" alone sends people to support.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::ParamCount;
use crate::money::{Currency, Money};

/// A tenant's limits. `None` and absent map entries mean "no limit of this
/// kind"; an accelerator class without its own limit is still bounded by
/// `total_devices`, and a currency without a spend ceiling is unbounded in
/// that currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Devices per accelerator class, by accelerator id (`h100-80gb: 16`).
    #[serde(default)]
    pub devices_per_accelerator: BTreeMap<String, u64>,
    /// Devices of all classes together.
    pub total_devices: Option<u64>,
    /// Deployments that exist at once (not deleted).
    pub deployments: Option<u64>,
    /// The largest model, in parameters (total, for mixture-of-experts).
    pub max_model_params: Option<ParamCount>,
    /// What all live deployments may cost per hour, per currency.
    #[serde(default)]
    pub spend_per_hour: BTreeMap<Currency, Money>,
}

impl Quota {
    /// No limits at all: for platform-internal tenants and tests.
    pub fn unlimited() -> Self {
        Quota {
            devices_per_accelerator: BTreeMap::new(),
            total_devices: None,
            deployments: None,
            max_model_params: None,
            spend_per_hour: BTreeMap::new(),
        }
    }

    /// Nothing may be deployed until an administrator sets limits: the safe
    /// default for a new paying tenant.
    pub fn nothing() -> Self {
        Quota {
            total_devices: Some(0),
            deployments: Some(0),
            ..Quota::unlimited()
        }
    }

    pub fn accelerator_devices(mut self, accelerator: &str, devices: u64) -> Self {
        self.devices_per_accelerator
            .insert(accelerator.to_owned(), devices);
        self
    }

    pub fn total_devices(mut self, devices: u64) -> Self {
        self.total_devices = Some(devices);
        self
    }

    pub fn deployments(mut self, deployments: u64) -> Self {
        self.deployments = Some(deployments);
        self
    }

    pub fn max_model_params(mut self, params: ParamCount) -> Self {
        self.max_model_params = Some(params);
        self
    }

    pub fn spend_per_hour(mut self, ceiling: Money) -> Self {
        self.spend_per_hour.insert(ceiling.currency(), ceiling);
        self
    }
}

/// What one deployment holds while it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub accelerator: String,
    pub devices_per_replica: u32,
    pub replicas: u32,
    pub model_params: ParamCount,
    /// The price of one replica's devices for one hour.
    pub replica_cost_per_hour: Money,
}

impl Footprint {
    pub fn devices(&self) -> u64 {
        u64::from(self.devices_per_replica) * u64::from(self.replicas)
    }

    /// Cost per hour of all replicas, in micro-units (i128: cannot overflow).
    pub fn cost_micros_per_hour(&self) -> i128 {
        i128::from(self.replica_cost_per_hour.micros()) * i128::from(self.replicas)
    }
}

/// A tenant's live use, summed over its deployments that are not deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub devices_per_accelerator: BTreeMap<String, u64>,
    pub deployments: u64,
    /// Micro-units per hour, per currency.
    pub spend_micros_per_hour: BTreeMap<Currency, i128>,
}

impl Usage {
    pub fn total_devices(&self) -> u64 {
        self.devices_per_accelerator.values().sum()
    }

    pub fn devices_of(&self, accelerator: &str) -> u64 {
        self.devices_per_accelerator
            .get(accelerator)
            .copied()
            .unwrap_or(0)
    }

    pub fn spend_of(&self, currency: Currency) -> i128 {
        self.spend_micros_per_hour
            .get(&currency)
            .copied()
            .unwrap_or(0)
    }

    /// Adds one live deployment.
    pub fn add(&mut self, footprint: &Footprint) {
        *self
            .devices_per_accelerator
            .entry(footprint.accelerator.clone())
            .or_default() += footprint.devices();
        self.deployments += 1;
        *self
            .spend_micros_per_hour
            .entry(footprint.replica_cost_per_hour.currency())
            .or_default() += footprint.cost_micros_per_hour();
    }
}

/// Which limit a request ran into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "of", rename_all = "kebab-case")]
pub enum Limit {
    AcceleratorDevices(String),
    TotalDevices,
    Deployments,
    ModelSize,
    SpendPerHour(Currency),
}

impl Limit {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Limit::AcceleratorDevices(_) => "accelerator_devices",
            Limit::TotalDevices => "total_devices",
            Limit::Deployments => "deployments",
            Limit::ModelSize => "model_size",
            Limit::SpendPerHour(_) => "spend_per_hour",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::AcceleratorDevices(id) => write!(f, "{id} devices"),
            Limit::TotalDevices => f.write_str("total devices"),
            Limit::Deployments => f.write_str("concurrent deployments"),
            Limit::ModelSize => f.write_str("model size"),
            Limit::SpendPerHour(currency) => write!(f, "hourly spend in {currency}"),
        }
    }
}

/// A quantity in a rejection, printed the way its limit is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Amount {
    Count(u64),
    Params(ParamCount),
    Money(Money),
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Params(p) => write!(f, "{p} parameters"),
            Amount::Money(m) => write!(f, "{m}"),
        }
    }
}

/// Whether a rejected request was a new deployment or a bigger one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    NewDeployment,
    Resize,
}

/// A request that does not fit. `needs` is what the request adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct QuotaExceeded {
    pub limit: Limit,
    pub in_use: Amount,
    pub allowed: Amount,
    pub needs: Amount,
    pub request: Request,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let QuotaExceeded {
            limit,
            in_use,
            allowed,
            needs,
            request,
        } = self;
        if *limit == Limit::ModelSize {
            return write!(
                f,
                "quota exceeded: {limit} — the largest allowed is {allowed}, this model has {needs}"
            );
        }
        write!(
            f,
            "quota exceeded: {limit} — {in_use} of {allowed} in use, "
        )?;
        match request {
            Request::NewDeployment => write!(f, "this deployment needs {needs}"),
            Request::Resize => write!(f, "this change needs {needs} more"),
        }
    }
}

/// Whether a new deployment fits next to the tenant's live ones.
pub fn check_admission(quota: &Quota, usage: &Usage, new: &Footprint) -> Result<(), QuotaExceeded> {
    if let Some(max) = quota.max_model_params
        && new.model_params > max
    {
        return Err(QuotaExceeded {
            limit: Limit::ModelSize,
            in_use: Amount::Count(0),
            allowed: Amount::Params(max),
            needs: Amount::Params(new.model_params),
            request: Request::NewDeployment,
        });
    }
    if let Some(max) = quota.deployments
        && usage.deployments + 1 > max
    {
        return Err(QuotaExceeded {
            limit: Limit::Deployments,
            in_use: Amount::Count(usage.deployments),
            allowed: Amount::Count(max),
            needs: Amount::Count(1),
            request: Request::NewDeployment,
        });
    }
    check_growth(
        quota,
        usage,
        &new.accelerator,
        new.devices(),
        new.replica_cost_per_hour.currency(),
        new.cost_micros_per_hour(),
        Request::NewDeployment,
    )
}

/// Whether a live deployment may go from `current.replicas` to `replicas`.
/// `usage` includes `current`. Shrinking always fits.
pub fn check_resize(
    quota: &Quota,
    usage: &Usage,
    current: &Footprint,
    replicas: u32,
) -> Result<(), QuotaExceeded> {
    let Some(extra) = replicas.checked_sub(current.replicas) else {
        return Ok(());
    };
    let grown = Footprint {
        replicas: extra,
        ..current.clone()
    };
    check_growth(
        quota,
        usage,
        &current.accelerator,
        grown.devices(),
        current.replica_cost_per_hour.currency(),
        grown.cost_micros_per_hour(),
        Request::Resize,
    )
}

fn check_growth(
    quota: &Quota,
    usage: &Usage,
    accelerator: &str,
    devices: u64,
    currency: Currency,
    cost_micros: i128,
    request: Request,
) -> Result<(), QuotaExceeded> {
    let count_limit = |limit: Limit, in_use: u64, max: u64| {
        if in_use.saturating_add(devices) > max {
            Err(QuotaExceeded {
                limit,
                in_use: Amount::Count(in_use),
                allowed: Amount::Count(max),
                needs: Amount::Count(devices),
                request,
            })
        } else {
            Ok(())
        }
    };
    if let Some(&max) = quota.devices_per_accelerator.get(accelerator) {
        count_limit(
            Limit::AcceleratorDevices(accelerator.to_owned()),
            usage.devices_of(accelerator),
            max,
        )?;
    }
    if let Some(max) = quota.total_devices {
        count_limit(Limit::TotalDevices, usage.total_devices(), max)?;
    }
    if let Some(ceiling) = quota.spend_per_hour.get(&currency) {
        let in_use = usage.spend_of(currency);
        if in_use + cost_micros > i128::from(ceiling.micros()) {
            let money = |micros: i128| {
                Amount::Money(Money::from_micros(
                    i64::try_from(micros).unwrap_or(i64::MAX),
                    currency,
                ))
            };
            return Err(QuotaExceeded {
                limit: Limit::SpendPerHour(currency),
                in_use: money(in_use),
                allowed: Amount::Money(*ceiling),
                needs: money(cost_micros),
                request,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Money {
        Money::parse_amount(text, Currency::Usd).unwrap()
    }

    fn h100(devices_per_replica: u32, replicas: u32) -> Footprint {
        Footprint {
            accelerator: "h100-80gb".into(),
            devices_per_replica,
            replicas,
            model_params: ParamCount::billions(70),
            replica_cost_per_hour: usd("10"),
        }
    }

    #[test]
    fn rejection_names_the_limit_the_use_and_the_need() {
        let quota = Quota::unlimited().accelerator_devices("h100-80gb", 16);
        let mut usage = Usage::default();
        usage.add(&h100(4, 3));
        let err = check_admission(&quota, &usage, &h100(8, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "quota exceeded: h100-80gb devices — 12 of 16 in use, this deployment needs 8"
        );
        assert_eq!(err.limit.metric_label(), "accelerator_devices");
        assert!(check_admission(&quota, &usage, &h100(4, 1)).is_ok());
    }

    #[test]
    fn every_kind_of_limit_rejects() {
        let mut usage = Usage::default();
        usage.add(&h100(8, 1));
        let cases = [
            (
                Quota::unlimited().total_devices(10),
                "quota exceeded: total devices — 8 of 10 in use, this deployment needs 8",
            ),
            (
                Quota::unlimited().deployments(1),
                "quota exceeded: concurrent deployments — 1 of 1 in use, this deployment needs 1",
            ),
            (
                Quota::unlimited().max_model_params(ParamCount::billions(8)),
                "quota exceeded: model size — the largest allowed is 8.00B parameters, \
                 this model has 70.00B parameters",
            ),
            (
                Quota::unlimited().spend_per_hour(usd("15")),
                "quota exceeded: hourly spend in USD — 10.00 USD of 15.00 USD in use, \
                 this deployment needs 10.00 USD",
            ),
        ];
        for (quota, message) in cases {
            let err = check_admission(&quota, &usage, &h100(8, 1)).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn other_classes_and_currencies_are_not_limited_by_a_class_limit() {
        let quota = Quota::unlimited()
            .accelerator_devices("ascend-910b", 0)
            .spend_per_hour(Money::parse_amount("1", Currency::Cny).unwrap());
        assert!(check_admission(&quota, &Usage::default(), &h100(8, 2)).is_ok());
        let nothing = Quota::nothing();
        assert!(check_admission(&nothing, &Usage::default(), &h100(1, 1)).is_err());
    }

    #[test]
    fn resize_checks_only_the_growth() {
        let quota = Quota::unlimited().accelerator_devices("h100-80gb", 16);
        let current = h100(4, 2);
        let mut usage = Usage::default();
        usage.add(&current);
        assert!(check_resize(&quota, &usage, &current, 4).is_ok());
        assert!(check_resize(&quota, &usage, &current, 1).is_ok());
        let err = check_resize(&quota, &usage, &current, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "quota exceeded: h100-80gb devices — 8 of 16 in use, this change needs 12 more"
        );
    }

    #[test]
    fn sequential_admissions_stop_exactly_at_the_limit() {
        // 16 devices, deployments of 3: five fit (15), the sixth does not.
        let quota = Quota::unlimited().accelerator_devices("h100-80gb", 16);
        let mut usage = Usage::default();
        let mut admitted = 0;
        for _ in 0..10 {
            if check_admission(&quota, &usage, &h100(3, 1)).is_ok() {
                usage.add(&h100(3, 1));
                admitted += 1;
            }
        }
        assert_eq!(admitted, 5);
        assert_eq!(usage.total_devices(), 15);
    }
}
