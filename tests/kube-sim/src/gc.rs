//! Deletion and garbage collection: finalizers and deletionTimestamp, propagation policies
//! (Background, Foreground via the `foregroundDeletion` finalizer, Orphan via `orphan`),
//! dependents of absent owners, namespace termination and CRD removal. Runs synchronously
//! after every write, until nothing changes.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::http::now;
use crate::store::{EventType, Key, State};

/// How dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, its dependents after.
    Background,
    /// Delete the dependents first, then the owner.
    Foreground,
    /// Keep the dependents, without their owner reference.
    Orphan,
}

impl Propagation {
    /// From `DeleteOptions.propagationPolicy` or the query (default Background).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            _ => Propagation::Background,
        }
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

fn terminating(obj: &Value) -> bool {
    obj["metadata"].get("deletionTimestamp").is_some()
}

/// Deletes the object at `key`: marks it (deletionTimestamp) when finalizers remain, removes
/// it otherwise. Returns the object as it is after the call (marked or removed).
pub fn delete(
    state: &mut State,
    key: &Key,
    propagation: Propagation,
    grace: Option<i64>,
) -> Option<Value> {
    let mut obj = state.get(&key.0, &key.1, &key.2, &key.3)?.clone();
    let mut fins = finalizers(&obj);
    let add = match propagation {
        Propagation::Foreground => Some("foregroundDeletion"),
        Propagation::Orphan => Some("orphan"),
        Propagation::Background => None,
    };
    if let Some(f) = add
        && !terminating(&obj)
        && !fins.iter().any(|x| x == f)
    {
        fins.push(f.to_string());
    }
    let is_namespace = key.0.is_empty() && key.1 == "namespaces";
    let bound_pod = key.0.is_empty()
        && key.1 == "pods"
        && obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        && grace != Some(0);
    if fins.is_empty() && !is_namespace && !bound_pod {
        let removed = state.remove(key);
        after_removal(state, key);
        return removed;
    }
    if terminating(&obj) {
        if bound_pod && grace == Some(0) {
            return state.remove(key);
        }
        return Some(obj);
    }
    let md = &mut obj["metadata"];
    md["deletionTimestamp"] = json!(now());
    let g = if bound_pod {
        grace
            .or(obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
    } else {
        0
    };
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(g);
    if !fins.is_empty() {
        obj["metadata"]["finalizers"] = json!(fins);
    }
    if let Some(generation) = obj["metadata"]["generation"].as_i64() {
        obj["metadata"]["generation"] = json!(generation + 1);
    }
    if is_namespace {
        obj["status"]["phase"] = json!("Terminating");
    }
    Some(state.put(key.clone(), obj, EventType::Modified))
}

fn after_removal(state: &mut State, key: &Key) {
    if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
        let (plural, group) = key.3.split_once('.').unwrap_or((&key.3, ""));
        let (group, plural) = (group.to_string(), plural.to_string());
        let keys: Vec<Key> = state
            .list(&group, &plural, None)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            state.remove(&k);
        }
        state.registry.remove_custom(&group, &plural);
    }
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(String::from))
        .collect()
}

fn set_finalizers(state: &mut State, key: &Key, mut obj: Value, fins: Vec<String>) {
    obj["metadata"]["finalizers"] = json!(fins);
    if fins.is_empty() && terminating(&obj) && !(key.0.is_empty() && key.1 == "namespaces") {
        state.remove(key);
        after_removal(state, key);
    } else {
        state.put(key.clone(), obj, EventType::Modified);
    }
}

/// One pass; returns whether anything changed.
fn pass(state: &mut State) -> bool {
    let objects: Vec<(Key, Value)> = state.all().map(|(k, v)| (k.clone(), v.clone())).collect();
    let uids: HashSet<String> = objects
        .iter()
        .filter_map(|(_, o)| o["metadata"]["uid"].as_str().map(String::from))
        .collect();
    for (key, obj) in &objects {
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let fins = finalizers(obj);
        // Dependents whose owners are all gone.
        let owners = owner_uids(obj);
        if !owners.is_empty() && !terminating(obj) && owners.iter().all(|u| !uids.contains(u)) {
            delete(state, key, Propagation::Background, None);
            return true;
        }
        if !terminating(obj) {
            continue;
        }
        let dependents: Vec<&(Key, Value)> = objects
            .iter()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .collect();
        if fins.iter().any(|f| f == "orphan") {
            for (dk, d) in &dependents {
                let mut d = d.clone();
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                state.put(dk.clone(), d, EventType::Modified);
            }
            let rest = fins.into_iter().filter(|f| f != "orphan").collect();
            set_finalizers(state, key, obj.clone(), rest);
            return true;
        }
        if fins.iter().any(|f| f == "foregroundDeletion") {
            let mut changed = false;
            for (dk, d) in &dependents {
                if !terminating(d) {
                    delete(state, dk, Propagation::Background, None);
                    changed = true;
                }
            }
            if dependents.is_empty() {
                let rest = fins
                    .into_iter()
                    .filter(|f| f != "foregroundDeletion")
                    .collect();
                set_finalizers(state, key, obj.clone(), rest);
                return true;
            }
            if changed {
                return true;
            }
        }
        if key.0.is_empty() && key.1 == "namespaces" {
            let contents: Vec<&(Key, Value)> =
                objects.iter().filter(|(k, _)| k.2 == key.3).collect();
            let mut changed = false;
            for (ck, c) in &contents {
                if !terminating(c) {
                    delete(state, ck, Propagation::Background, Some(0));
                    changed = true;
                } else if ck.0.is_empty() && ck.1 == "pods" {
                    state.remove(ck);
                    changed = true;
                }
            }
            if contents.is_empty() && fins.is_empty() {
                state.remove(key);
                return true;
            }
            if changed {
                return true;
            }
        }
    }
    false
}

/// Runs garbage collection until nothing changes (bounded).
pub fn collect(state: &mut State) {
    for _ in 0..10_000 {
        if !pass(state) {
            return;
        }
    }
    tracing::warn!("garbage collection did not settle");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn cm(name: &str, uid: &str, owner: Option<&str>, fins: &[&str]) -> Value {
        let mut o = json!({"metadata": {"name": name, "namespace": "d", "uid": uid,
            "finalizers": fins}});
        if let Some(ou) = owner {
            o["metadata"]["ownerReferences"] = json!([{"uid": ou, "name": "o", "kind": "ConfigMap",
                "apiVersion": "v1"}]);
        }
        o
    }

    fn k(name: &str) -> Key {
        ("".into(), "configmaps".into(), "d".into(), name.into())
    }

    #[test]
    fn background_deletes_dependents() {
        let store = Store::new(100);
        let mut s = store.lock();
        s.put(k("owner"), cm("owner", "u1", None, &[]), EventType::Added);
        s.put(k("dep"), cm("dep", "u2", Some("u1"), &[]), EventType::Added);
        delete(&mut s, &k("owner"), Propagation::Background, None);
        collect(&mut s);
        assert_eq!(s.list("", "configmaps", None).count(), 0);
    }

    #[test]
    fn finalizers_hold_and_orphan_keeps_dependents() {
        let store = Store::new(100);
        let mut s = store.lock();
        s.put(
            k("owner"),
            cm("owner", "u1", None, &["x/y"]),
            EventType::Added,
        );
        s.put(k("dep"), cm("dep", "u2", Some("u1"), &[]), EventType::Added);
        delete(&mut s, &k("owner"), Propagation::Orphan, None);
        collect(&mut s);
        let owner = s.get("", "configmaps", "d", "owner").unwrap();
        assert!(owner["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(owner["metadata"]["finalizers"], json!(["x/y"]));
        let dep = s.get("", "configmaps", "d", "dep").unwrap();
        assert_eq!(dep["metadata"]["ownerReferences"], json!([]));
    }

    #[test]
    fn foreground_deletes_dependents_first() {
        let store = Store::new(100);
        let mut s = store.lock();
        s.put(k("owner"), cm("owner", "u1", None, &[]), EventType::Added);
        s.put(
            k("dep"),
            cm("dep", "u2", Some("u1"), &["hold"]),
            EventType::Added,
        );
        delete(&mut s, &k("owner"), Propagation::Foreground, None);
        collect(&mut s);
        assert!(s.get("", "configmaps", "d", "owner").is_some());
        let mut dep = s.get("", "configmaps", "d", "dep").unwrap().clone();
        dep["metadata"]["finalizers"] = json!([]);
        set_finalizers(&mut s, &k("dep"), dep, vec![]);
        collect(&mut s);
        assert_eq!(s.list("", "configmaps", None).count(), 0);
    }
}
