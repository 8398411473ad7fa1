//! Resource quantities as the scheduler and kubelet count them.
//!
//! Kubernetes writes quantities as strings (`"500m"`, `"16Gi"`, `"8"`,
//! `"1e3"`). Everything here works in thousandths of a unit (milli-units),
//! like the API machinery's `MilliValue`, so CPU, memory and device counts
//! can share one arithmetic. Fractions below a milli-unit round up, as the
//! real parser does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// An amount of some resource, in thousandths of its unit.
pub type Milli = i128;

/// Resource name → amount.
pub type Resources = BTreeMap<String, Milli>;

/// Parses a Kubernetes quantity into milli-units; `None` if it is not one.
pub fn parse(text: &str) -> Option<Milli> {
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // digits × 10^-scale is the number; the suffix then multiplies by
    // numerator / denominator.
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = u32::try_from(fraction.len()).ok()?;
    let (numerator, denominator): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (10_i128.pow(12), 1),
        "P" => (10_i128.pow(15), 1),
        "E" => (10_i128.pow(18), 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exponent => {
            let power: i32 = exponent
                .strip_prefix(['e', 'E'])
                .filter(|p| !p.is_empty())?
                .parse()
                .ok()?;
            if power.unsigned_abs() > 24 {
                return None;
            }
            if power >= 0 {
                (10_i128.pow(power.unsigned_abs()), 1)
            } else {
                (1, 10_i128.pow(power.unsigned_abs()))
            }
        }
    };
    let top = digits.checked_mul(numerator)?.checked_mul(1000)?;
    let bottom = denominator.checked_mul(10_i128.checked_pow(scale)?)?;
    let value = top.div_euclid(bottom) + i128::from(top.rem_euclid(bottom) != 0);
    Some(if negative { -value } else { value })
}

/// Milli-units of a quantity; an unparsable quantity counts as zero, as a
/// quantity the API server would have refused never reaches a node.
pub fn milli(quantity: &Quantity) -> Milli {
    parse(&quantity.0).unwrap_or(0)
}

/// Whole units, rounded up (a request of `500m` GPUs needs a whole one).
pub fn units(value: Milli) -> i128 {
    value.div_euclid(1000) + i128::from(value.rem_euclid(1000) != 0)
}

/// The canonical text for an amount: whole units where exact, else `m`.
pub fn format(value: Milli) -> Quantity {
    if value % 1000 == 0 {
        Quantity((value / 1000).to_string())
    } else {
        Quantity(format!("{value}m"))
    }
}

/// Bytes as kubelets report memory: in `Ki`.
pub fn format_kibibytes(bytes: u64) -> Quantity {
    Quantity(format!("{}Ki", bytes / 1024))
}

/// Resources a map of quantities names, in milli-units.
pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
    list.into_iter()
        .flatten()
        .map(|(name, q)| (name.clone(), milli(q)))
        .collect()
}

/// What one container asks for: its requests, and for a resource with only
/// a limit, the limit (the API server defaults such requests to the limit).
pub fn container_requests(container: &Container) -> Resources {
    let resources = container.resources.as_ref();
    let mut out = from_list(resources.and_then(|r| r.limits.as_ref()));
    out.extend(from_list(resources.and_then(|r| r.requests.as_ref())));
    out
}

/// What a pod needs on a node, as the scheduler computes it: the larger of
/// the sum over app containers and the largest init container, per
/// resource, plus the pod overhead.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut total = Resources::new();
    for container in &spec.containers {
        add(&mut total, &container_requests(container));
    }
    for init in spec.init_containers.iter().flatten() {
        for (name, value) in container_requests(init) {
            let entry = total.entry(name).or_default();
            *entry = (*entry).max(value);
        }
    }
    add(&mut total, &from_list(spec.overhead.as_ref()));
    total
}

/// `into += other`, per resource.
pub fn add(into: &mut Resources, other: &Resources) {
    for (name, value) in other {
        *into.entry(name.clone()).or_default() += value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    #[test]
    fn parses_the_forms_kubernetes_writes() {
        assert_eq!(parse("8"), Some(8_000));
        assert_eq!(parse("500m"), Some(500));
        assert_eq!(parse("1.5"), Some(1_500));
        assert_eq!(parse("2Ki"), Some(2_048_000));
        assert_eq!(parse("16Gi"), Some(16 * (1 << 30) * 1000));
        assert_eq!(parse("1e3"), Some(1_000_000));
        assert_eq!(parse("1E-3"), Some(1));
        assert_eq!(parse("129M"), Some(129_000_000_000));
        assert_eq!(parse("-2"), Some(-2_000));
        assert_eq!(parse(".5"), Some(500));
        // Below a milli-unit rounds up, as the API machinery does.
        assert_eq!(parse("1n"), Some(1));
        for bad in ["", "Gi", "abc", "1x", "1e", "1.2.3"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_whole_units_plainly() {
        assert_eq!(format(8_000).0, "8");
        assert_eq!(format(191_500).0, "191500m");
        assert_eq!(units(1), 1);
        assert_eq!(units(2_000), 2);
        assert_eq!(format_kibibytes(2048).0, "2Ki");
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                    .collect(),
            )
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_requests_take_the_larger_of_apps_and_init_and_default_to_limits() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "2")], &[("nvidia.com/gpu", "4")]),
                container(&[("cpu", "500m"), ("memory", "1Gi")], &[]),
            ],
            init_containers: Some(vec![container(&[("cpu", "4")], &[])]),
            ..Default::default()
        };
        let r = pod_requests(&spec);
        assert_eq!(r["cpu"], 4_000);
        assert_eq!(r["nvidia.com/gpu"], 4_000);
        assert_eq!(r["memory"], (1 << 30) * 1000);
    }
}
