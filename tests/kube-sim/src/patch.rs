//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via `json-patch`) and the
//! strategic merge patch of built-in kinds (lists merged by their merge keys, `$patch`,
//! `$setElementOrder`, `$deleteFromPrimitiveList`, `$retainKeys` directives).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The merge keys of a list field of a built-in kind, judged by the field name and its items.
pub fn merge_keys(field: &str, items: &[Value]) -> Option<&'static [&'static str]> {
    let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some(&["name"]),
        "ports" if has("containerPort") => Some(&["containerPort"]),
        "ports" if has("port") => Some(&["port"]),
        "volumeMounts" => Some(&["mountPath"]),
        "volumeDevices" => Some(&["devicePath"]),
        "conditions" => Some(&["type"]),
        "ownerReferences" => Some(&["uid"]),
        "hostAliases" => Some(&["ip"]),
        "topologySpreadConstraints" => Some(&["topologyKey"]),
        _ => None,
    }
}

/// Whether two list items have the same merge key values.
pub fn same_key(a: &Value, b: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| a.get(*k) == b.get(*k))
}

/// Applies a JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Applies a JSON patch (a list of operations).
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| {
        ApiError::Invalid(
            Default::default(),
            vec![crate::error::Cause::other(
                "FieldValueInvalid",
                "",
                format!("the server rejected our request due to an error in our request: {e}"),
            )],
        )
    })
}

/// Applies a strategic merge patch.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        strip_directives(&mut clean);
        *target = clean;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(cur @ Value::Array(_)), Value::Array(items)) => {
                let Value::Array(cur_items) = cur else {
                    unreachable!()
                };
                let all: Vec<Value> = cur_items.iter().chain(items.iter()).cloned().collect();
                match merge_keys(k, &all) {
                    Some(keys) => merge_list(cur_items, items, keys),
                    None if k == "finalizers" => {
                        for i in items {
                            if !cur_items.contains(i) {
                                cur_items.push(i.clone());
                            }
                        }
                    }
                    None => {
                        let mut clean = Value::Array(items.clone());
                        strip_directives(&mut clean);
                        *cur = clean;
                    }
                }
            }
            (Some(cur), Value::Object(_)) if cur.is_object() => strategic_merge(cur, v),
            _ => {
                let mut clean = v.clone();
                strip_directives(&mut clean);
                t.insert(k.clone(), clean);
            }
        }
    }
}

fn merge_list(cur: &mut Vec<Value>, patch: &[Value], keys: &[&str]) {
    for item in patch {
        let directive = item.get("$patch").and_then(Value::as_str);
        let pos = cur.iter().position(|c| same_key(c, item, keys));
        match (directive, pos) {
            (Some("delete"), Some(i)) => {
                cur.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_merge(&mut cur[i], item),
            (_, None) => {
                let mut clean = item.clone();
                strip_directives(&mut clean);
                cur.push(clean);
            }
        }
    }
}

/// Removes `$...` directive keys everywhere.
pub fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut t, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y"}]}});
        let p = json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "spec": {"containers": [
            {"name": "a", "image": "x2", "env": [{"name": "F", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "z"}]}});
        strategic_merge(&mut t, &p);
        assert_eq!(
            t,
            json!({"spec": {"containers": [
            {"name": "a", "image": "x2", "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]},
            {"name": "c", "image": "z"}]}})
        );
    }

    #[test]
    fn json_patch_applies() {
        let mut t = json!({"metadata": {"finalizers": ["a"]}});
        json_patch(
            &mut t,
            &json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "b"}]),
        )
        .unwrap();
        assert_eq!(t["metadata"]["finalizers"], json!(["a", "b"]));
    }
}
