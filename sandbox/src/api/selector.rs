//! Label selectors (equality- and set-based, as `?labelSelector=` carries
//! them) and field selectors (`?fieldSelector=`, on the fields each
//! resource supports).

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Exists,
    NotExists,
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{whole}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(raw: &str) -> Result<Requirement, String> {
    let part = raw.trim();
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement {
            key: key.trim().to_owned(),
            op: Op::NotExists,
        });
    }
    for (token, kind) in [(" notin ", "notin"), (" in ", "in")] {
        if let Some(pos) = part.find(token) {
            let key = part[..pos].trim().to_owned();
            let values = parse_set(&part[pos + token.len()..], part)?;
            let op = if kind == "in" {
                Op::In(values)
            } else {
                Op::NotIn(values)
            };
            return Ok(Requirement { key, op });
        }
    }
    for (token, build) in [
        ("!=", Op::Ne as fn(String) -> Op),
        ("==", Op::Eq as fn(String) -> Op),
        ("=", Op::Eq as fn(String) -> Op),
    ] {
        if let Some(pos) = part.find(token) {
            let key = part[..pos].trim().to_owned();
            let value = part[pos + token.len()..].trim().to_owned();
            return Ok(Requirement {
                key,
                op: build(value),
            });
        }
    }
    for (token, greater) in [(">", true), ("<", false)] {
        if let Some(pos) = part.find(token) {
            let key = part[..pos].trim().to_owned();
            let value = part[pos + 1..].trim();
            let n: i64 = value
                .parse()
                .map_err(|_| format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value}"))?;
            let op = if greater { Op::Gt(n) } else { Op::Lt(n) };
            return Ok(Requirement { key, op });
        }
    }
    Ok(Requirement {
        key: part.to_owned(),
        op: Op::Exists,
    })
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let req = parse_requirement(part)?;
            if req.key.is_empty() || req.key.contains(char::is_whitespace) {
                return Err(format!(
                    "unable to parse requirement: invalid label key \"{}\"",
                    req.key
                ));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.0.iter().all(|req| {
            let value = labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str);
            match &req.op {
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
                Op::Eq(v) => value == Some(v.as_str()),
                Op::Ne(v) => value != Some(v.as_str()),
                Op::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
                Op::NotIn(vs) => value.is_none_or(|x| vs.iter().all(|v| v != x)),
                Op::Gt(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                Op::Lt(n) => value
                    .and_then(|x| x.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits on `sep` not preceded by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

impl FieldSelector {
    /// Parses `s`, rejecting labels outside `supported` (plus
    /// `metadata.name` and `metadata.namespace`) as the server does.
    pub fn parse(s: &str, supported: &[String]) -> Result<Self, String> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for part in split_unescaped(s, ',') {
            let (key, eq, value) = if let Some(pos) = part.find("!=") {
                (&part[..pos], false, &part[pos + 2..])
            } else if let Some(pos) = part.find("==") {
                (&part[..pos], true, &part[pos + 2..])
            } else if let Some(pos) = part.find('=') {
                (&part[..pos], true, &part[pos + 1..])
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let key = key.trim();
            if key != "metadata.name"
                && key != "metadata.namespace"
                && !supported.iter().any(|f| f == key)
            {
                return Err(format!("field label not supported: {key}"));
            }
            terms.push((key.to_owned(), eq, unescape(value.trim())));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(key, eq, want)| {
            let have = field_value(obj, key);
            (have == *want) == *eq
        })
    }
}

/// The string a field selector compares: absent fields are empty,
/// booleans and numbers print as JSON does.
fn field_value(obj: &Value, key: &str) -> String {
    // The core Event's `source` label means `source.component`.
    let path = if key == "source" {
        "source.component"
    } else {
        key
    };
    let mut cur = obj;
    for segment in path.split('.') {
        match cur.get(segment) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders a `metav1.LabelSelector` object as the string form
/// (`app=x,tier in (a,b)`), as `/scale` reports it.
pub fn label_selector_string(selector: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_owned()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Value {
        json!({"metadata": {"labels": v}})
    }

    #[test]
    fn set_based_label_selectors() {
        let obj = labels(json!({"app": "web", "tier": "front"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "app in (web,db)",
            "tier notin (back)",
            "app,tier",
            "!missing",
            "app=web,tier in (front)",
            "",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches_object(&obj), "{s}");
        }
        let no = [
            "app=db",
            "app notin (web)",
            "!app",
            "missing",
            "missing in (x)",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches_object(&obj),
                "{s}"
            );
        }
        // notin matches objects without the label, as the server does.
        assert!(
            LabelSelector::parse("x notin (a)")
                .unwrap()
                .matches_object(&obj)
        );
    }

    #[test]
    fn field_selectors_check_supported_labels() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        let supported = vec!["spec.nodeName".to_owned()];
        let sel = FieldSelector::parse("metadata.name=p,spec.nodeName=n1", &supported).unwrap();
        assert!(sel.matches(&pod));
        let sel = FieldSelector::parse("spec.nodeName!=n1", &supported).unwrap();
        assert!(!sel.matches(&pod));
        let sel = FieldSelector::parse("spec.nodeName=", &supported).unwrap();
        assert!(!sel.matches(&pod));
        assert_eq!(
            FieldSelector::parse("spec.foo=x", &supported).unwrap_err(),
            "field label not supported: spec.foo"
        );
    }

    #[test]
    fn label_selector_objects_render_as_strings() {
        let sel = json!({"matchLabels": {"app": "x"},
            "matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(label_selector_string(&sel), "app=x,t in (a,b)");
    }
}
