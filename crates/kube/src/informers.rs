//! Shared watches: one watch per kind (and namespace) feeds every wait on objects of that kind.
//!
//! Waiting for a thousand VMs through a watch per VM opens a thousand watches (and lists). An
//! [`Informers`] registry instead runs one kube-runtime watcher per resource URL (a kind in a
//! namespace, or a cluster-scoped kind) while anyone is waiting on objects of it, keeps the
//! objects it has seen, and wakes every waiter on each change; each waiter looks at its own
//! object. The watcher is stopped a moment ([`Informers::with_linger`], 5 s by default) after
//! the last waiter is gone, so the waits of consecutive steps, and reads between them
//! ([`Informers::cached`]), reuse it.
//!
//! Reads from a watch may lag behind the server by the watch's latency (milliseconds): they are
//! used only where kubecloud itself is the writer of the objects read (its own objects, named
//! deterministically), and a write made on a stale read is at worst one write too many.
//!
//! A wait must see the writes that came before it even when the watch has not delivered them
//! yet: [`Writer`](crate::Writer) feeds what the API server answered to its own writes into the
//! registry ([`Informers::observe`]). Between two states of the same object, the newer
//! `resourceVersion` wins (compared as numbers when both are, as kube-apiserver's are; otherwise
//! the later event wins), and a deletion the watch reported is not undone by an older answer.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_core::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

/// A registry of shared watches, one per resource URL, cheap to clone (clones share it).
///
/// ```no_run
/// # async fn demo(client: kube::Client) {
/// use futures::StreamExt;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// let informers = kubecloud_kube::Informers::default();
/// let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "acme");
/// // Both streams share one watch of the namespace's ConfigMaps.
/// let mut a = informers.states(&api, "a");
/// let mut b = informers.states(&api, "b");
/// let (_a, _b) = (a.next().await, b.next().await);
/// # }
/// ```
#[derive(Clone)]
pub struct Informers {
    running: Arc<Mutex<HashMap<String, Weak<Informer>>>>,
    linger: Duration,
}

impl Default for Informers {
    fn default() -> Self {
        Self {
            running: Arc::default(),
            linger: Duration::from_secs(5),
        }
    }
}

/// A use of a running informer; when dropped, the informer is kept for the linger time.
struct Lease {
    informer: Option<Arc<Informer>>,
    linger: Duration,
}

impl std::ops::Deref for Lease {
    type Target = Informer;

    fn deref(&self) -> &Informer {
        self.informer.as_ref().expect("held until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let informer = self.informer.take();
        if self.linger.is_zero() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let linger = self.linger;
            runtime.spawn(async move {
                tokio::time::sleep(linger).await;
                drop(informer);
            });
        }
    }
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers")
            .field("running", &lock(&self.running).len())
            .field("linger", &self.linger)
            .finish()
    }
}

/// One running watcher and what it has seen; dropped (and its task aborted) with its last user.
struct Informer {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state the watcher task and the waiters share.
struct Shared {
    store: Mutex<Store>,
    /// Bumped on every change; waiters re-read their object.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Store {
    /// Whether the first list has completed.
    synced: bool,
    objects: HashMap<String, Value>,
    /// A re-list in progress (after `410 Gone`): replaces `objects` when done.
    relisting: Option<HashMap<String, Value>>,
    /// Objects the watch reported deleted, with the version they had: an older answer to a
    /// write must not bring them back.
    deleted: HashMap<String, Option<u64>>,
}

impl Store {
    fn put(&mut self, name: String, object: Value) {
        let version = resource_version(&object);
        if let (Some(gone), Some(v)) = (self.deleted.get(&name), version)
            && gone.is_some_and(|g| g >= v)
        {
            return;
        }
        self.deleted.remove(&name);
        for map in std::iter::once(&mut self.objects).chain(self.relisting.as_mut()) {
            let newer = map
                .get(&name)
                .is_none_or(|old| match (resource_version(old), version) {
                    (Some(old), Some(new)) => new >= old,
                    _ => true,
                });
            if newer {
                map.insert(name.clone(), object.clone());
            }
        }
    }

    fn remove(&mut self, name: &str, version: Option<u64>) {
        self.objects.remove(name);
        if let Some(map) = self.relisting.as_mut() {
            map.remove(name);
        }
        self.deleted.insert(name.to_string(), version);
    }
}

impl Shared {
    fn absorb(&self, event: watcher::Event<Value>) {
        let mut store = lock(&self.store);
        match event {
            watcher::Event::Apply(object) => {
                if let Some(name) = name_of(&object) {
                    store.put(name, object);
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(name) = name_of(&object) {
                    store.remove(&name, resource_version(&object));
                }
            }
            watcher::Event::Init => {
                store.relisting = Some(HashMap::new());
                return;
            }
            watcher::Event::InitApply(object) => {
                if let (Some(name), Some(map)) = (name_of(&object), store.relisting.as_mut()) {
                    map.insert(name, object);
                }
                return;
            }
            watcher::Event::InitDone => {
                if let Some(listed) = store.relisting.take() {
                    store.objects = listed;
                }
                store.deleted.clear();
                store.synced = true;
            }
        }
        drop(store);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The object's current state once the first list is done, unless it is still `seen`
    /// (the same resourceVersion, or an equal value without one). Every change of the kind
    /// wakes every waiter on it: one whose object did not change copies nothing.
    fn current_unless(&self, name: &str, seen: Option<&Option<Value>>) -> Option<Option<Value>> {
        let store = lock(&self.store);
        if !store.synced {
            return None;
        }
        let now = store.objects.get(name);
        let unchanged = seen.is_some_and(|seen| match (seen.as_ref(), now) {
            (None, None) => true,
            (Some(a), Some(b)) => match (resource_version(a), resource_version(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            },
            _ => false,
        });
        (!unchanged).then(|| now.cloned())
    }

    /// The object's current state, once the first list is done.
    fn current(&self, name: &str) -> Option<Option<Value>> {
        let store = lock(&self.store);
        store.synced.then(|| store.objects.get(name).cloned())
    }
}

impl Informers {
    /// The same registry with another linger time: how long a shared watch stays up after its
    /// last user is gone (zero: stop at once).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The object `name` behind `api` as the shared watch of its kind knows it (`Some(None)`
    /// when it does not exist), starting that watch if needed (one list and one watch for the
    /// kind) and waiting up to `patience` for it to list; `None` if it has not listed by then
    /// (the caller reads from the server instead).
    pub async fn cached<K>(
        &self,
        api: &Api<K>,
        name: &str,
        patience: Duration,
    ) -> Option<Result<Option<K>>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let informer = self.informer(api);
        let mut changes = informer.shared.changed.subscribe();
        let listed = async {
            loop {
                changes.borrow_and_update();
                if let Some(now) = informer.shared.current(name) {
                    return Some(now);
                }
                changes.changed().await.ok()?;
            }
        };
        let now = tokio::time::timeout(patience, listed).await.ok()??;
        Some(
            now.map(serde_json::from_value::<K>)
                .transpose()
                .map_err(|e| {
                    kubecloud_core::Error::backend(
                        "kubernetes",
                        format!("decoding {name:?} from a watch"),
                        false,
                        e,
                    )
                }),
        )
    }

    /// The states of the object `name` behind `api`: the current one once the shared watch of
    /// its kind has listed (`None` while it does not exist), then one per change of it. Every
    /// stream on the same resource URL shares one watch; a dropped watch resumes (with
    /// kube-runtime's backoff), re-listing after `410 Gone`.
    pub fn states<K>(&self, api: &Api<K>, name: &str) -> BoxStream<'static, Result<Option<K>>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let informer = self.informer(api);
        let changes = informer.shared.changed.subscribe();
        let name = name.to_string();
        futures::stream::unfold(
            (informer, changes, name, None::<Option<Value>>),
            |(informer, mut changes, name, last)| async move {
                loop {
                    changes.borrow_and_update();
                    if let Some(now) = informer.shared.current_unless(&name, last.as_ref()) {
                        let item = now
                            .clone()
                            .map(serde_json::from_value::<K>)
                            .transpose()
                            .map_err(|e| {
                                kubecloud_core::Error::backend(
                                    "kubernetes",
                                    format!("decoding {name:?} from a watch"),
                                    false,
                                    e,
                                )
                            });
                        return Some((item, (informer, changes, name, Some(now))));
                    }
                    changes.changed().await.ok()?;
                }
            },
        )
        .boxed()
    }

    /// Records what the API server answered to a write of `object` behind `api`, so waits that
    /// start now see it even before the watch delivers it. A no-op when nobody watches that
    /// kind.
    pub fn observe<K>(&self, api: &Api<K>, object: &K)
    where
        K: Resource + Serialize,
    {
        let Some(informer) = self.running(api.resource_url()) else {
            return;
        };
        let Ok(value) = serde_json::to_value(object) else {
            return;
        };
        if let Some(name) = name_of(&value) {
            lock(&informer.shared.store).put(name, value);
            informer
                .shared
                .changed
                .send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How many shared watches are running.
    pub fn running_watches(&self) -> usize {
        lock(&self.running)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    fn running(&self, url: &str) -> Option<Arc<Informer>> {
        lock(&self.running).get(url).and_then(Weak::upgrade)
    }

    fn informer<K>(&self, api: &Api<K>) -> Lease
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let url = api.resource_url().to_string();
        let mut running = lock(&self.running);
        let lease = |informer| Lease {
            informer: Some(informer),
            linger: self.linger,
        };
        if let Some(informer) = running.get(&url).and_then(Weak::upgrade) {
            return lease(informer);
        }
        running.retain(|_, w| w.strong_count() > 0);
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changed,
        });
        let task = tokio::spawn(feed(api.clone(), shared.clone(), url.clone())).abort_handle();
        let informer = Arc::new(Informer { shared, task });
        running.insert(url, Arc::downgrade(&informer));
        lease(informer)
    }
}

/// The watcher task: every event into the shared store.
async fn feed<K>(api: Api<K>, shared: Arc<Shared>, url: String)
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    tracing::debug!(%url, "shared watch started");
    let events = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => shared.absorb(to_values(event)),
            Err(err) => tracing::debug!(%url, error = %err, "shared watch failed; it resumes"),
        }
    }
}

fn to_values<K: Serialize>(event: watcher::Event<K>) -> watcher::Event<Value> {
    let value = |o: K| serde_json::to_value(o).unwrap_or_default();
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(value(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(value(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(value(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn name_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn resource_version(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
