//! How the hub tells the operators whether a ModelDeployment may run: it
//! writes these annotations on every ModelDeployment of the clusters it
//! manages — `admitted` on those it places itself or admits against the
//! tenant's quota, `rejected` with a reason and message on the others. An
//! operator started with the cluster's admission key runs only admitted ones.
//!
//! An annotation alone proves nothing: whoever can write the object (a
//! tenant with kubectl) can write it too. So an admission is *sealed*: the
//! hub puts the spec it admitted in [`SPEC_ANNOTATION`] and an HMAC-SHA256
//! of it and the object's namespace, name and uid in
//! [`SIGNATURE_ANNOTATION`], with a
//! key per cluster that only the hub and that cluster's operator hold
//! ([`AdmissionKey`]). The operator runs a spec only when the seal is the
//! hub's and the spec is the one sealed ([`check`]); a spec changed since
//! is held ([`REASON_CHANGED`]) until the hub seals the change, and a seal
//! copied onto another object — or onto the same manifest applied again
//! after a deletion — does not fit its uid.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::condition::reason;
use crate::crd::{ModelDeployment, ModelDeploymentSpec};

/// `admitted` or `rejected`; absent while the hub has not decided.
pub const ANNOTATION: &str = "modelfleet.io/admission";
/// Why it was rejected, one CamelCase word (`QuotaExceeded`, `NoTenant`).
pub const REASON_ANNOTATION: &str = "modelfleet.io/admission-reason";
/// The rejection in words, e.g. which quota limit and by how much.
pub const MESSAGE_ANNOTATION: &str = "modelfleet.io/admission-message";
pub const ADMITTED: &str = "admitted";
pub const REJECTED: &str = "rejected";
/// Over the tenant's quota.
pub const REASON_QUOTA_EXCEEDED: &str = "QuotaExceeded";
/// The tenant's budget refuses at its limit, and this month's spend has
/// reached it.
pub const REASON_BUDGET_EXHAUSTED: &str = "BudgetExhausted";
/// An engine image or flag the platform does not allow
/// (`contract::engine`).
pub const REASON_ENGINE_NOT_ALLOWED: &str = "EngineNotAllowed";
/// In a namespace no tenant is mapped to.
pub const REASON_NO_TENANT: &str = "NoTenant";
/// The tenant already has a deployment of that name elsewhere.
pub const REASON_NAME_TAKEN: &str = "NameTaken";
/// The spec cannot be planned whatever the cluster (as the operator says).
pub const REASON_INVALID_SPEC: &str = reason::INVALID_SPEC;
/// Cannot be planned on the cluster's pools (so not counted either).
pub const REASON_NO_FEASIBLE_PLAN: &str = reason::NO_FEASIBLE_PLAN;

/// The spec the hub admitted, as canonical JSON.
pub const SPEC_ANNOTATION: &str = "modelfleet.io/admitted-spec";
/// `v1.` and the hex HMAC-SHA256 of the namespace, name, uid and admitted
/// spec.
pub const SIGNATURE_ANNOTATION: &str = "modelfleet.io/admission-signature";
/// The spec is not the one the hub admitted (or the seal is not the hub's):
/// nothing new runs until the hub admits the change.
pub const REASON_CHANGED: &str = "ChangedSinceAdmission";

const SIGNATURE_VERSION: &str = "v1.";

/// A cluster's admission key: 32 bytes the hub derives per cluster and the
/// cluster's operator is given. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdmissionKey([u8; 32]);

impl std::fmt::Debug for AdmissionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionKey(<redacted>)")
    }
}

/// Why a text is not an admission key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an admission key is 64 hexadecimal characters (32 bytes)")]
pub struct BadAdmissionKey;

impl AdmissionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AdmissionKey(bytes)
    }

    /// From 64 hex characters (surrounding whitespace ignored, so a file
    /// with a trailing newline reads).
    pub fn from_hex(text: &str) -> Result<Self, BadAdmissionKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| BadAdmissionKey)?;
        Ok(AdmissionKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The API key the engines in `namespace` require, derived from this
    /// key so the hub (whose gateway calls them) and the operator (which
    /// writes it into the namespace's Secret) agree without storing or
    /// sending it. One per namespace: a key read in one tenant's namespace
    /// opens no other tenant's engines.
    pub fn engine_api_key(&self, namespace: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(b"modelfleet engine api key v1\0");
        mac.update(namespace.as_bytes());
        format!("mfe-{}", hex::encode(mac.finalize().into_bytes()))
    }

    fn mac(&self, object: &Object, spec: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key");
        let parts = [
            "modelfleet admission v1",
            object.namespace,
            object.name,
            object.uid,
            spec,
        ];
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The signature of `spec` admitted for `object`.
    fn sign(&self, object: &Object, spec: &str) -> String {
        let tag = self.mac(object, spec).finalize().into_bytes();
        format!("{SIGNATURE_VERSION}{}", hex::encode(tag))
    }

    /// Whether `signature` is this key's for `spec` on `object` (compared
    /// in constant time).
    fn verifies(&self, object: &Object, spec: &str, signature: &str) -> bool {
        let Some(tag) = signature
            .strip_prefix(SIGNATURE_VERSION)
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        self.mac(object, spec).verify_slice(&tag).is_ok()
    }
}

/// Which object a seal is for.
struct Object<'a> {
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
}

impl<'a> Object<'a> {
    fn of(md: &'a ModelDeployment) -> Self {
        Object {
            namespace: md.metadata.namespace.as_deref().unwrap_or_default(),
            name: md.metadata.name.as_deref().unwrap_or_default(),
            uid: md.metadata.uid.as_deref().unwrap_or_default(),
        }
    }
}

/// A spec as the seal covers it: its JSON, fields in declaration order and
/// defaults filled in, so the spec the hub wrote and the one the API
/// server hands back read the same.
pub fn canonical(spec: &ModelDeploymentSpec) -> String {
    serde_json::to_string(spec).expect("a spec serializes")
}

/// Seals `md`'s current spec as admitted: the annotations to write. `md`
/// is the stored object (its uid is part of the seal); one without a uid
/// gets a seal no stored object fits.
pub fn seal(md: &ModelDeployment, key: &AdmissionKey) -> [(&'static str, String); 3] {
    let spec = canonical(&md.spec);
    let signature = key.sign(&Object::of(md), &spec);
    [
        (ANNOTATION, ADMITTED.to_owned()),
        (SPEC_ANNOTATION, spec),
        (SIGNATURE_ANNOTATION, signature),
    ]
}

/// Sets the seal's annotations on `md` (before the hub writes it).
pub fn seal_in_place(md: &mut ModelDeployment, key: &AdmissionKey) {
    let sealed = seal(md, key);
    let annotations = md.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in sealed {
        annotations.insert(k.to_owned(), v);
    }
}

/// The fields of a spec that differ between `admitted` and `now`, by their
/// names in the manifest (`replicas`, `serving.image`, …).
pub fn changed_fields(
    admitted: &ModelDeploymentSpec,
    now: &ModelDeploymentSpec,
) -> Vec<&'static str> {
    let (a, n) = (&admitted.serving, &now.serving);
    [
        ("model", admitted.model != now.model),
        ("architecture", admitted.architecture != now.architecture),
        ("source", admitted.source != now.source),
        ("replicas", admitted.replicas != now.replicas),
        ("placement", admitted.placement != now.placement),
        ("serving.image", a.image != n.image),
        ("serving.extraArgs", a.extra_args != n.extra_args),
        ("serving.runtime", a.runtime != n.runtime),
        ("serving.precision", a.precision != n.precision),
        ("serving.maxModelLen", a.max_model_len != n.max_model_len),
        ("serving.concurrency", a.concurrency != n.concurrency),
        (
            "serving.gpuMemoryUtilization",
            a.gpu_memory_utilization != n.gpu_memory_utilization,
        ),
        (
            "serving.tensorParallelSize",
            a.tensor_parallel_size != n.tensor_parallel_size,
        ),
        (
            "serving.pipelineParallelSize",
            a.pipeline_parallel_size != n.pipeline_parallel_size,
        ),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// What the seal on a ModelDeployment says.
#[derive(Debug, Clone, PartialEq)]
pub enum Sealed {
    /// The hub admitted exactly this spec.
    Current,
    /// The hub admitted `admitted`; the spec has changed since.
    Changed { admitted: Box<ModelDeploymentSpec> },
    /// No seal, or one that is not the hub's (forged, copied from another
    /// object, or made with another key).
    Unsealed,
}

/// Checks `md`'s seal with the cluster's key.
pub fn check(md: &ModelDeployment, key: &AdmissionKey) -> Sealed {
    let annotations = md.metadata.annotations.as_ref();
    let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let (Some(spec), Some(signature)) = (get(SPEC_ANNOTATION), get(SIGNATURE_ANNOTATION)) else {
        return Sealed::Unsealed;
    };
    if md.metadata.uid.is_none() || !key.verifies(&Object::of(md), spec, signature) {
        return Sealed::Unsealed;
    }
    if spec == canonical(&md.spec) {
        return Sealed::Current;
    }
    match serde_json::from_str::<ModelDeploymentSpec>(spec) {
        Ok(admitted) => Sealed::Changed {
            admitted: Box::new(admitted),
        },
        Err(_) => Sealed::Unsealed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_api_keys_differ_by_namespace_and_by_cluster_key() {
        let a = AdmissionKey::from_bytes([1; 32]);
        let b = AdmissionKey::from_bytes([2; 32]);
        assert_eq!(a.engine_api_key("mf-acme"), a.engine_api_key("mf-acme"));
        assert_ne!(a.engine_api_key("mf-acme"), a.engine_api_key("mf-globex"));
        assert_ne!(a.engine_api_key("mf-acme"), b.engine_api_key("mf-acme"));
        assert!(a.engine_api_key("mf-acme").starts_with("mfe-"));
        assert_eq!(a.engine_api_key("mf-acme").len(), 4 + 64);
    }

    fn md(name: &str, replicas: u32) -> ModelDeployment {
        let mut md = ModelDeployment::new(
            name,
            ModelDeploymentSpec {
                model: "llama-3.1-8b".into(),
                architecture: None,
                source: "s3://models/llama".into(),
                source_secret: None,
                serving: Default::default(),
                replicas,
                placement: Default::default(),
            },
        );
        md.metadata.namespace = Some("mf-acme".into());
        md.metadata.uid = Some(format!("uid-of-{name}"));
        md
    }

    #[test]
    fn a_seal_holds_for_its_spec_only() {
        let key = AdmissionKey::from_bytes([7; 32]);
        let mut sealed = md("llama", 1);
        seal_in_place(&mut sealed, &key);
        assert_eq!(check(&sealed, &key), Sealed::Current);
        // Another key (another cluster's, or a guess) does not verify.
        assert_eq!(
            check(&sealed, &AdmissionKey::from_bytes([8; 32])),
            Sealed::Unsealed
        );

        // Scaled after admission: changed, and what was admitted is known.
        let mut scaled = sealed.clone();
        scaled.spec.replicas = 20;
        let Sealed::Changed { admitted } = check(&scaled, &key) else {
            panic!("changed");
        };
        assert_eq!(admitted.replicas, 1);
        assert_eq!(changed_fields(&admitted, &scaled.spec), ["replicas"]);

        // The seal copied onto another name, or a spec edited inside the
        // annotation, is no seal at all.
        let mut copied = md("other", 1);
        copied.metadata.annotations = sealed.metadata.annotations.clone();
        assert_eq!(check(&copied, &key), Sealed::Unsealed);
        // …and the same manifest applied again after a deletion is
        // another object.
        let mut again = sealed.clone();
        again.metadata.uid = Some("a-new-uid".into());
        assert_eq!(check(&again, &key), Sealed::Unsealed);
        let mut edited = scaled.clone();
        let spec = canonical(&scaled.spec);
        edited
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(SPEC_ANNOTATION.into(), spec);
        assert_eq!(check(&edited, &key), Sealed::Unsealed);
        // `admitted` alone is not a seal.
        let mut forged = md("llama", 1);
        forged.metadata.annotations = Some([(ANNOTATION.to_owned(), ADMITTED.to_owned())].into());
        assert_eq!(check(&forged, &key), Sealed::Unsealed);
    }

    #[test]
    fn keys_read_from_hex_and_never_print() {
        let key = AdmissionKey::from_bytes([0xab; 32]);
        assert_eq!(
            AdmissionKey::from_hex(&format!("{}\n", key.to_hex())),
            Ok(key.clone())
        );
        assert_eq!(AdmissionKey::from_hex("abc"), Err(BadAdmissionKey));
        assert!(!format!("{key:?}").contains("ab"));
    }
}
