//! Request bodies in the Kubernetes protobuf encoding, for the kinds
//! kubectl's `create` generators send that way (`kubectl create namespace`,
//! `create configmap`, `create secret`, `create serviceaccount`, `create
//! role|clusterrole|rolebinding|clusterrolebinding`), the reviews of
//! `kubectl auth`, and the DeleteOptions client-go's typed clients send
//! with a delete (Helm's, purging its release Secrets). The server answers in JSON, which
//! kubectl accepts. Other kinds answer 415 with a hint to use
//! `kubectl apply`, which sends JSON.
//!
//! The envelope is the `k8s\0` magic and a `runtime.Unknown` message
//! (type meta, raw object); the object's field numbers are those of the
//! `k8s.io/api` `generated.proto` files.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::super::error::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field: number and raw value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let bytes = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Field::Bytes(bytes)
            }
            1 => {
                pos += 8;
                Field::Varint(0)
            }
            5 => {
                pos += 4;
                Field::Varint(0)
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// A `map<string, …>` entry: key 1, value 2.
fn entry(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Field::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Some((key, value))
}

fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => drop(meta.insert("name".into(), text(b))),
            (2, Field::Bytes(b)) => drop(meta.insert("generateName".into(), text(b))),
            (3, Field::Bytes(b)) => drop(meta.insert("namespace".into(), text(b))),
            (11, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                labels.insert(k, text(v));
            }
            (12, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                annotations.insert(k, text(v));
            }
            (14, Field::Bytes(b)) => finalizers.push(text(b)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A message of string fields, named by number.
fn strings(bytes: &[u8], names: &[(u64, &str)]) -> Option<Value> {
    let mut obj = json!({});
    for (n, f) in fields(bytes)? {
        if let (Some((_, name)), Field::Bytes(b)) = (names.iter().find(|(m, _)| *m == n), f) {
            obj[*name] = text(b);
        }
    }
    Some(obj)
}

/// The spec of an access or rules review (kubectl's `auth can-i`).
fn review_spec(kind: &str, bytes: &[u8]) -> Option<Value> {
    const RESOURCE: &[(u64, &str)] = &[
        (1, "namespace"),
        (2, "verb"),
        (3, "group"),
        (4, "version"),
        (5, "resource"),
        (6, "subresource"),
        (7, "name"),
    ];
    let mut spec = json!({});
    let mut groups = Vec::new();
    for (n, f) in fields(bytes)? {
        match (kind, n, f) {
            ("SelfSubjectRulesReview", 1, Field::Bytes(b)) => spec["namespace"] = text(b),
            ("SelfSubjectRulesReview", _, _) => {}
            (_, 1, Field::Bytes(b)) => spec["resourceAttributes"] = strings(b, RESOURCE)?,
            (_, 2, Field::Bytes(b)) => {
                spec["nonResourceAttributes"] = strings(b, &[(1, "path"), (2, "verb")])?;
            }
            ("SubjectAccessReview", 3, Field::Bytes(b)) => spec["user"] = text(b),
            ("SubjectAccessReview", 4, Field::Bytes(b)) => groups.push(text(b)),
            _ => {}
        }
    }
    if !groups.is_empty() {
        spec["groups"] = Value::Array(groups);
    }
    Some(spec)
}

/// A `PolicyRule`: verbs 1, apiGroups 2, resources 3, resourceNames 4,
/// nonResourceURLs 5, all repeated strings.
fn policy_rule(bytes: &[u8]) -> Option<Value> {
    let names = [
        "verbs",
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
    ];
    let mut rule = json!({});
    for (n, f) in fields(bytes)? {
        if let (Some(name), Field::Bytes(b)) =
            (n.checked_sub(1).and_then(|i| names.get(i as usize)), f)
        {
            match rule.get_mut(*name).and_then(Value::as_array_mut) {
                Some(list) => list.push(text(b)),
                None => rule[*name] = json!([text(b)]),
            }
        }
    }
    Some(rule)
}

/// The RBAC kinds `kubectl create role|clusterrole|rolebinding|
/// clusterrolebinding` send.
fn rbac_field(kind: &str, n: u64, bytes: &[u8], obj: &mut Value) -> Option<()> {
    match (kind, n) {
        ("Role" | "ClusterRole", 2) => push(obj, "rules", policy_rule(bytes)?),
        ("ClusterRole", 3) => {
            let selectors: Vec<Value> = fields(bytes)?
                .into_iter()
                .filter_map(|(n, f)| match (n, f) {
                    (1, Field::Bytes(b)) => label_selector(b),
                    _ => None,
                })
                .collect();
            obj["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
        }
        ("RoleBinding" | "ClusterRoleBinding", 2) => push(
            obj,
            "subjects",
            strings(
                bytes,
                &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
            )?,
        ),
        ("RoleBinding" | "ClusterRoleBinding", 3) => {
            obj["roleRef"] = strings(bytes, &[(1, "apiGroup"), (2, "kind"), (3, "name")])?;
        }
        _ => {}
    }
    Some(())
}

fn push(obj: &mut Value, field: &str, item: Value) {
    match obj.get_mut(field).and_then(Value::as_array_mut) {
        Some(list) => list.push(item),
        None => obj[field] = json!([item]),
    }
}

/// A `LabelSelector` with `matchLabels` only (map entries in field 1).
fn label_selector(bytes: &[u8]) -> Option<Value> {
    let mut labels = Map::new();
    for (n, f) in fields(bytes)? {
        if let (1, Field::Bytes(b)) = (n, f) {
            let (k, v) = entry(b)?;
            labels.insert(k, text(v));
        }
    }
    Some(json!({"matchLabels": labels}))
}

const RBAC_KINDS: &[&str] = &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];

const REVIEWS: &[&str] = &[
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SubjectAccessReview",
    "SelfSubjectReview",
];

fn decode_kind(kind: &str, raw: &[u8]) -> Option<Value> {
    let mut obj = json!({});
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut string_data = Map::new();
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(b)) => obj["metadata"] = object_meta(b)?,
            (_, n, Field::Bytes(b)) if RBAC_KINDS.contains(&kind) => {
                rbac_field(kind, n, b, &mut obj)?
            }
            (_, 2, Field::Bytes(b)) if REVIEWS.contains(&kind) && kind != "SelfSubjectReview" => {
                obj["spec"] = review_spec(kind, b)?;
            }
            ("Namespace", 2, Field::Bytes(b)) => {
                let finalizers: Vec<Value> = fields(b)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => Some(text(s)),
                        _ => None,
                    })
                    .collect();
                obj["spec"] = json!({"finalizers": finalizers});
            }
            ("ConfigMap", 2, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                data.insert(k, text(v));
            }
            ("ConfigMap", 3, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                binary.insert(k, base64(v));
            }
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                obj["immutable"] = json!(v != 0);
            }
            ("Secret", 2, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                data.insert(k, base64(v));
            }
            ("Secret", 3, Field::Bytes(b)) => obj["type"] = text(b),
            ("Secret", 4, Field::Bytes(b)) => {
                let (k, v) = entry(b)?;
                string_data.insert(k, text(v));
            }
            _ => {}
        }
    }
    for (field, map) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !map.is_empty() {
            obj[field] = Value::Object(map);
        }
    }
    Some(obj)
}

/// `meta.k8s.io/v1` DeleteOptions: gracePeriodSeconds 1, preconditions 2
/// (uid 1, resourceVersion 2), orphanDependents 3, propagationPolicy 4,
/// dryRun 5 (repeated). client-go's typed clients send their deletes'
/// options this way (Helm purging its release Secrets, for one).
fn delete_options(raw: &[u8]) -> Option<Value> {
    let mut obj = json!({});
    let mut dry_run = Vec::new();
    for (n, f) in fields(raw)? {
        match (n, f) {
            // An int64 varint: negative numbers take all ten bytes.
            (1, Field::Varint(v)) => obj["gracePeriodSeconds"] = json!(v.cast_signed()),
            (2, Field::Bytes(b)) => {
                obj["preconditions"] = strings(b, &[(1, "uid"), (2, "resourceVersion")])?;
            }
            (3, Field::Varint(v)) => obj["orphanDependents"] = json!(v != 0),
            (4, Field::Bytes(b)) => obj["propagationPolicy"] = text(b),
            (5, Field::Bytes(b)) => dry_run.push(text(b)),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        obj["dryRun"] = Value::Array(dry_run);
    }
    Some(obj)
}

/// Decodes a protobuf-encoded body into JSON.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let malformed = || ApiError::bad_request("the protobuf body could not be decoded");
    let envelope = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(envelope).ok_or_else(malformed)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (m, g) in fields(type_meta).ok_or_else(malformed)? {
                    match (m, g) {
                        (1, Field::Bytes(b)) => {
                            api_version = String::from_utf8_lossy(b).into_owned()
                        }
                        (2, Field::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if kind == "DeleteOptions" {
        let mut obj = delete_options(raw).ok_or_else(malformed)?;
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        return Ok(obj);
    }
    if !matches!(
        kind.as_str(),
        "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
    ) && !REVIEWS.contains(&kind.as_str())
        && !RBAC_KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::unsupported_media_type(format!(
            "the sandbox reads protobuf only for Namespace, ConfigMap, Secret, ServiceAccount, the RBAC kinds and the access reviews, not {kind}; \
             send JSON (for example with `kubectl apply`)"
        )));
    }
    let mut obj = decode_kind(&kind, raw).ok_or_else(malformed)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_config_map_in_protobuf_decodes() {
        let meta = [
            field(1, b"c"),
            field(11, &[field(1, b"app"), field(2, b"x")].concat()),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            field(2, &[field(1, b"k"), field(2, b"v")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
        let pod = [
            MAGIC.to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"Pod")].concat()),
        ]
        .concat();
        assert_eq!(decode(&pod).unwrap_err().code, 415);
    }

    #[test]
    fn delete_options_in_protobuf_decode() {
        let raw = [
            vec![1 << 3, 30],
            field(2, &[field(1, b"uid-1"), field(2, b"42")].concat()),
            vec![3 << 3, 1],
            field(4, b"Foreground"),
            field(5, b"All"),
        ]
        .concat();
        let type_meta = [field(1, b"meta.k8s.io/v1"), field(2, b"DeleteOptions")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
                   "gracePeriodSeconds": 30,
                   "preconditions": {"uid": "uid-1", "resourceVersion": "42"},
                   "orphanDependents": true, "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
        // Empty options (client-go's `metav1.DeleteOptions{}`): an empty raw object.
        let empty = [MAGIC.to_vec(), field(1, &type_meta), field(2, &[])].concat();
        assert_eq!(
            decode(&empty).unwrap(),
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"})
        );
    }

    #[test]
    fn an_access_review_in_protobuf_decodes() {
        let attributes = [
            field(1, b"kube-system"),
            field(2, b"create"),
            field(3, b"apps"),
            field(5, b"deployments"),
        ]
        .concat();
        let raw = [field(1, &[]), field(2, &field(1, &attributes))].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj["spec"],
            json!({"resourceAttributes": {"namespace": "kube-system", "verb": "create",
                   "group": "apps", "resource": "deployments"}})
        );
    }
}
