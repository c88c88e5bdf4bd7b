//! Structural schemas of custom resources (`openAPIV3Schema`): pruning of unknown fields (or
//! their report, for strict field validation), defaulting, and validation (types, required,
//! enum, bounds, lengths, pattern, items, int-or-string, preserve-unknown-fields and CEL
//! `x-kubernetes-validations`) with the API server's messages.

pub mod cel;

use serde_json::Value;

use crate::error::{Cause, show_value};

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

fn nullable(schema: &Value) -> bool {
    schema["nullable"] == Value::Bool(true)
}

/// Drops fields the schema does not declare (recording their paths in `unknown`) and nulls
/// of fields that are not nullable. At the root, apiVersion/kind/metadata are kept.
pub fn prune(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded =
                path.is_empty() || schema["x-kubernetes-embedded-resource"] == Value::Bool(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&k)).or(additional);
                match sub {
                    Some(s) => {
                        let val = m.get_mut(&k).expect("key listed above");
                        if val.is_null() && !nullable(s) {
                            m.remove(&k);
                        } else {
                            prune(s, val, &child(path, &k), unknown);
                        }
                    }
                    None if preserves(schema)
                        || (props.is_none()
                            && additional.is_none()
                            && schema.get("type").is_none()) => {}
                    None if schema["additionalProperties"] == Value::Bool(true) => {}
                    None => {
                        unknown.push(child(path, &k));
                        m.remove(&k);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s of missing fields, recursively (defaults are defaulted too).
pub fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, s) in props {
                    if !m.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(val) = m.get_mut(k) {
                        default(s, val);
                    }
                }
            }
            if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for val in m.values_mut() {
                    default(a, val);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                items.iter_mut().for_each(|i| default(s, i));
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    let got = type_name(v);
    got == want || (want == "number" && got == "integer")
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => v.to_string(),
    }
}

/// Validates `v` (and CEL transition rules against `old`), appending causes to `errs`.
pub fn validate(schema: &Value, v: &Value, old: Option<&Value>, path: &str, errs: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == Value::Bool(true);
    if int_or_string {
        if !matches!(type_name(v), "integer" | "string") {
            let detail = format!(
                "{path} in body must be of type integer-or-string: \"{}\"",
                type_name(v)
            );
            errs.push(Cause::invalid(
                path,
                &Value::String(type_name(v).into()),
                &detail,
            ));
            return;
        }
    } else if let Some(want) = schema["type"].as_str()
        && !type_ok(want, v)
    {
        let got = type_name(v);
        let detail = format!("{path} in body must be of type {want}: \"{got}\"");
        errs.push(Cause::invalid(path, &Value::String(got.into()), &detail));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        errs.push(Cause::not_supported(path, v, allowed));
    }
    if let Some(x) = v.as_f64() {
        let excl_max = schema["exclusiveMaximum"] == Value::Bool(true);
        if let Some(max) = schema["maximum"].as_f64()
            && (x > max || (excl_max && x == max))
        {
            let rel = if excl_max {
                "less than"
            } else {
                "less than or equal to"
            };
            let detail = format!("{path} in body should be {rel} {}", num(&schema["maximum"]));
            errs.push(Cause::invalid(path, v, &detail));
        }
        let excl_min = schema["exclusiveMinimum"] == Value::Bool(true);
        if let Some(min) = schema["minimum"].as_f64()
            && (x < min || (excl_min && x == min))
        {
            let rel = if excl_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            let detail = format!("{path} in body should be {rel} {}", num(&schema["minimum"]));
            errs.push(Cause::invalid(path, v, &detail));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            errs.push(Cause::other(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            let detail = format!("{path} in body should be at least {min} chars long");
            errs.push(Cause::invalid(path, v, &detail));
        }
        if let Some(p) = schema["pattern"].as_str()
            && regex::Regex::new(p).is_ok_and(|re| !re.is_match(s))
        {
            let detail = format!("{path} in body should match '{p}'");
            errs.push(Cause::invalid(path, v, &detail));
        }
    }
    if let Value::Array(items) = v {
        if let Some(max) = schema["maxItems"].as_u64()
            && items.len() as u64 > max
        {
            errs.push(Cause::other(
                "FieldValueTooMany",
                path,
                format!("Too many: {}: must have at most {max} items", items.len()),
            ));
        }
        if let Some(min) = schema["minItems"].as_u64()
            && (items.len() as u64) < min
        {
            let detail = format!("{path} in body should have at least {min} items");
            errs.push(Cause::invalid(path, v, &detail));
        }
        if let Some(s) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(s, item, None, &format!("{path}[{i}]"), errs);
            }
        }
    }
    if let Value::Object(m) = v {
        for r in schema["required"].as_array().into_iter().flatten() {
            if let Some(r) = r.as_str()
                && m.get(r).is_none_or(Value::is_null)
            {
                errs.push(Cause::required(&child(path, r)));
            }
        }
        let props = schema["properties"].as_object();
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (k, val) in m {
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                let old_child = old.and_then(|o| o.get(k));
                validate(s, val, old_child, &child(path, k), errs);
            }
        }
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = rule["rule"].as_str().unwrap_or_default();
        let field = match rule["fieldPath"].as_str() {
            Some(fp) => format!("{path}{fp}"),
            None => path.to_string(),
        };
        let message = rule["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("failed rule: {text}"));
        match cel::evaluate(text, v, old) {
            cel::Verdict::Pass => {}
            cel::Verdict::Fail => errs.push(Cause::invalid(&field, v, &message)),
            cel::Verdict::Error(e) => errs.push(Cause::other(
                "FieldValueInvalid",
                &field,
                format!("Invalid value: {}: {message}: {e}", show_value(v)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "required": ["replicas"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 1.0, "maximum": 9.0},
                "size": {"type": "string", "default": "1Gi", "pattern": "^[0-9]+(Gi|Mi)?$"},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "q": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": true}},
                "raft": {"type": "object", "default": {},
                    "properties": {"e": {"type": "integer", "default": 1000},
                                   "h": {"type": "integer", "default": 100}},
                    "x-kubernetes-validations": [{"rule": "self.e >= 5 * self.h", "message": "e >= 5h"}]}}}}})
    }

    fn check(v: Value) -> Vec<String> {
        let s = schema();
        let mut v = v;
        let mut unknown = vec![];
        prune(&s, &mut v, "", &mut unknown);
        default(&s, &mut v);
        let mut errs = vec![];
        validate(&s, &v, None, "", &mut errs);
        unknown
            .into_iter()
            .map(|u| format!("unknown {u}"))
            .chain(errs.iter().map(Cause::render))
            .collect()
    }

    #[test]
    fn messages_match_the_api_server() {
        assert_eq!(
            check(json!({"spec": {"replicas": 10}})),
            [
                "spec.replicas: Invalid value: 10: spec.replicas in body should be less than or equal to 9"
            ]
        );
        assert_eq!(
            check(json!({"spec": {}})),
            ["spec.replicas: Required value"]
        );
        assert_eq!(
            check(json!({"spec": {"replicas": 1, "mode": "C"}})),
            ["spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\""]
        );
        assert_eq!(
            check(json!({"spec": {"replicas": 1, "size": "10 GB"}})),
            [
                "spec.size: Invalid value: \"10 GB\": spec.size in body should match '^[0-9]+(Gi|Mi)?$'"
            ]
        );
        assert_eq!(
            check(json!({"spec": {"replicas": 1, "raft": {"e": 10}}})),
            ["spec.raft: Invalid value: \"object\": e >= 5h"]
        );
        assert_eq!(
            check(json!({"spec": {"replicas": "x"}})),
            [
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
            ]
        );
    }

    #[test]
    fn prunes_defaults_and_preserves() {
        let s = schema();
        let mut v = json!({"apiVersion": "x/v1", "spec": {"replicas": 3, "replica": 5,
            "free": {"any": 1}, "q": {"cpu": "2", "n": 1}, "mode": null}});
        let mut unknown = vec![];
        prune(&s, &mut v, "", &mut unknown);
        default(&s, &mut v);
        assert_eq!(unknown, ["spec.replica"]);
        assert_eq!(v["spec"]["size"], "1Gi");
        assert_eq!(v["spec"]["raft"], json!({"e": 1000, "h": 100}));
        assert_eq!(v["spec"]["free"], json!({"any": 1}));
        assert!(v["spec"].get("mode").is_none());
        let mut errs = vec![];
        validate(&s, &v, None, "", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }
}
