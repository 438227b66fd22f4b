//! Shared watches: one watch per kind (and namespace) feeds every wait on objects of that kind.
//!
//! Waiting for a thousand VMs through a watch per VM opens a thousand watches (and lists). An
//! [`Informers`] registry instead runs one list-then-watch loop per resource URL (a kind in a
//! namespace, or a cluster-scoped kind) while anyone is waiting on objects of it, keeps the
//! objects it has seen, and wakes the waiters on an object when that object changes (every
//! waiter when the store is listed again): a thousand waits on one kind cost a wake-up per change
//! of their own object, not one per change of any object of the kind. The loop is stopped a
//! moment ([`Informers::with_linger`], 5 s by default) after the last waiter is gone, so the
//! waits of consecutive steps, and reads between them ([`Informers::cached`]), reuse it; at
//! once when the registry itself is gone (its last clone dropped, with the client that held it):
//! nothing runs on in the background for a registry nobody can use.
//!
//! ## What the store holds, and how fresh it is
//!
//! The loop is kube-runtime's watcher, written out so that the store knows the revision it
//! reflects: it lists the kind (in pages), remembers the list's `resourceVersion`, then watches
//! from it (with bookmarks); a dropped watch resumes from the last revision delivered, a `410
//! Gone` lists again, and a completed list *replaces* the store, as a reflector does. The store
//! therefore reflects the server exactly as of one revision, `seen` (the last list's revision,
//! then every watch event and bookmark).
//!
//! A wait must also see the writes that came before it even when the watch has not delivered
//! them yet: [`Writer`](crate::Writer) feeds what the API server answered to its own writes into
//! the registry ([`Informers::observe`]). Such an answer is newer than the store only if its
//! `resourceVersion` is greater than `seen`; otherwise the store has already seen that write, or
//! something later (its deletion, say), and the answer is ignored. An answer kept this way is
//! "ahead" of the watch until the watch reaches its revision; a list completed in the meantime
//! drops it unless it is newer than the list, so a stale answer never brings back an object the
//! server has since deleted.
//!
//! ## Reads that must reflect "now"
//!
//! Waits ([`Informers::states`]) start from the store: a first state a moment old is followed by
//! every change, so a wait sees the state it waits for as soon as the watch delivers it. Reads
//! ([`Informers::cached`], used by [`Writer::current`](crate::Writer::current)) also honour a
//! barrier: a caller that waited for a state through this registry
//! ([`Writer::wait_for`](crate::Writer::wait_for) records it with [`Informers::witness`]) acts on
//! everything the cluster did up to that state's revision (a controller's other writes before
//! it, such as a VM a restore rewrote before marking the restore complete), so a read through a
//! store that has not seen that revision yet is answered by the server instead (and the answer
//! fed to the store). When the state that ended the wait is the answer to the caller's own write
//! (ahead of the watch), the barrier is the revision the watch had reached: the caller learnt
//! nothing newer about the rest of the cluster, and its own write is already in the store.
//! Waiting and reading through one registry is thus causally consistent, at no cost while the
//! stores keep up: a list taken after a wait is newer than its barrier, and the watch of an
//! active kind passes a barrier within milliseconds; a quiet kind's store (no event since the
//! barrier) answers with one read per object until its watch moves on.
//!
//! ## What this relies on
//!
//! `resourceVersion`s are opaque strings in the Kubernetes API, but kube-apiserver's are etcd
//! revisions: decimal integers, increasing with every write in the cluster. The store compares
//! them as integers within one resource (an answer against its watch). The barrier compares
//! revisions of different resources, which holds when the cluster keeps its resources in one
//! etcd (the default); with `--etcd-servers-overrides`, revisions of resources kept in different
//! etcd clusters are not comparable and the barrier guarantees nothing (the rules for answers
//! still hold). An answer whose `resourceVersion` is not an integer is not fed to the store:
//! waits then see that write when the watch delivers it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Resource;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
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
    /// The latest revision a caller has acted on ([`Informers::witness`]): reads through a store
    /// that has not seen it are answered by the server.
    barrier: Arc<AtomicU64>,
    linger: Duration,
    /// Dropped with the last clone of the registry: ends the lingering of its watches.
    alive: Arc<watch::Sender<()>>,
}

impl Default for Informers {
    fn default() -> Self {
        Self {
            running: Arc::default(),
            barrier: Arc::default(),
            linger: Duration::from_secs(5),
            alive: Arc::new(watch::channel(()).0),
        }
    }
}

/// A use of a running informer; when dropped, the informer is kept for the linger time (or
/// until the registry is gone).
struct Lease {
    informer: Option<Arc<Informer>>,
    linger: Duration,
    /// Closed when the registry is gone.
    registry: watch::Receiver<()>,
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
            let mut registry = self.registry.clone();
            runtime.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(linger) => {}
                    // Nothing is ever sent: this ends when the registry's last clone is dropped,
                    // after which nobody can reuse the watch.
                    _ = registry.changed() => {}
                }
                drop(informer);
            });
        }
    }
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers")
            .field("running", &lock(&self.running).len())
            .field("barrier", &self.barrier.load(Ordering::Relaxed))
            .field("linger", &self.linger)
            .finish()
    }
}

/// One running list-then-watch loop and what it has seen; dropped (and its task aborted) with its
/// last user.
struct Informer {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state the loop and the waiters share.
struct Shared {
    store: Mutex<Store>,
    /// Bumped on every change (and list): for waits on the whole store (`selected`, the first
    /// list of `cached`).
    changed: watch::Sender<u64>,
    /// Per object name, bumped when that object changes (and on every list): waiters on one
    /// object ([`Informers::states`]) re-read it. An entry lives while someone waits on the name.
    by_name: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// What a change of the store concerns: whom to wake.
enum Changed {
    /// Nothing waiters look at (a bookmark, an ignored answer).
    Nothing,
    /// One object.
    One(String),
    /// Everything (a completed list).
    All,
}

/// A waiter's subscription to the changes of one object name; removes the name's entry when
/// its last waiter is gone.
struct NameChanges {
    shared: Arc<Shared>,
    name: String,
    changes: Option<watch::Receiver<u64>>,
}

impl NameChanges {
    fn new(shared: Arc<Shared>, name: String) -> Self {
        let changes = lock(&shared.by_name)
            .entry(name.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Self {
            shared,
            name,
            changes: Some(changes),
        }
    }

    fn receiver(&mut self) -> &mut watch::Receiver<u64> {
        self.changes.as_mut().expect("held until dropped")
    }
}

impl Drop for NameChanges {
    fn drop(&mut self) {
        let mut by_name = lock(&self.shared.by_name);
        // Dropped under the lock: a new waiter on the name either found this entry (and counts)
        // or creates a new one after it is removed.
        drop(self.changes.take());
        if by_name
            .get(&self.name)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            by_name.remove(&self.name);
        }
    }
}

/// The objects of one resource URL as of revision `seen`, plus answers to writes newer than it.
#[derive(Default, Debug)]
struct Store {
    /// Whether a list has completed.
    synced: bool,
    objects: HashMap<String, Value>,
    /// The revision the store reflects: the last list's, then every watch event's and bookmark's.
    seen: u64,
    /// Objects put from answers to writes that the watch has not delivered yet, with the
    /// revision of the answer.
    ahead: HashMap<String, u64>,
}

impl Store {
    /// A completed list at revision `at` replaces everything, except answers newer than it.
    fn listed(&mut self, items: Vec<Value>, at: u64) {
        let mut objects: HashMap<String, Value> = items
            .into_iter()
            .filter_map(|o| Some((name_of(&o)?, o)))
            .collect();
        let kept = &mut self.objects;
        self.ahead.retain(|name, written| {
            *written > at
                && kept
                    .remove(name)
                    .map(|o| objects.insert(name.clone(), o))
                    .is_some()
        });
        self.objects = objects;
        self.seen = at;
        self.synced = true;
    }

    /// A watch event: `object` is the new state of `name` (`None`: deleted) at revision `at`.
    fn event(&mut self, name: String, object: Option<Value>, at: Option<u64>) {
        let newer_answer = match (self.ahead.get(&name), at) {
            (Some(written), Some(at)) => *written > at,
            _ => false,
        };
        if !newer_answer {
            self.ahead.remove(&name);
            match object {
                Some(o) => self.objects.insert(name, o),
                None => self.objects.remove(&name),
            };
        }
        if let Some(at) = at {
            self.progress(at);
        }
    }

    /// The watch has delivered everything up to revision `at`.
    fn progress(&mut self, at: u64) {
        if at > self.seen {
            self.seen = at;
            self.ahead.retain(|_, written| *written > at);
        }
    }

    /// An answer to a write; whether it changed the store.
    fn observe(&mut self, name: String, object: Value) -> bool {
        let Some(written) = resource_version(&object) else {
            return false;
        };
        if written <= self.seen
            || self
                .objects
                .get(&name)
                .and_then(resource_version)
                .is_some_and(|held| held >= written)
        {
            return false;
        }
        self.objects.insert(name.clone(), object);
        self.ahead.insert(name, written);
        true
    }
}

impl Shared {
    /// Changes the store, then wakes whom the change concerns (after the store's lock is given
    /// back: a woken waiter reads the store at once).
    fn update(&self, change: impl FnOnce(&mut Store) -> Changed) {
        let changed = change(&mut lock(&self.store));
        let bump = |sender: &watch::Sender<u64>| sender.send_modify(|n| *n = n.wrapping_add(1));
        match changed {
            Changed::Nothing => return,
            Changed::One(name) => {
                if let Some(sender) = lock(&self.by_name).get(&name) {
                    bump(sender);
                }
            }
            Changed::All => lock(&self.by_name).values().for_each(bump),
        }
        bump(&self.changed);
    }

    /// The object's current state once the first list is done, unless it is still `seen`
    /// (the same resourceVersion, or an equal value without one).
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

    /// The object's current state, once the store has listed and has seen revision `barrier`.
    fn current(&self, name: &str, barrier: u64) -> Option<Option<Value>> {
        let store = lock(&self.store);
        (store.synced && store.seen >= barrier).then(|| store.objects.get(name).cloned())
    }

    /// Whether a list has completed.
    fn synced(&self) -> bool {
        lock(&self.store).synced
    }
}

impl Informers {
    /// The same registry with another linger time: how long a shared watch stays up after its
    /// last user is gone (zero: stop at once).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Records that a caller has seen `object` behind `api` (a state that ended a wait) and acts
    /// on it: reads through [`Informers::cached`] from now on reflect at least its revision, or
    /// the revision the shared watch of its kind had reached when the state is an answer to a
    /// write the watch has not delivered yet (see the module documentation).
    /// [`Writer::wait_for`](crate::Writer::wait_for) calls it.
    pub fn witness<K: Resource>(&self, api: &Api<K>, object: &K) {
        let Some(at) = object
            .meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return;
        };
        let at = match self.running(api.resource_url()) {
            Some(informer) => at.min(lock(&informer.shared.store).seen),
            None => at,
        };
        self.barrier.fetch_max(at, Ordering::AcqRel);
    }

    /// The object `name` behind `api` as the shared watch of its kind knows it (`Some(None)`
    /// when it does not exist), starting that watch if needed (one list and one watch for the
    /// kind) and waiting up to `patience` for it to list. `None` if it has not listed by then,
    /// or if it has not yet seen the revision of a state a caller waited for
    /// ([`Informers::witness`]): the caller then reads from the server (and may feed the answer
    /// back with [`Informers::observe`]).
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
                if informer.shared.synced() {
                    return Some(());
                }
                changes.changed().await.ok()?;
            }
        };
        tokio::time::timeout(patience, listed).await.ok()??;
        let barrier = self.barrier.load(Ordering::Acquire);
        let Some(now) = informer.shared.current(name, barrier) else {
            tracing::trace!(
                url = api.resource_url(),
                name,
                barrier,
                "shared watch behind a barrier"
            );
            return None;
        };
        Some(decode(now, name))
    }

    /// The states of the object `name` behind `api`: the current one once the shared watch of
    /// its kind has listed (`None` while it does not exist), then one per change of it. Every
    /// stream on the same resource URL shares one watch; a dropped watch resumes (with
    /// backoff), listing again after `410 Gone`. The stream is woken only by changes of its own
    /// object (and by lists), not by those of the kind's other objects.
    pub fn states<K>(&self, api: &Api<K>, name: &str) -> BoxStream<'static, Result<Option<K>>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let informer = self.informer(api);
        // Subscribed before the first read: a change after that read wakes the stream.
        let changes = NameChanges::new(informer.shared.clone(), name.to_string());
        futures::stream::unfold(
            (informer, changes, None::<Option<Value>>),
            |(informer, mut changes, last)| async move {
                loop {
                    changes.receiver().borrow_and_update();
                    let name = &changes.name;
                    if let Some(now) = informer.shared.current_unless(name, last.as_ref()) {
                        let item = decode(now.clone(), name);
                        return Some((item, (informer, changes, Some(now))));
                    }
                    changes.receiver().changed().await.ok()?;
                }
            },
        )
        .boxed()
    }

    /// Every object behind `api` that matches the field selector `fields` (for example the
    /// `reason=AllocationFailed` Events of a namespace): all of them once the shared watch of
    /// that selection has listed, then again at every change. Every stream with the same
    /// resource URL and selector shares one watch, so waits on many objects that each look for
    /// their own entries (an Event naming them, say) open one watch, not one each.
    ///
    /// ```no_run
    /// # async fn f(client: kube::Client) {
    /// use futures::StreamExt;
    /// use k8s_openapi::api::core::v1::Event;
    /// let informers = kubecloud_kube::Informers::default();
    /// let events: kube::Api<Event> = kube::Api::namespaced(client, "tenant-acme");
    /// let mut failures = informers.selected(&events, "reason=AllocationFailed");
    /// while let Some(Ok(events)) = failures.next().await {
    ///     println!("{} allocation failures", events.len());
    /// }
    /// # }
    /// ```
    pub fn selected<K>(&self, api: &Api<K>, fields: &str) -> BoxStream<'static, Result<Vec<K>>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let informer = self.informer_of(api, Some(fields));
        let changes = informer.shared.changed.subscribe();
        // `sent`: the current selection went out; the next one waits for a change.
        let start = (informer, changes, false);
        futures::stream::unfold(start, |(informer, mut changes, sent)| async move {
            if sent {
                changes.changed().await.ok()?;
            }
            loop {
                changes.borrow_and_update();
                let objects = {
                    let store = lock(&informer.shared.store);
                    store
                        .synced
                        .then(|| store.objects.values().cloned().collect::<Vec<_>>())
                };
                if let Some(objects) = objects {
                    let decoded = objects
                        .into_iter()
                        .filter_map(|o| decode::<K>(Some(o), "a selected object").transpose())
                        .collect::<Result<Vec<K>>>();
                    return Some((decoded, (informer, changes, true)));
                }
                changes.changed().await.ok()?;
            }
        })
        .boxed()
    }

    /// Records what the API server answered to a write of `object` behind `api` (or a read of
    /// it), so waits that start now see it even before the watch delivers it; an answer older
    /// than what the watch has delivered is ignored (see the module documentation). A no-op
    /// when nobody watches that kind.
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
            informer.shared.update(|store| {
                if store.observe(name.clone(), value) {
                    Changed::One(name)
                } else {
                    Changed::Nothing
                }
            });
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
        self.informer_of(api, None)
    }

    /// The shared watch of `api`'s objects that match `fields` (a field selector; `None`: all),
    /// started if nobody runs it. Watches with a selector are keyed apart from the whole kind's:
    /// they hold a subset, so they never answer reads or receive answers to writes.
    fn informer_of<K>(&self, api: &Api<K>, fields: Option<&str>) -> Lease
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let url = match fields {
            None => api.resource_url().to_string(),
            Some(fields) => format!("{}?fieldSelector={fields}", api.resource_url()),
        };
        let mut running = lock(&self.running);
        let lease = |informer| Lease {
            informer: Some(informer),
            linger: self.linger,
            registry: self.alive.subscribe(),
        };
        if let Some(informer) = running.get(&url).and_then(Weak::upgrade) {
            return lease(informer);
        }
        running.retain(|_, w| w.strong_count() > 0);
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changed,
            by_name: Mutex::default(),
        });
        let fields = fields.map(str::to_string);
        let task =
            tokio::spawn(feed(api.clone(), shared.clone(), url.clone(), fields)).abort_handle();
        let informer = Arc::new(Informer { shared, task });
        running.insert(url, Arc::downgrade(&informer));
        lease(informer)
    }
}

fn decode<K: DeserializeOwned>(state: Option<Value>, name: &str) -> Result<Option<K>> {
    state
        .map(|s| crate::decode::value::<K>(&s))
        .transpose()
        .map_err(|e| {
            kubecloud_core::Error::backend(
                "kubernetes",
                format!("decoding {name:?} from a watch: {e}"),
                false,
                <serde_json::Error as serde::de::Error>::custom(e),
            )
        })
}

/// Objects per page when listing.
const PAGE: u32 = 500;
/// How long one watch request lasts before it is renewed (as kube-runtime's watcher asks).
const WATCH_SECONDS: u32 = 290;

/// Delays between failed requests of the loop: doubling from 200 ms to 10 s, reset by success.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Self::MAX);
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// The list-then-watch loop: every list and event into the shared store.
async fn feed<K>(api: Api<K>, shared: Arc<Shared>, url: String, fields: Option<String>)
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    tracing::debug!(%url, "shared watch started");
    let mut backoff = Backoff(Backoff::FIRST);
    // The revision to watch from; `None`: list first.
    let mut from: Option<String> = None;
    loop {
        let since = match from.take() {
            Some(since) => since,
            None => match list(&api, fields.as_deref()).await {
                Ok((items, version)) => {
                    backoff.reset();
                    let at = version.parse().unwrap_or(0);
                    shared.update(|store| {
                        store.listed(items, at);
                        Changed::All
                    });
                    version
                }
                Err(err) => {
                    tracing::debug!(%url, error = %err, "shared watch: list failed; retrying");
                    backoff.wait().await;
                    continue;
                }
            },
        };
        match watch(&api, fields.as_deref(), &shared, &since, &mut backoff).await {
            Resume::From(at) => from = Some(at),
            Resume::Relist => {}
            Resume::After(at, err) => {
                tracing::debug!(%url, error = %err, "shared watch failed; it resumes");
                from = Some(at);
                backoff.wait().await;
            }
        }
    }
}

/// How a watch request ended.
enum Resume {
    /// Closed by the server (a timeout, a restart): watch again from this revision.
    From(String),
    /// The revision is no longer available (`410 Gone`): list again.
    Relist,
    /// Failed: watch again from this revision after a delay.
    After(String, String),
}

/// Every object of the kind, in pages, and the revision of the list.
async fn list<K>(
    api: &Api<K>,
    fields: Option<&str>,
) -> std::result::Result<(Vec<Value>, String), kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    if let Some(fields) = fields {
        params = params.fields(fields);
    }
    let mut version = None;
    loop {
        let page = api.list(&params).await?;
        // Every page of one list is a view of the first page's revision.
        version = version.or(page.metadata.resource_version);
        items.extend(
            page.items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok()),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => params = params.continue_token(&next),
            None => break,
        }
    }
    Ok((items, version.unwrap_or_default()))
}

/// One watch request from revision `since`, every event into the store.
async fn watch<K>(
    api: &Api<K>,
    fields: Option<&str>,
    shared: &Shared,
    since: &str,
    backoff: &mut Backoff,
) -> Resume
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    // With bookmarks (kube's default): they carry the revision forward on quiet kinds.
    let mut params = WatchParams::default().timeout(WATCH_SECONDS);
    if let Some(fields) = fields {
        params = params.fields(fields);
    }
    let mut at = since.to_string();
    let events = match api.watch(&params, since).await {
        Ok(events) => events,
        Err(kube::Error::Api(status)) if status.code == 410 => return Resume::Relist,
        Err(err) => return Resume::After(at, err.to_string()),
    };
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let (object, deleted) = match event {
            Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => (o, false),
            Ok(WatchEvent::Deleted(o)) => (o, true),
            Ok(WatchEvent::Bookmark(mark)) => {
                if let Ok(version) = mark.metadata.resource_version.parse() {
                    shared.update(|store| {
                        store.progress(version);
                        Changed::Nothing
                    });
                }
                at = mark.metadata.resource_version;
                continue;
            }
            Ok(WatchEvent::Error(status)) if status.code == 410 => return Resume::Relist,
            Ok(WatchEvent::Error(status)) => return Resume::After(at, status.message.clone()),
            Err(err) => return Resume::After(at, err.to_string()),
        };
        backoff.reset();
        let Ok(value) = serde_json::to_value(&object) else {
            continue;
        };
        let Some(name) = name_of(&value) else {
            continue;
        };
        if let Some(version) = object.meta().resource_version.clone() {
            at = version;
        }
        let version = resource_version(&value);
        shared.update(|store| {
            store.event(name.clone(), (!deleted).then_some(value), version);
            Changed::One(name)
        });
    }
    Resume::From(at)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, version: u64) -> Value {
        json!({"metadata": {"name": name, "resourceVersion": version.to_string()}})
    }

    fn version_of(store: &Store, name: &str) -> Option<u64> {
        store.objects.get(name).and_then(resource_version)
    }

    #[test]
    fn a_list_drops_answers_it_is_newer_than_and_keeps_newer_ones() {
        let mut store = Store::default();
        store.listed(vec![object("a", 3)], 5);
        // Answers to writes the watch has not delivered yet.
        assert!(store.observe("old".into(), object("old", 7)));
        assert!(store.observe("new".into(), object("new", 12)));
        // A list at revision 10 (taken after "old" was written and deleted) does not have them.
        store.listed(vec![object("a", 3)], 10);
        assert_eq!(version_of(&store, "old"), None, "gone as of the list");
        assert_eq!(
            version_of(&store, "new"),
            Some(12),
            "written after the list"
        );
        assert_eq!(version_of(&store, "a"), Some(3));
    }

    #[test]
    fn an_answer_the_watch_has_passed_is_ignored() {
        let mut store = Store::default();
        store.listed(vec![], 5);
        store.event("a".into(), Some(object("a", 6)), Some(6));
        store.event("a".into(), None, Some(8));
        assert!(!store.observe("a".into(), object("a", 6)), "deleted at 8");
        store.progress(20);
        assert!(
            !store.observe("b".into(), object("b", 15)),
            "the watch is at 20"
        );
        assert!(store.objects.is_empty());
    }

    #[test]
    fn older_watch_events_do_not_replace_a_newer_answer() {
        let mut store = Store::default();
        store.listed(vec![], 5);
        assert!(store.observe("a".into(), object("a", 9)));
        // The watch catches up: the creation, then a deletion before the answer's write (the
        // name was created again at 9).
        store.event("a".into(), Some(object("a", 6)), Some(6));
        store.event("a".into(), None, Some(7));
        assert_eq!(version_of(&store, "a"), Some(9));
        store.event("a".into(), Some(object("a", 9)), Some(9));
        assert!(store.ahead.is_empty(), "the watch delivered the answer");
        store.event("a".into(), None, Some(11));
        assert_eq!(version_of(&store, "a"), None);
    }

    /// A watch that lingers after its last user is stopped at once when the registry is dropped
    /// (with the client that held it): nothing keeps running for a registry nobody can use.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_registry_stops_its_lingering_watches_at_once() {
        // Nothing listens there: the loop retries its list with backoff until stopped.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "acme");
        let informers = Informers::default().with_linger(Duration::from_secs(3600));
        let states = informers.states(&api, "a");
        let informer = lock(&informers.running)
            .values()
            .next()
            .cloned()
            .expect("a running watch");
        drop(states);
        assert!(informer.upgrade().is_some(), "lingers after its last user");
        let started = tokio::time::Instant::now();
        drop(informers);
        for _ in 0..1000 {
            if informer.upgrade().is_none() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(informer.upgrade().is_none(), "stopped with the registry");
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "not after the linger time"
        );
    }

    #[test]
    fn an_answer_without_an_integer_version_is_not_fed() {
        let mut store = Store::default();
        store.listed(vec![], 5);
        let odd = json!({"metadata": {"name": "a", "resourceVersion": "x1"}});
        assert!(!store.observe("a".into(), odd));
        assert!(store.objects.is_empty());
    }
}
