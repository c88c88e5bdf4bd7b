//! Server-side apply, coarsely: field sets (`fieldsV1`) per manager in `managedFields`, the
//! applied configuration merged into the live object (maps merged, lists with merge keys merged
//! by key, other lists replaced), and fields a manager applied before but no longer applies
//! removed unless another manager owns them. Conflicts are never reported.

use serde_json::{Map, Value, json};

use crate::patch::{merge_keys, same_key};

const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

fn fields_of_value(v: &Value, field: &str) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                out.insert(format!("f:{k}"), fields_of_value(child, k));
            }
            Value::Object(out)
        }
        Value::Array(items) => match merge_keys(field, items) {
            Some(keys) => {
                let mut out = Map::new();
                for item in items {
                    let mut sub = fields_of_value(item, "");
                    if let Some(m) = sub.as_object_mut() {
                        m.insert(".".into(), json!({}));
                    }
                    out.insert(item_key(item, keys), sub);
                }
                Value::Object(out)
            }
            None => json!({}),
        },
        _ => json!({}),
    }
}

/// The field set (`fieldsV1`) of an object, without apiVersion, kind and system metadata.
pub fn fields_of(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(Value::Object(md)) = m.get_mut("metadata") {
            md.retain(|k, _| !SYSTEM_METADATA.contains(&k.as_str()));
            if md.is_empty() {
                m.remove("metadata");
            }
        }
    }
    fields_of_value(&o, "")
}

/// The field set of what changed from `old` to `new` (whole subtrees where they differ).
pub fn changed_fields(old: &Value, new: &Value) -> Value {
    fn walk(old: Option<&Value>, new: &Value, field: &str) -> Option<Value> {
        if old == Some(new) {
            return None;
        }
        match (old, new) {
            (Some(Value::Object(o)), Value::Object(n)) => {
                let mut out = Map::new();
                for (k, v) in n {
                    if let Some(t) = walk(o.get(k), v, k) {
                        out.insert(format!("f:{k}"), t);
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            _ => Some(fields_of_value(new, field)),
        }
    }
    let strip = |v: &Value| {
        let mut o = v.clone();
        if let Some(Value::Object(md)) = o.get_mut("metadata") {
            md.retain(|k, _| !SYSTEM_METADATA.contains(&k.as_str()));
        }
        if let Some(m) = o.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        o
    };
    walk(Some(&strip(old)), &strip(new), "").unwrap_or_else(|| json!({}))
}

/// Union of two field sets.
pub fn union(a: &mut Value, b: &Value) {
    if let (Value::Object(am), Value::Object(bm)) = (a, b) {
        for (k, v) in bm {
            union(am.entry(k.clone()).or_insert_with(|| json!({})), v);
        }
    }
}

fn contains(tree: &Value, path: &[String]) -> bool {
    let mut cur = tree;
    for p in path {
        match cur.get(p.as_str()) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

/// Paths in `old` that are not in `new` (the topmost such node of each subtree).
fn removed_paths(old: &Value, new: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Value::Object(om) = old else { return };
    for (k, sub) in om {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        match new.get(k.as_str()) {
            None => out.push(prefix.clone()),
            Some(n) => removed_paths(sub, n, prefix, out),
        }
        prefix.pop();
    }
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let next = if let Some(f) = p.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = p.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            cur.as_array_mut().and_then(|items| {
                items.iter_mut().find(|i| {
                    key.as_object()
                        .is_some_and(|km| km.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
                })
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
        if let (Some(items), Some(km)) = (cur.as_array_mut(), key.as_object()) {
            items.retain(|i| !km.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
        }
    }
}

fn merge(t: &mut Value, a: &Value, field: &str) {
    match (&mut *t, a) {
        (Value::Object(tm), Value::Object(am)) => {
            for (k, v) in am {
                match tm.get_mut(k) {
                    Some(cur) => merge(cur, v, k),
                    None => {
                        tm.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(ti), Value::Array(ai)) => {
            let all: Vec<Value> = ti.iter().chain(ai.iter()).cloned().collect();
            match merge_keys(field, &all) {
                Some(keys) => {
                    for item in ai {
                        match ti.iter_mut().find(|c| same_key(c, item, keys)) {
                            Some(cur) => merge(cur, item, ""),
                            None => ti.push(item.clone()),
                        }
                    }
                }
                None => *t = a.clone(),
            }
        }
        _ => *t = a.clone(),
    }
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// One `managedFields` entry.
pub fn entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    sub: Option<&str>,
    f: Value,
) -> Value {
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": crate::http::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": f,
    });
    if let Some(s) = sub {
        e["subresource"] = json!(s);
    }
    e
}

fn same_entry(e: &Value, manager: &str, operation: &str, sub: Option<&str>) -> bool {
    e["manager"] == manager
        && e["operation"] == operation
        && e.get("subresource").and_then(Value::as_str) == sub
}

/// Records `fields` for (manager, operation, subresource) in `obj.metadata.managedFields`;
/// `Update` entries accumulate, an `Apply` entry is replaced.
pub fn record(obj: &mut Value, manager: &str, operation: &str, sub: Option<&str>, fields: Value) {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let mut entries: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match entries
        .iter_mut()
        .find(|e| same_entry(e, manager, operation, sub))
    {
        Some(e) => {
            if operation == "Apply" {
                e["fieldsV1"] = fields;
            } else {
                union(&mut e["fieldsV1"], &fields);
            }
            e["time"] = json!(crate::http::now());
            e["apiVersion"] = json!(api_version);
        }
        None => entries.push(entry(manager, operation, &api_version, sub, fields)),
    }
    obj["metadata"]["managedFields"] = Value::Array(entries);
}

/// The object resulting from applying `applied` as `manager` to `live` (None: create).
pub fn apply(live: Option<&Value>, applied: &Value, manager: &str, sub: Option<&str>) -> Value {
    let mut applied = applied.clone();
    strip_nulls(&mut applied);
    if let Some(Value::Object(md)) = applied.get_mut("metadata") {
        md.remove("managedFields");
    }
    let new_fields = fields_of(&applied);
    let mut obj = live.cloned().unwrap_or_else(|| json!({}));
    let entries: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (mine, others): (Vec<&Value>, Vec<&Value>) = entries
        .iter()
        .partition(|e| same_entry(e, manager, "Apply", sub));
    if let Some(old) = mine.first() {
        let mut removed = Vec::new();
        removed_paths(&old["fieldsV1"], &new_fields, &mut Vec::new(), &mut removed);
        for path in removed {
            if !others.iter().any(|e| contains(&e["fieldsV1"], &path)) {
                remove_path(&mut obj, &path);
            }
        }
    }
    merge(&mut obj, &applied, "");
    record(&mut obj, manager, "Apply", sub, new_fields);
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_creates_and_records_the_manager() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let obj = apply(None, &cfg, "m", None);
        assert_eq!(obj["data"]["k"], "v");
        let mf = &obj["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "m");
        assert_eq!(mf["operation"], "Apply");
        assert!(mf["fieldsV1"]["f:data"]["f:k"].is_object());
        assert!(mf["fieldsV1"]["f:metadata"]["f:name"].is_null());
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_owned_by_others() {
        let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "1", "b": "2"}});
        let obj = apply(None, &v1, "m", None);
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"b": "2", "x": "9"}});
        let obj = apply(Some(&obj), &other, "o", None);
        let v2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"c": "3"}});
        let obj = apply(Some(&obj), &v2, "m", None);
        assert_eq!(obj["data"], json!({"b": "2", "c": "3", "x": "9"}));
    }

    #[test]
    fn keyed_lists_merge_and_drop_items() {
        let v1 = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let obj = apply(None, &v1, "m", None);
        let v2 = json!({"spec": {"containers": [{"name": "a", "image": "3"}]}});
        let obj = apply(Some(&obj), &v2, "m", None);
        assert_eq!(
            obj["spec"]["containers"],
            json!([{"name": "a", "image": "3"}])
        );
    }

    #[test]
    fn changed_fields_are_the_differences() {
        let old =
            json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"a": 1, "b": 2}});
        let new =
            json!({"metadata": {"name": "x", "resourceVersion": "2"}, "spec": {"a": 1, "b": 3}});
        assert_eq!(changed_fields(&old, &new), json!({"f:spec": {"f:b": {}}}));
    }
}
