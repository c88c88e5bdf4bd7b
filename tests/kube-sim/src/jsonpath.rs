//! The JSONPath subset of CRD printer columns and scale paths: `.a.b`, `.a[0]`,
//! `.a[?(@.k=="v")].b`; reading and (for plain dotted paths) writing.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Filter(String, String),
}

fn parse(path: &str) -> Vec<Step> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                if let Some((k, v)) = f.split_once("==") {
                    let v = v.trim().trim_matches('"').trim_matches('\'');
                    steps.push(Step::Filter(k.trim().to_string(), v.to_string()));
                }
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else {
                let name = inner.trim_matches('\'').trim_matches('"');
                steps.push(Step::Field(name.to_string()));
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    steps
}

/// The value at `path` in `obj`, if any.
pub fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for step in parse(path) {
        cur = match step {
            Step::Field(f) => cur.get(f.as_str())?,
            Step::Index(i) => cur.get(i)?,
            Step::Filter(k, v) => cur
                .as_array()?
                .iter()
                .find(|item| item.get(k.as_str()).and_then(Value::as_str) == Some(v.as_str()))?,
        };
    }
    Some(cur)
}

/// Sets the value at a plain dotted `path`, creating objects on the way.
pub fn set(obj: &mut Value, path: &str, value: Value) {
    let steps = parse(path);
    let mut cur = obj;
    for (i, step) in steps.iter().enumerate() {
        let Step::Field(f) = step else { return };
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let map = cur.as_object_mut().expect("made an object above");
        if i + 1 == steps.len() {
            map.insert(f.clone(), value);
            return;
        }
        cur = map.entry(f.clone()).or_insert(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_indexes_and_filters() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "Available", "status": "True"}]}});
        assert_eq!(
            get(&o, ".status.conditions[?(@.type==\"Available\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(get(&o, ".status.conditions[0].type"), Some(&json!("Ready")));
        assert_eq!(get(&o, ".spec.replicas"), None);
    }

    #[test]
    fn writes_dotted_paths() {
        let mut o = json!({});
        set(&mut o, ".spec.replicas", json!(5));
        assert_eq!(o, json!({"spec": {"replicas": 5}}));
    }
}
