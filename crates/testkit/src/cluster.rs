//! The in-process handle: the same verbs as the HTTP API, without the socket.
//!
//! Seeding, reading back, and the simulated controllers go through here. It calls the very code
//! the HTTP handlers call (admission, validation, field management, resourceVersions, watch
//! events), so what it writes is indistinguishable from a client's write, except that it is not in
//! the request log and injected faults and latency do not apply to it.

use serde_json::Value;
use std::sync::Arc;

use crate::api::{Core, DeleteOpts, ListOpts, Sub, Target, WriteOpts};
use crate::patch::PatchKind;
use crate::schema::ResourceType;
use crate::selectors::LabelSelector;
use crate::status::ApiError;
use crate::store::{EventType, ObjKey, StoreEvent};

/// An in-process API handle on a [`TestServer`](crate::TestServer)'s store. Cheap to clone.
///
/// Writes carry a field manager (`kubecloud-testkit` unless set with [`Cluster::as_manager`]).
#[derive(Clone)]
pub struct Cluster {
    core: Arc<Core>,
    manager: String,
}

/// A change to a stored object, as delivered to [`Controller`](crate::Controller)s.
#[derive(Clone, Debug)]
pub struct ObjectEvent {
    /// What happened.
    pub kind: EventType,
    /// API group (`""` for core).
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The object as of the event (for deletions, its last state).
    pub object: Value,
}

impl ObjectEvent {
    pub(crate) fn from_store(e: &StoreEvent) -> Self {
        Self::new(e.kind, &e.key, e.object.clone())
    }

    pub(crate) fn new(kind: EventType, key: &ObjKey, object: Value) -> Self {
        ObjectEvent {
            kind,
            group: key.group.clone(),
            resource: key.resource.clone(),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: key.name.clone(),
            object,
        }
    }

    /// `metadata.uid` of the object.
    pub fn uid(&self) -> Option<&str> {
        self.object["metadata"]["uid"].as_str()
    }
}

fn api_version_kind(object: &Value) -> Result<(String, String), ApiError> {
    let av = object["apiVersion"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("Object 'apiVersion' is missing"))?;
    let kind = object["kind"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("Object 'Kind' is missing"))?;
    Ok((av.to_string(), kind.to_string()))
}

impl Cluster {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Cluster {
            core,
            manager: "kubecloud-testkit".into(),
        }
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The same handle writing as field manager `manager`.
    pub fn as_manager(&self, manager: &str) -> Cluster {
        Cluster {
            core: self.core.clone(),
            manager: manager.to_string(),
        }
    }

    /// In-process writes (controllers, seeded fixtures) are strict about unknown fields, so a
    /// typo in the double's own objects fails loudly instead of being pruned.
    fn opts(&self) -> WriteOpts {
        WriteOpts {
            manager: Some(self.manager.clone()),
            field_validation: Some(crate::api::FieldValidation::Strict),
            ..Default::default()
        }
    }

    fn target(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: Option<&str>,
        sub: Option<Sub>,
    ) -> Result<Target, ApiError> {
        let rt = self.core.type_by_kind(api_version, kind)?;
        Ok(Target {
            rt,
            namespace: namespace.map(String::from),
            name: name.map(String::from),
            sub,
        })
    }

    fn target_of(&self, object: &Value, sub: Option<Sub>) -> Result<Target, ApiError> {
        let (av, kind) = api_version_kind(object)?;
        let ns = object["metadata"]["namespace"].as_str();
        let name = object["metadata"]["name"].as_str();
        self.target(&av, &kind, ns, name, sub)
    }

    /// The resource type stored under (group, plural), preferring the storage version.
    pub(crate) fn type_for(&self, group: &str, plural: &str) -> Option<ResourceType> {
        let catalog = self.core.catalog.current();
        let mut candidates = catalog
            .types()
            .iter()
            .filter(|t| t.group == group && t.plural == plural);
        let first = candidates.next()?;
        Some(
            candidates
                .find(|t| t.storage_version)
                .unwrap_or(first)
                .clone(),
        )
    }

    pub(crate) fn target_for_key(&self, key: &ObjKey, sub: Option<Sub>) -> Option<Target> {
        let rt = self.type_for(&key.group, &key.resource)?;
        Some(Target {
            rt,
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: Some(key.name.clone()),
            sub,
        })
    }

    /// Reads one object. `namespace` is ignored for cluster-scoped kinds.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.core
            .get(&self.target(api_version, kind, namespace, Some(name), None)?)
    }

    /// Reads one object, `None` if it does not exist.
    pub fn get_opt(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self.get(api_version, kind, namespace, name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() && !e.message.starts_with("no matches") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects of a kind, in one namespace or (`None`) all of them.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        self.list_selected(api_version, kind, namespace, "")
    }

    /// Lists objects matching a label selector (`app=web,tier in (a,b)`).
    pub fn list_selected(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let t = self.target(api_version, kind, namespace, None, None)?;
        let opts = ListOpts {
            labels: LabelSelector::parse(label_selector)?,
            ..Default::default()
        };
        let list = self.core.list(&t, &opts)?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Creates an object (POST). `apiVersion`, `kind` and, for namespaced kinds,
    /// `metadata.namespace` say where.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let t = self.target_of(&object, None)?;
        Ok(self.core.create(&t, object, &self.opts())?.object)
    }

    /// Replaces an object (PUT), with optimistic concurrency on `metadata.resourceVersion`.
    pub fn replace(&self, object: Value) -> Result<Value, ApiError> {
        let t = self.target_of(&object, None)?;
        Ok(self.core.update(&t, object, &self.opts())?.object)
    }

    /// Replaces an object's status (PUT on `/status`).
    pub fn replace_status(&self, object: Value) -> Result<Value, ApiError> {
        let t = self.target_of(&object, Some(Sub::Status))?;
        Ok(self.core.update(&t, object, &self.opts())?.object)
    }

    fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        sub: Option<Sub>,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let t = self.target(api_version, kind, namespace, Some(name), sub)?;
        let body = serde_json::to_vec(patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(self
            .core
            .patch(&t, PatchKind::Merge, &body, &self.opts())?
            .object)
    }

    /// Applies a JSON merge patch to an object.
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        self.patch(api_version, kind, namespace, name, None, patch)
    }

    /// Applies a JSON merge patch to an object's status subresource.
    pub fn merge_patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        self.patch(api_version, kind, namespace, name, Some(Sub::Status), patch)
    }

    fn apply_sub(&self, object: &Value, force: bool, sub: Option<Sub>) -> Result<Value, ApiError> {
        let t = self.target_of(object, sub)?;
        let body = serde_json::to_vec(object).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let opts = WriteOpts {
            force,
            ..self.opts()
        };
        Ok(self.core.patch(&t, PatchKind::Apply, &body, &opts)?.object)
    }

    /// Server-side apply of `object` by this handle's field manager.
    pub fn apply(&self, object: &Value, force: bool) -> Result<Value, ApiError> {
        self.apply_sub(object, force, None)
    }

    /// Server-side apply on the status subresource.
    pub fn apply_status(&self, object: &Value, force: bool) -> Result<Value, ApiError> {
        self.apply_sub(object, force, Some(Sub::Status))
    }

    /// Deletes an object (background propagation). Returns its last state, or the object
    /// marked for deletion if finalizers hold it.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.delete_with(api_version, kind, namespace, name, None)
    }

    /// Deletes an object with a propagation policy (`Background`, `Foreground`, `Orphan`).
    pub fn delete_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        propagation: Option<&str>,
    ) -> Result<Value, ApiError> {
        let t = self.target(api_version, kind, namespace, Some(name), None)?;
        self.core.delete(
            &t,
            &DeleteOpts {
                propagation: propagation.map(String::from),
                ..Default::default()
            },
        )
    }

    pub(crate) fn delete_key(&self, key: &ObjKey) -> Result<Value, ApiError> {
        self.delete_key_with(key, None)
    }

    /// [`Cluster::delete_key`] with a propagation policy (the garbage collector deletes the
    /// dependents of a foreground deletion that have dependents of their own in the foreground).
    pub(crate) fn delete_key_with(
        &self,
        key: &ObjKey,
        propagation: Option<&str>,
    ) -> Result<Value, ApiError> {
        let t = self
            .target_for_key(key, None)
            .ok_or_else(|| ApiError::not_found(&key.group, &key.resource, &key.name))?;
        self.core.delete(
            &t,
            &DeleteOpts {
                propagation: propagation.map(String::from),
                ..Default::default()
            },
        )
    }

    pub(crate) fn update_key(
        &self,
        key: &ObjKey,
        object: Value,
        sub: Option<Sub>,
    ) -> Result<Value, ApiError> {
        let t = self
            .target_for_key(key, sub)
            .ok_or_else(|| ApiError::not_found(&key.group, &key.resource, &key.name))?;
        Ok(self.core.update(&t, object, &self.opts())?.object)
    }

    /// The stored object at `key`, if any.
    pub(crate) fn get_key(&self, key: &ObjKey) -> Option<Value> {
        self.core.store.lock().get(key).cloned()
    }

    /// Lists objects of a kind (in one namespace or all) that `keep` selects, as [`Cluster::list`]
    /// presents them; the selection runs on the stored objects, so only those kept are copied.
    pub(crate) fn list_where(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>, ApiError> {
        let t = self.target(api_version, kind, namespace, None, None)?;
        let ns = t.namespace.as_deref().filter(|_| t.rt.namespaced);
        let kept = self
            .core
            .store
            .lock()
            .list_where(&t.rt.group, &t.rt.plural, ns, |_, o| keep(o));
        Ok(kept
            .into_iter()
            .map(|(_, o)| crate::api::present(&t.rt, o))
            .collect())
    }

    /// Calls `f` on every stored object of a kind (in one namespace or all), without copying
    /// them; `f` runs under the store's lock, so it must not call back into the API.
    pub(crate) fn for_each(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        f: impl FnMut(&Value),
    ) -> Result<(), ApiError> {
        let t = self.target(api_version, kind, namespace, None, None)?;
        let ns = t.namespace.as_deref().filter(|_| t.rt.namespaced);
        self.core
            .store
            .lock()
            .range(&t.rt.group, &t.rt.plural, ns)
            .map(|(_, o)| o)
            .for_each(f);
        Ok(())
    }

    /// The stored object whose `metadata.uid` is `uid`, with its location (an index lookup).
    pub(crate) fn by_uid(&self, uid: &str) -> Option<(ObjKey, Value)> {
        if uid.is_empty() {
            return None;
        }
        let txn = self.core.store.lock();
        txn.by_uid(uid).map(|(k, v)| (k.clone(), v.clone()))
    }

    /// Whether `test` holds for the stored object whose uid is `uid` (false if there is none).
    pub(crate) fn uid_is(&self, uid: &str, test: impl Fn(&Value) -> bool) -> bool {
        let txn = self.core.store.lock();
        txn.by_uid(uid).is_some_and(|(_, v)| test(v))
    }

    /// The stored objects with an owner reference to `uid` (an index lookup).
    pub(crate) fn dependents(&self, uid: &str) -> Vec<(ObjKey, Value)> {
        let txn = self.core.store.lock();
        txn.dependents(uid)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether any stored object has an owner reference to `uid`.
    pub(crate) fn has_dependents(&self, uid: &str) -> bool {
        let txn = self.core.store.lock();
        txn.dependents(uid).next().is_some()
    }

    /// Every stored object with its location (for cluster-wide controllers).
    pub(crate) fn snapshot(&self) -> Vec<(ObjKey, Value)> {
        let txn = self.core.store.lock();
        txn.all().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Stores an object as a fixture: created through the API (validated, defaulted), then, if it
    /// carries a `status` and the kind has a status subresource, its status written as given.
    pub fn seed(&self, object: Value) -> Result<Value, ApiError> {
        let status = object.get("status").cloned();
        let t = self.target_of(&object, None)?;
        let created = self.core.create(&t, object, &self.opts())?.object;
        match status {
            Some(status) if t.rt.status_subresource => {
                let mut with_status = created;
                with_status["status"] = status;
                let t = Target {
                    sub: Some(Sub::Status),
                    name: with_status["metadata"]["name"].as_str().map(String::from),
                    ..t
                };
                Ok(self.core.update(&t, with_status, &self.opts())?.object)
            }
            _ => Ok(created),
        }
    }

    /// Seeds every document of a multi-document YAML string (empty documents are skipped).
    pub fn seed_yaml(&self, yaml: &str) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
            .map_err(|e| ApiError::bad_request(format!("error parsing YAML: {e}")))?;
        for v in docs {
            if v.is_null() {
                continue;
            }
            out.push(self.seed(v)?);
        }
        Ok(out)
    }

    /// The store's current revision (the latest `resourceVersion` handed out).
    pub fn resource_version(&self) -> u64 {
        self.core.store.lock().current_rv()
    }

    /// Forgets the retained watch history, as an etcd compaction does: watches resuming from
    /// any earlier `resourceVersion` get a 410.
    pub fn compact(&self) {
        self.core.store.compact();
    }

    /// Ends every open watch (the responses end without an error), as an API server restart
    /// or a proxy's idle timeout does; clients resume from the last revision they saw.
    pub fn end_watches(&self) {
        self.core.store.end_watches();
    }
}
