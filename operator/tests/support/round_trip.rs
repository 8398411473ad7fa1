//! Whether a Kubernetes object read into its typed form and written back
//! lost anything: shared by the manifests' and the Helm chart's tests.

use serde_json::Value;

/// Every field of `original` is in `round_trip` with the same value
/// (`round_trip` may add defaults the type always writes).
pub fn missing_fields(original: &Value, round_trip: &Value, at: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => missing_fields(value, other, &format!("{at}.{key}"), out),
                    None => out.push(format!("{at}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing_fields(x, y, &format!("{at}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        _ => out.push(format!("{at} (value differs)")),
    }
}
