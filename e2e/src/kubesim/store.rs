//! The objects, their resourceVersions and the event log watches resume from. Every write
//! goes through one lock and takes the next resourceVersion, so events are totally ordered
//! and a watch resumes from any version the log still holds (older ones get 410 Gone, as
//! from an apiserver whose watch cache moved on).

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// (resource id as `Resource::id`, namespace or "" for cluster-scoped kinds, name).
pub type Key = (String, String, String);

#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    pub key: Key,
    pub object: Value,
    /// The object before this change (None for ADDED), for watches with selectors.
    pub prev: Option<Value>,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    log_len: usize,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    by_uid: HashMap<String, Key>,
    log: VecDeque<Arc<Event>>,
    /// Watches may resume from this version on; older ones are gone from the log.
    resumable_from: u64,
}

/// Where a watch gets the events that follow its start.
pub type Receiver = broadcast::Receiver<Arc<Event>>;

/// A watch start older than the log holds.
#[derive(Debug)]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

pub fn uid_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["uid"].as_str()
}

pub fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Inner {
    /// The objects of `resource` (in `namespace`, or all), in key order.
    fn of(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let wanted = |(r, ns, _): &Key| r == resource && namespace.is_none_or(|n| n == ns);
        self.objects.iter().filter(|(k, _)| wanted(k)).map(|(_, v)| v.clone()).collect()
    }
}

impl Store {
    /// `log_len` events are kept for watches to resume from.
    pub fn new(log_len: usize) -> Store {
        let (tx, _) = broadcast::channel(4096);
        let inner =
            Inner { rv: 1, objects: BTreeMap::new(), by_uid: HashMap::new(), log: VecDeque::new(), resumable_from: 1 };
        Store { inner: Mutex::new(inner), tx, log_len }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        self.lock().objects.get(key).cloned()
    }

    pub fn key_of_uid(&self, uid: &str) -> Option<Key> {
        self.lock().by_uid.get(uid).cloned()
    }

    /// The objects of a resource (in one namespace, or all), in name order, and the version
    /// they are as of.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        (inner.of(resource, namespace), inner.rv)
    }

    /// Every object, for the controllers that look across kinds (garbage collection).
    pub fn all(&self) -> Vec<(Key, Value)> {
        self.lock().objects.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Runs `f` on a transaction: its writes all take effect, with their events, if it
    /// returns Ok, and none of them otherwise.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R, E>) -> Result<R, E> {
        let mut inner = self.lock();
        let mut txn = Txn { inner: &inner, writes: Vec::new() };
        let r = f(&mut txn)?;
        let writes = txn.writes;
        for (key, object) in writes {
            inner.rv += 1;
            let rv = inner.rv;
            let (kind, object, prev) = match object {
                Some(mut obj) => {
                    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                    if let Some(uid) = uid_of(&obj) {
                        inner.by_uid.insert(uid.to_string(), key.clone());
                    }
                    let prev = inner.objects.insert(key.clone(), obj.clone());
                    (if prev.is_some() { "MODIFIED" } else { "ADDED" }, obj, prev)
                }
                None => {
                    let Some(prev) = inner.objects.remove(&key) else { continue };
                    if let Some(uid) = uid_of(&prev) {
                        inner.by_uid.remove(uid);
                    }
                    let mut obj = prev.clone();
                    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                    ("DELETED", obj, Some(prev))
                }
            };
            let event = Arc::new(Event { rv, kind, key, object, prev });
            inner.log.push_back(event.clone());
            while inner.log.len() > self.log_len {
                if let Some(old) = inner.log.pop_front() {
                    inner.resumable_from = old.rv;
                }
            }
            // Nobody watching is fine.
            let _ = self.tx.send(event);
        }
        Ok(r)
    }

    /// The objects of `resource` now, their version, and a receiver for every event after it.
    pub fn list_and_watch(&self, resource: &str, namespace: Option<&str>) -> (Vec<Value>, u64, Receiver) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        (inner.of(resource, namespace), inner.rv, rx)
    }

    /// Whether the log still holds every event after `rv` (a watch or a list page from it
    /// would miss nothing).
    pub fn resumable(&self, rv: u64) -> bool {
        rv >= self.lock().resumable_from
    }

    /// The events after `from` still in the log, and a receiver for those to come, with
    /// nothing lost or repeated in between.
    pub fn watch(&self, from: u64) -> Result<(Vec<Arc<Event>>, Receiver), Expired> {
        let inner = self.lock();
        if from < inner.resumable_from {
            return Err(Expired { requested: from, oldest: inner.resumable_from });
        }
        let rx = self.tx.subscribe();
        let backlog = inner.log.iter().filter(|e| e.rv > from).cloned().collect();
        Ok((backlog, rx))
    }
}

/// Reads see the transaction's own writes.
pub struct Txn<'a> {
    inner: &'a Inner,
    writes: Vec<(Key, Option<Value>)>,
}

impl Txn<'_> {
    pub fn get(&self, key: &Key) -> Option<Value> {
        match self.writes.iter().rev().find(|(k, _)| k == key) {
            Some((_, v)) => v.clone(),
            None => self.inner.objects.get(key).cloned(),
        }
    }

    pub fn put(&mut self, key: Key, object: Value) {
        self.writes.push((key, Some(object)));
    }

    pub fn delete(&mut self, key: Key) {
        self.writes.push((key, None));
    }

    /// Every object as this transaction sees it.
    pub fn list_all(&self) -> Vec<(Key, Value)> {
        let mut view: BTreeMap<Key, Option<Value>> =
            self.inner.objects.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        for (k, v) in &self.writes {
            view.insert(k.clone(), v.clone());
        }
        view.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()
    }

    /// Objects of `resource` in `namespace` (all namespaces when None).
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<(Key, Value)> {
        let mut all = self.list_all();
        all.retain(|((r, ns, _), _)| r == resource && namespace.is_none_or(|n| n == ns));
        all
    }

    /// The resourceVersion the latest write of this transaction takes when it commits.
    pub fn written_rv(&self) -> u64 {
        self.inner.rv + self.writes.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> Key {
        ("pods".into(), "default".into(), name.into())
    }

    #[test]
    fn writes_take_increasing_versions_and_watches_resume_without_gaps() {
        let s = Store::new(3);
        for n in ["a", "b", "c", "d"] {
            s.write(|t| {
                t.put(key(n), json!({"metadata": {"name": n, "uid": n}}));
                Ok::<_, ()>(())
            })
            .unwrap();
        }
        let b = rv_of(&s.get(&key("b")).unwrap());
        assert_eq!(rv_of(&s.get(&key("c")).unwrap()), b + 1);
        let (backlog, _) = s.watch(b).unwrap();
        assert_eq!(backlog.iter().map(|e| e.key.2.as_str()).collect::<Vec<_>>(), ["c", "d"]);
        // The log holds three events: what came before "b" is gone.
        assert!(s.watch(b - 1).is_ok());
        let err = s.watch(b - 2).unwrap_err();
        assert_eq!(err.oldest, b - 1);
        s.write(|t| {
            t.delete(key("a"));
            Ok::<_, ()>(())
        })
        .unwrap();
        let (backlog, _) = s.watch(s.current_rv() - 1).unwrap();
        assert_eq!(backlog[0].kind, "DELETED");
        assert!(s.key_of_uid("a").is_none());
    }

    #[test]
    fn a_failed_transaction_writes_nothing() {
        let s = Store::new(10);
        let before = s.current_rv();
        let r: Result<(), &str> = s.write(|t| {
            t.put(key("x"), json!({"metadata": {"name": "x"}}));
            Err("refused")
        });
        assert!(r.is_err());
        assert_eq!(s.current_rv(), before);
        assert!(s.get(&key("x")).is_none());
    }
}
