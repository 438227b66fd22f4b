//! The events of a remote controller: one `kube::runtime::watcher` per watched resource (list,
//! then watch from the list's `resourceVersion`, relisting on 410 Gone, with kube's default
//! backoff on errors), merged into one stream of [`ObjectEvent`]s as the in-process runner gives
//! them: an `Added` for every object listed (at start and after every relist), `Modified` and
//! `Deleted` as they happen, and a `Deleted` for an object a relist no longer shows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

use super::{RemoteApi, typed};
use crate::cluster::ObjectEvent;
use crate::controllers::{Controller, ControllerApi, ControllerHandle, Watched};
use crate::store::{EventType, ObjKey};

/// Starts `controller` against the API server `api` talks to, writing as field manager
/// [`Controller::name`]; returns its handle and task. The task ends with a warning if the
/// controller watches every resource (only in-process controllers do).
pub fn spawn(
    api: RemoteApi,
    controller: Arc<dyn Controller>,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    let handle = ControllerHandle::new(controller.name());
    let api = api.as_manager(controller.name());
    let events = events(&api, controller.watches());
    let task = tokio::spawn(crate::controllers::run_events(
        ControllerApi::from(api),
        controller,
        handle.clone(),
        events,
    ));
    (handle, task)
}

/// The merged event stream of every watched resource.
fn events(api: &RemoteApi, watched: Vec<Watched>) -> BoxStream<'static, ObjectEvent> {
    if watched.is_empty() {
        tracing::warn!(
            manager = api.manager(),
            "a controller watching every resource runs only inside the API double"
        );
        return stream::empty().boxed();
    }
    stream::select_all(watched.into_iter().map(|w| resource_events(api.clone(), w))).boxed()
}

/// The resource `w` by discovery (its preferred version), waiting for it to be served (a CRD
/// not installed yet), with the same backoff as the runner's retries.
async fn discover(api: &RemoteApi, w: &Watched) -> ApiResource {
    let mut backoff = Duration::from_millis(5);
    loop {
        match kube::discovery::group(api.client(), &w.group).await {
            Ok(group) => {
                let found = group
                    .recommended_resources()
                    .into_iter()
                    .find(|(r, _)| r.plural == w.resource);
                if let Some((resource, _)) = found {
                    return resource;
                }
                tracing::debug!(group = %w.group, resource = %w.resource, "resource not served yet");
            }
            Err(e) => {
                tracing::debug!(group = %w.group, resource = %w.resource, error = %e, "discovery failed")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// What the stream of one resource remembers: the objects seen, to report those a relist no
/// longer has as deleted.
struct Seen {
    resource: ApiResource,
    objects: HashMap<(String, String), Value>,
    listed: Vec<(String, String)>,
}

impl Seen {
    fn event(&self, kind: EventType, object: Value) -> ObjectEvent {
        let key = key_of(&object);
        ObjectEvent::new(
            kind,
            &ObjKey {
                group: self.resource.group.clone(),
                resource: self.resource.plural.clone(),
                namespace: key.0,
                name: key.1,
            },
            object,
        )
    }

    /// The events for one watcher event.
    fn on(&mut self, event: Event<DynamicObject>) -> Vec<ObjectEvent> {
        let value = |o: DynamicObject| {
            typed(
                serde_json::to_value(o).unwrap_or(Value::Null),
                &self.resource,
            )
        };
        match event {
            Event::Init => {
                self.listed.clear();
                Vec::new()
            }
            Event::InitApply(o) => {
                let o = value(o);
                let key = key_of(&o);
                self.listed.push(key.clone());
                self.objects.insert(key, o.clone());
                vec![self.event(EventType::Added, o)]
            }
            Event::InitDone => {
                let listed: std::collections::HashSet<_> = self.listed.drain(..).collect();
                let gone: Vec<_> = self
                    .objects
                    .keys()
                    .filter(|k| !listed.contains(*k))
                    .cloned()
                    .collect();
                let removed: Vec<Value> = gone
                    .into_iter()
                    .filter_map(|k| self.objects.remove(&k))
                    .collect();
                removed
                    .into_iter()
                    .map(|o| self.event(EventType::Deleted, o))
                    .collect()
            }
            Event::Apply(o) => {
                let o = value(o);
                let kind = match self.objects.insert(key_of(&o), o.clone()) {
                    Some(_) => EventType::Modified,
                    None => EventType::Added,
                };
                vec![self.event(kind, o)]
            }
            Event::Delete(o) => {
                let o = value(o);
                self.objects.remove(&key_of(&o));
                vec![self.event(EventType::Deleted, o)]
            }
        }
    }
}

fn key_of(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    let s = |f: &str| meta[f].as_str().unwrap_or_default().to_string();
    (s("namespace"), s("name"))
}

/// The events of one resource, across all namespaces.
fn resource_events(api: RemoteApi, w: Watched) -> BoxStream<'static, ObjectEvent> {
    stream::once(async move {
        let resource = discover(&api, &w).await;
        let all: Api<DynamicObject> = Api::all_with(api.client().clone(), &resource);
        let mut seen = Seen {
            resource,
            objects: HashMap::new(),
            listed: Vec::new(),
        };
        watcher::watcher(all, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| {
                let out = match event {
                    Ok(event) => seen.on(event),
                    Err(e) => {
                        tracing::warn!(resource = %w.resource, group = %w.group, error = %e, "watch failed; retrying");
                        Vec::new()
                    }
                };
                futures::future::ready(Some(stream::iter(out)))
            })
            .flatten()
    })
    .flatten()
    .boxed()
}
