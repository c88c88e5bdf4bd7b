//! In-memory object storage: a `BTreeMap` keyed by group/resource/namespace/name, one global
//! resourceVersion counter, and the event history (a bounded window) that watches replay from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::error::{ApiError, ApiResult};
use crate::resources::Registry;

/// Storage key: (group, plural, namespace or "", name).
pub type Key = (String, String, String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Group of the object.
    pub group: String,
    /// Plural resource of the object.
    pub resource: String,
    /// Namespace ("" when cluster-scoped).
    pub namespace: String,
    /// The object after the change (before it, for a deletion, with the new resourceVersion).
    pub object: Value,
    /// For a modification, the object before it (watches with selectors need both).
    pub old: Option<Value>,
}

/// The changes to replay and the receiver of the changes to come.
pub type Subscription = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// The mutable state behind the lock: registry, objects, counter and history.
#[derive(Debug)]
pub struct State {
    /// Served resources (built-ins plus those of CRDs).
    pub registry: Registry,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    oldest_rv: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

/// The shared store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<State>>,
    epoch: Arc<watch::Sender<u64>>,
}

impl Store {
    /// An empty store keeping `history_cap` events for watches to resume from.
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let state = State {
            registry: Registry::builtin(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            oldest_rv: 0,
            tx,
        };
        Store {
            inner: Arc::new(Mutex::new(state)),
            epoch: Arc::new(watch::channel(0).0),
        }
    }

    /// Locks the state (a poisoned lock is taken over: state changes are all-or-nothing).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the history and ends every open watch, so that a watch resuming from any
    /// resourceVersion seen so far gets 410 Gone ("Expired").
    pub fn compact(&self) {
        {
            let mut s = self.lock();
            s.rv += 1;
            s.oldest_rv = s.rv;
            s.history.clear();
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    /// A receiver that changes when watches must end.
    pub fn epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }
}

impl State {
    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The stored object.
    pub fn get(&self, group: &str, resource: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(group.into(), resource.into(), ns.into(), name.into()))
    }

    /// Objects of one resource, in key order, optionally in one namespace.
    pub fn list<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start: Key = (
            group.into(),
            resource.into(),
            ns.unwrap_or_default().into(),
            String::new(),
        );
        self.objects.range(start..).take_while(move |(k, _)| {
            k.0 == group && k.1 == resource && ns.is_none_or(|ns| k.2 == ns)
        })
    }

    /// Every stored object.
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// Stores `obj` at a new resourceVersion and records the change; returns the stored object.
    pub fn put(&mut self, key: Key, mut obj: Value, kind: EventType) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let old = self.objects.insert(key.clone(), obj.clone());
        self.record(key, kind, obj.clone(), old);
        obj
    }

    /// Removes an object and records its deletion; returns it.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.record(key.clone(), EventType::Deleted, obj.clone(), None);
        Some(obj)
    }

    fn record(&mut self, key: Key, kind: EventType, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            kind,
            group: key.0,
            resource: key.1,
            namespace: key.2,
            object,
            old: old.filter(|_| kind == EventType::Modified),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.oldest_rv = old.rv;
            }
        }
        // No receiver is fine: nobody watches.
        let _ = self.tx.send(change);
    }

    /// The changes after `rv` and a receiver for those to come; 410 when `rv` is older than
    /// the history window.
    pub fn subscribe_from(&self, rv: u64) -> ApiResult<Subscription> {
        if rv < self.oldest_rv {
            return Err(ApiError::Gone(format!(
                "too old resource version: {rv} ({})",
                self.oldest_rv
            )));
        }
        let backlog = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> Key {
        (
            "".into(),
            "configmaps".into(),
            "default".into(),
            name.into(),
        )
    }

    #[test]
    fn history_window_expires_old_versions() {
        let store = Store::new(2);
        let mut s = store.lock();
        for n in ["a", "b", "c", "d"] {
            s.put(key(n), json!({"metadata": {"name": n}}), EventType::Added);
        }
        assert!(s.subscribe_from(1).is_err());
        let (backlog, _) = s.subscribe_from(2).unwrap();
        assert_eq!(backlog.len(), 2);
        assert_eq!(s.list("", "configmaps", Some("default")).count(), 4);
        assert_eq!(s.list("", "configmaps", Some("other")).count(), 0);
    }

    #[test]
    fn compaction_expires_the_present() {
        let store = Store::new(10);
        let rv = {
            let mut s = store.lock();
            s.put(key("a"), json!({"metadata": {}}), EventType::Added);
            s.rv()
        };
        store.compact();
        assert!(store.lock().subscribe_from(rv).is_err());
    }
}
