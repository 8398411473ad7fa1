//! The JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`, and
//! filters `[?(@.type=="Ready")]`. The first match is printed, as the real
//! server prints it.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(Vec<String>, String),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let mut end = after.len();
            let mut chars = after.char_indices().peekable();
            let mut field = String::new();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            field.push(next);
                        }
                    }
                    '.' | '[' => {
                        end = i;
                        break;
                    }
                    _ => field.push(c),
                }
            }
            if !field.is_empty() {
                steps.push(Step::Field(field));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let inner = &after[..close];
            rest = &after[close + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else if let Some(expr) = inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')')) {
                let (lhs, rhs) = expr.split_once("==")?;
                let field = lhs.trim().strip_prefix("@.")?;
                let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Filter(
                    field.split('.').map(str::to_owned).collect(),
                    want.to_owned(),
                ));
            } else {
                let key = inner.trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Field(key.to_owned()));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

fn walk(value: &Value, steps: &[Step], out: &mut Vec<Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(value.clone());
        return;
    };
    match step {
        Step::Field(f) => {
            if let Some(v) = value.get(f) {
                walk(v, rest, out);
            }
        }
        Step::Index(i) => {
            if let Some(v) = value.get(*i) {
                walk(v, rest, out);
            }
        }
        Step::All => match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, rest, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, rest, out)),
            _ => {}
        },
        Step::Filter(field, want) => {
            for item in value.as_array().into_iter().flatten() {
                let mut cur = Some(item);
                for f in field {
                    cur = cur.and_then(|c| c.get(f));
                }
                let matches = match cur {
                    Some(Value::String(s)) => s == want,
                    Some(other) => {
                        *other == serde_json::from_str::<Value>(want).unwrap_or(Value::Null)
                    }
                    None => false,
                };
                if matches {
                    walk(item, rest, out);
                }
            }
        }
    }
}

/// The first value `path` selects in `obj`.
pub fn find(obj: &Value, path: &str) -> Option<Value> {
    let steps = parse(path)?;
    let mut out = Vec::new();
    walk(obj, &steps, &mut out);
    out.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_column_paths() {
        let obj = json!({"status": {"phase": "Ready", "conditions": [
            {"type": "Scheduled", "status": "True"}, {"type": "Ready", "status": "False"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"pools": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(find(&obj, ".status.phase"), Some(json!("Ready")));
        assert_eq!(
            find(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("False"))
        );
        assert_eq!(find(&obj, ".spec.pools[1].name"), Some(json!("b")));
        assert_eq!(find(&obj, ".spec.pools[*].name"), Some(json!("a")));
        assert_eq!(
            find(&obj, ".metadata.labels.app\\.kubernetes\\.io/name"),
            Some(json!("x"))
        );
        assert_eq!(find(&obj, ".status.missing"), None);
    }
}
