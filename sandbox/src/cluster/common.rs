//! Small facts about pods and objects that every part of the simulated
//! cluster reads the same way, and the clock and hashes they share.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;

/// Now, as `modelfleet_clock` tells it: the wall clock, or the simulated
/// one a month-long test moves. jiff's own `now()` needs its `std`
/// feature, which k8s-openapi does not turn on.
pub fn now() -> Timestamp {
    timestamp(modelfleet_clock::now())
}

fn timestamp(at: SystemTime) -> Timestamp {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanosecond(since_epoch.as_nanos() as i128).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn later(at: Timestamp, by: Duration) -> Timestamp {
    at.checked_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `at`; zero if it has passed.
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

pub fn time(at: Timestamp) -> Time {
    Time(at)
}

/// FNV-1a, 64 bits: stable across runs and platforms, which std's hasher
/// is not. Used for template hashes and made-up ids that must not change
/// between two renderings of the same object.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// FNV-1a, 32 bits, the hash the Deployment controller uses for
/// `pod-template-hash`.
pub fn fnv32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Encodes a hash the way apimachinery's `rand.SafeEncodeString` does: an
/// alphabet without vowels or look-alike characters, so generated names
/// never spell words.
pub fn safe_encode(value: u64) -> String {
    value
        .to_string()
        .bytes()
        .map(|digit| SAFE_ALPHABET[usize::from(digit) % SAFE_ALPHABET.len()] as char)
        .collect()
}

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters from the safe alphabet, different on every call: the
/// random part of a generated name (`<deployment>-<hash>-<suffix>`).
pub fn random_suffix(n: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    // The real clock, not the simulated one: that stands still between a
    // test's steps, and two runs of a test must not draw the same names.
    let seed = timestamp(SystemTime::now()).as_nanosecond();
    let mut value = fnv64(format!("{seed}/{call}").as_bytes());
    let alphabet = SAFE_ALPHABET;
    (0..n)
        .map(|_| {
            let c = alphabet[(value % alphabet.len() as u64) as usize] as char;
            value /= alphabet.len() as u64;
            c
        })
        .collect()
}

/// `n` hex digits derived from `seed`, for ids (container ids, machine
/// ids) that must look real and stay the same for the same seed.
pub fn hex_id(seed: &str, n: usize) -> String {
    let mut out = String::with_capacity(n + 16);
    let mut round = 0u64;
    while out.len() < n {
        out.push_str(&format!(
            "{:016x}",
            fnv64(format!("{seed}/{round}").as_bytes())
        ));
        round += 1;
    }
    out.truncate(n);
    out
}

pub fn name_of<K: Resource>(object: &K) -> &str {
    object.meta().name.as_deref().unwrap_or_default()
}

pub fn namespace_of<K: Resource>(object: &K) -> &str {
    object.meta().namespace.as_deref().unwrap_or_default()
}

pub fn label<'a, K: Resource>(object: &'a K, key: &str) -> Option<&'a str> {
    object.meta().labels.as_ref()?.get(key).map(String::as_str)
}

pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Succeeded or Failed: the pod holds no resources and will not run again.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Counted by its controller: neither finished nor on its way out.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_terminating(pod)
}

fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

pub fn is_ready(pod: &Pod) -> bool {
    pod_condition(pod, "Ready") == Some("True")
}

/// When the pod last became Ready, for `minReadySeconds`.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The owner reference a controller puts on what it creates.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    controller_ref_with(owner, &())
}

pub fn controller_ref_with<K: Resource>(owner: &K, dyntype: &K::DynamicType) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(dyntype).into_owned(),
        kind: K::kind(dyntype).into_owned(),
        name: name_of(owner).to_owned(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `uid` is the controller of `object`.
pub fn is_controlled_by<K: Resource>(object: &K, uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// The HTTP status of an API error (`404`, `409`, …), if it is one.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Grows from `base` by doubling to `cap`: the backoff every loop here uses
/// after a failed API call, so that an API server in trouble is not
/// hammered.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            next: base,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_encoded_without_vowels() {
        // Reference values of FNV-1a for "a".
        assert_eq!(fnv32(b"a"), 0xe40c_292c);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let encoded = safe_encode(u64::from(fnv32(b"template")));
        assert!(!encoded.is_empty());
        assert!(
            encoded.chars().all(|c| !"aeiou013".contains(c)),
            "{encoded}"
        );
        assert_eq!(hex_id("x", 64).len(), 64);
        assert_eq!(hex_id("x", 12), hex_id("x", 12));
        assert_ne!(hex_id("x", 12), hex_id("y", 12));
        let (a, b) = (random_suffix(5), random_suffix(5));
        assert_eq!(a.len(), 5);
        assert_ne!(a, b);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        let delays: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [10, 20, 35, 35]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 10);
    }

    #[test]
    fn time_arithmetic_saturates() {
        let t = Timestamp::from_second(100).unwrap();
        assert_eq!(
            until(t, later(t, Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(until(later(t, Duration::from_secs(5)), t), Duration::ZERO);
    }
}
