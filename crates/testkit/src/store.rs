//! The object store: what etcd is to kube-apiserver.
//!
//! Objects are JSON values keyed by (group, resource, namespace, name), kept in key order as etcd
//! keeps them. Every write takes the next value of one global revision counter, which becomes the
//! object's `metadata.resourceVersion`, and is appended to a bounded history and broadcast to
//! watchers while the lock is held, so a watcher that snapshots history and subscribes under the
//! same lock sees every event exactly once and in order.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Where an object lives. `namespace` is empty for cluster-scoped objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Clone, Debug)]
pub(crate) struct StoreEvent {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    /// The object after the change (for deletions, the last state with the deletion's revision).
    pub object: Value,
    /// The object before the change, if there was one.
    pub prev: Option<Value>,
}

pub(crate) struct Inner {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    /// Where the object with a `metadata.uid` is (the garbage collector's lookups by uid).
    uids: HashMap<String, ObjKey>,
    /// The objects with an owner reference to a uid, by that uid (the garbage collector's
    /// dependency graph, as kube-controller-manager's graph builder keeps it).
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    history: VecDeque<Arc<StoreEvent>>,
    history_limit: usize,
    /// Oldest revision still answerable by a watch: events after it are all in `history`.
    compacted_rv: u64,
    pub rng: ChaCha8Rng,
}

/// A receiver of committed events.
pub(crate) type Subscription = broadcast::Receiver<Arc<StoreEvent>>;

/// The store. Cheap to share behind an `Arc`.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<StoreEvent>>,
    /// Bumped to end every open watch ([`Store::end_watches`]).
    ends: tokio::sync::watch::Sender<u64>,
}

impl Store {
    pub fn new(history_limit: usize, seed: u64) -> Self {
        let (events, _) = broadcast::channel(16_384);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                uids: HashMap::new(),
                dependents: HashMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted_rv: 1,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
            events,
            ends: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A receiver that changes when every open watch must end.
    pub fn watch_ends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ends.subscribe()
    }

    /// Ends every open watch (its response ends), as an API server restart does.
    pub fn end_watches(&self) {
        self.ends.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Locks the store for a read-modify-write. Never held across an `.await`.
    pub fn lock(&self) -> Txn<'_> {
        Txn {
            inner: self.inner.lock().unwrap_or_else(|p| p.into_inner()),
            events: &self.events,
        }
    }

    /// Subscribes to events after `from_rv`, returning the retained events after it and a receiver
    /// for everything later; `Err(oldest)` if `from_rv` is older than the retained history.
    pub fn subscribe_from(
        &self,
        from_rv: u64,
    ) -> Result<(Vec<Arc<StoreEvent>>, Subscription), u64> {
        let txn = self.lock();
        if from_rv < txn.inner.compacted_rv {
            return Err(txn.inner.compacted_rv);
        }
        let backlog = txn
            .inner
            .history
            .iter()
            .filter(|e| e.rv > from_rv)
            .cloned()
            .collect();
        Ok((backlog, self.events.subscribe()))
    }

    /// A snapshot of the objects matching `filter` and the revision it was taken at, plus a
    /// receiver for everything after it.
    pub fn snapshot_and_subscribe(
        &self,
        filter: impl Fn(&ObjKey) -> bool,
    ) -> (Vec<(ObjKey, Value)>, u64, Subscription) {
        let txn = self.lock();
        let objects = txn
            .inner
            .objects
            .iter()
            .filter(|&(k, _)| filter(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (objects, txn.inner.rv, self.events.subscribe())
    }

    /// Forgets all retained history (as an etcd compaction does): watches from any earlier
    /// revision get 410.
    pub fn compact(&self) {
        let rv = self.lock().inner.rv;
        self.compact_to(rv);
    }

    /// Forgets the history up to `rv` (an etcd compaction at that revision): watches and
    /// `continue` tokens from an earlier revision get 410.
    pub fn compact_to(&self, rv: u64) {
        let mut txn = self.lock();
        let rv = rv.min(txn.inner.rv);
        if rv <= txn.inner.compacted_rv {
            return;
        }
        txn.inner.history.retain(|e| e.rv > rv);
        txn.inner.compacted_rv = rv;
    }
}

/// A locked view of the store.
pub(crate) struct Txn<'a> {
    pub inner: MutexGuard<'a, Inner>,
    events: &'a broadcast::Sender<Arc<StoreEvent>>,
}

impl Txn<'_> {
    /// The current (last committed) revision.
    pub fn current_rv(&self) -> u64 {
        self.inner.rv
    }

    /// The oldest revision a watch or a `continue` token may still start from.
    pub fn compacted_rv(&self) -> u64 {
        self.inner.compacted_rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.inner.objects.get(key)
    }

    /// All objects of one resource, in key order, optionally in one namespace.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<(ObjKey, Value)> {
        self.list_where(group, resource, namespace, |_, _| true)
    }

    /// The objects of one resource (optionally in one namespace) that `keep` selects, in key
    /// order; only those are cloned.
    pub fn list_where(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        mut keep: impl FnMut(&ObjKey, &Value) -> bool,
    ) -> Vec<(ObjKey, Value)> {
        self.range(group, resource, namespace)
            .filter(|&(k, v)| keep(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The objects of one resource (optionally in one namespace), in key order, by reference.
    pub fn range<'s>(
        &'s self,
        group: &'s str,
        resource: &'s str,
        namespace: Option<&'s str>,
    ) -> impl Iterator<Item = (&'s ObjKey, &'s Value)> + 's {
        let start = ObjKey {
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            name: String::new(),
        };
        self.inner.objects.range(start..).take_while(move |(k, _)| {
            k.group == group
                && k.resource == resource
                && namespace.is_none_or(|ns| k.namespace == ns)
        })
    }

    /// The object whose `metadata.uid` is `uid`, if one is stored.
    pub fn by_uid(&self, uid: &str) -> Option<(&ObjKey, &Value)> {
        let key = self.inner.uids.get(uid)?;
        self.inner.objects.get_key_value(key)
    }

    /// The objects with an owner reference to `uid`, in key order.
    pub fn dependents(&self, uid: &str) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.inner
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.inner.objects.get_key_value(k))
    }

    /// Every stored object (for garbage collection and namespace cleanup).
    pub fn all(&self) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.inner.objects.iter()
    }

    /// Stores `object` under `key` with the next revision and returns the stored object.
    pub fn put(&mut self, key: ObjKey, mut object: Value) -> Value {
        self.inner.rv += 1;
        let rv = self.inner.rv;
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let prev = self.inner.objects.insert(key.clone(), object.clone());
        if let Some(p) = &prev {
            self.unindex(&key, p);
        }
        self.index(&key, &object);
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.publish(StoreEvent {
            rv,
            kind,
            key,
            object: object.clone(),
            prev,
        });
        object
    }

    /// Removes the object under `key`; returns its last state carrying the deletion's revision.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let prev = self.inner.objects.remove(key)?;
        self.unindex(key, &prev);
        self.inner.rv += 1;
        let rv = self.inner.rv;
        let mut object = prev.clone();
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        self.publish(StoreEvent {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            object: object.clone(),
            prev: Some(prev),
        });
        Some(object)
    }

    fn index(&mut self, key: &ObjKey, object: &Value) {
        if let Some(uid) = uid_of(object) {
            self.inner.uids.insert(uid.to_string(), key.clone());
        }
        for owner in owner_uids(object) {
            self.inner
                .dependents
                .entry(owner.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &ObjKey, object: &Value) {
        if let Some(uid) = uid_of(object)
            && self.inner.uids.get(uid) == Some(key)
        {
            self.inner.uids.remove(uid);
        }
        for owner in owner_uids(object) {
            if let Some(set) = self.inner.dependents.get_mut(owner) {
                set.remove(key);
                if set.is_empty() {
                    self.inner.dependents.remove(owner);
                }
            }
        }
    }

    fn publish(&mut self, event: StoreEvent) {
        let event = Arc::new(event);
        self.inner.history.push_back(event.clone());
        while self.inner.history.len() > self.inner.history_limit {
            if let Some(old) = self.inner.history.pop_front() {
                self.inner.compacted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}

fn uid_of(object: &Value) -> Option<&str> {
    object["metadata"]["uid"].as_str().filter(|u| !u.is_empty())
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}
