//! Watch: a stream of `{"type": ..., "object": ...}` JSON lines.
//!
//! From `resourceVersion` unset or `"0"` (or with `sendInitialEvents=true`) the stream starts with
//! a synthetic `ADDED` per existing object; with `sendInitialEvents=true` and bookmarks allowed,
//! a `BOOKMARK` annotated `k8s.io/initial-events-end` follows. From a given revision it replays the
//! retained history after it, or sends one `ERROR` event carrying a 410 `Expired` Status when that
//! revision is older than the history (as kube-apiserver does after etcd compaction). With
//! selectors, an object that stops matching is sent as `DELETED` and one that starts matching as
//! `ADDED`, as on a real server.

use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::api::{Core, present};
use crate::schema::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{EventType, StoreEvent};

/// A watch request's parameters.
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchOpts {
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub allow_bookmarks: bool,
    pub timeout: Option<Duration>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmark_interval: Duration,
}

struct Filter {
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn in_scope(&self, e: &StoreEvent) -> bool {
        e.key.group == self.rt.group
            && e.key.resource == self.rt.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| !self.rt.namespaced || e.key.namespace == *ns)
    }

    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    /// The event a watcher with this filter sees for a store event, if any.
    fn translate(&self, e: &StoreEvent) -> Option<(&'static str, Value)> {
        if !self.in_scope(e) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        let ty = match (e.kind, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Deleted, true, _) => "DELETED",
            _ => return None,
        };
        Some((ty, present(&self.rt, e.object.clone())))
    }
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": ty, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}),
    )
}

/// Starts a watch; the returned receiver yields the stream's chunks and ends when the watch does.
pub(crate) fn start(
    core: Arc<Core>,
    rt: ResourceType,
    namespace: Option<String>,
    opts: WatchOpts,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(core, rt, namespace, opts, tx));
    rx
}

async fn run(
    core: Arc<Core>,
    rt: ResourceType,
    namespace: Option<String>,
    opts: WatchOpts,
    tx: mpsc::Sender<Bytes>,
) {
    // From the start: a watch that has sent anything ends with the others.
    let mut ends = core.store.watch_ends();
    let filter = Filter {
        rt: rt.clone(),
        namespace,
        labels: opts.labels.clone(),
        fields: opts.fields.clone(),
    };
    let from = opts
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty() && *rv != "0");
    let (mut last_rv, mut rx) = if opts.send_initial_events || from.is_none() {
        let ns = filter.namespace.clone();
        let (objects, rv, rx) = core.store.snapshot_and_subscribe(|k| {
            k.group == rt.group
                && k.resource == rt.plural
                && ns
                    .as_ref()
                    .is_none_or(|n| !rt.namespaced || k.namespace == *n)
        });
        for (_, o) in objects.iter().filter(|(_, o)| filter.matches(o)) {
            if tx
                .send(line("ADDED", &present(&rt, o.clone())))
                .await
                .is_err()
            {
                return;
            }
        }
        if opts.send_initial_events
            && opts.allow_bookmarks
            && tx.send(bookmark(&rt, rv, true)).await.is_err()
        {
            return;
        }
        (rv, rx)
    } else {
        let from_rv = from.and_then(|s| s.parse::<u64>().ok());
        let Some(from_rv) = from_rv else {
            let err = ApiError::bad_request(format!(
                "invalid resource version: {}",
                from.unwrap_or_default()
            ));
            let _ = tx.send(line("ERROR", &err.to_status())).await;
            return;
        };
        match core.store.subscribe_from(from_rv) {
            Ok((backlog, rx)) => {
                let mut last = from_rv;
                for e in backlog {
                    last = e.rv;
                    if let Some((ty, o)) = filter.translate(&e)
                        && tx.send(line(ty, &o)).await.is_err()
                    {
                        return;
                    }
                }
                (last, rx)
            }
            Err(oldest) => {
                let err =
                    ApiError::expired(format!("too old resource version: {from_rv} ({oldest})"));
                let _ = tx.send(line("ERROR", &err.to_status())).await;
                return;
            }
        }
    };

    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let interval = if opts.bookmark_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        opts.bookmark_interval
    };
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        // Biased: once the watches are ended, events stored after that are not sent on this
        // one (as after a server restart), however soon the task runs.
        tokio::select! {
            biased;
            _ = tx.closed() => return,
            _ = ends.changed() => return,
            _ = until_deadline => return,
            _ = ticker.tick(), if opts.allow_bookmarks => {
                if tx.send(bookmark(&rt, last_rv, false)).await.is_err() {
                    return;
                }
            }
            received = rx.recv() => match received {
                Ok(e) => {
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    if let Some((ty, o)) = filter.translate(&e)
                        && tx.send(line(ty, &o)).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let err = ApiError::expired(format!("too old resource version: {last_rv} (watcher fell behind)"));
                    let _ = tx.send(line("ERROR", &err.to_status())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
