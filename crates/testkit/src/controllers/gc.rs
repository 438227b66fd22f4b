//! The garbage collector: owner references and deletion propagation, as kube-controller-manager's.
//!
//! - An object whose owners (by `ownerReferences[].uid`) are all gone is deleted (background);
//!   references to owners that are gone are removed from objects that still have a live owner.
//! - An owner deleted with `propagationPolicy=Foreground` keeps its `foregroundDeletion`
//!   finalizer until its blocking dependents are gone: the collector deletes every dependent that
//!   has no other solid owner (one that exists and is not itself waiting for its dependents), in
//!   the foreground if it has dependents of its own (so a whole tree goes bottom-up, as
//!   kube-controller-manager's `attemptToDeleteItem` does), and removes the finalizer once no
//!   dependent with `blockOwnerDeletion: true` is left. Dependents with another solid owner only
//!   lose their reference to the deleted owner.
//! - An owner deleted with `propagationPolicy=Orphan` has the references to it removed from its
//!   dependents, then loses its `orphan` finalizer.

use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::store::{EventType, ObjKey};

/// Deletes dependents of deleted owners. Registered by default.
#[derive(Debug, Default)]
pub struct GarbageCollector;

fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn has_finalizer(object: &Value, name: &str) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == name))
}

/// Whether `dependent`'s reference to the owner `uid` has `blockOwnerDeletion: true`.
fn blocks(dependent: &Value, uid: &str) -> bool {
    dependent["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == true)
        })
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

fn without_finalizer(object: &Value, name: &str) -> Value {
    let mut o = object.clone();
    if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| x != name);
    }
    o
}

fn without_owner(object: &Value, uids: &HashSet<String>, keep_live: bool) -> Value {
    let mut o = object.clone();
    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
        refs.retain(|r| {
            r["uid"]
                .as_str()
                .is_some_and(|u| uids.contains(u) == keep_live)
        });
    }
    o
}

impl GarbageCollector {
    /// Deletes or trims `dependents` given the set of uids that exist.
    fn collect(
        api: &Cluster,
        dependents: &[(ObjKey, Value)],
        live: &HashSet<String>,
    ) -> Result<(), ControllerError> {
        for (key, dep) in dependents {
            if is_deleting(dep) {
                continue;
            }
            let owners = owner_uids(dep);
            if owners.iter().all(|u| !live.contains(u)) {
                tracing::debug!(object = %key.name, "garbage collecting dependent");
                ignore_not_found(api.delete_key(key))?;
            } else if owners.iter().any(|u| !live.contains(u)) {
                ignore_not_found(api.update_key(key, without_owner(dep, live, true), None))?;
            }
        }
        Ok(())
    }

    /// Looks each owner up by its reference (as the real collector does) and deletes the
    /// object if none is there with the referenced uid. Owners of kinds the double does not serve
    /// count as present.
    fn check_owners(api: &Cluster, key: &ObjKey, obj: &Value) -> Result<(), ControllerError> {
        let namespace = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
        let mut live = HashSet::new();
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in &refs {
            let uid = r["uid"].as_str().unwrap_or_default();
            let (Some(av), Some(kind), Some(name)) = (
                r["apiVersion"].as_str(),
                r["kind"].as_str(),
                r["name"].as_str(),
            ) else {
                continue;
            };
            match api.get_opt(av, kind, namespace, name) {
                Ok(Some(owner)) if owner["metadata"]["uid"] == uid => {
                    live.insert(uid.to_string());
                }
                Ok(_) => {}
                // Unknown kind: cannot be checked, keep the reference.
                Err(_) => {
                    live.insert(uid.to_string());
                }
            }
        }
        Self::collect(api, &[(key.clone(), obj.clone())], &live)
    }

    fn foreground(api: &Cluster, key: &ObjKey, owner: &Value) -> Result<(), ControllerError> {
        let uid = uid_of(owner);
        let this: HashSet<String> = std::iter::once(uid.to_string()).collect();
        let mut blocked = false;
        for (k, d) in dependents_of(api, uid) {
            // Owners that stay: they exist and are not themselves waiting for their dependents.
            let solid = |u: &str| {
                api.uid_is(u, |o| {
                    !(is_deleting(o) && has_finalizer(o, "foregroundDeletion"))
                })
            };
            if owner_uids(&d).iter().any(|u| u != uid && solid(u)) {
                // It stays with its other owner; only the reference to this one goes.
                ignore_not_found(api.update_key(&k, without_owner(&d, &this, false), None))?;
                continue;
            }
            if !is_deleting(&d) {
                let dependent_uid = uid_of(&d);
                let has_dependents = api.has_dependents(dependent_uid);
                let policy = has_dependents.then_some("Foreground");
                tracing::debug!(object = %k.name, ?policy, "deleting dependent of a foreground deletion");
                ignore_not_found(api.delete_key_with(&k, policy))?;
            }
            let still_there = api.get_key(&k).is_some_and(|o| uid_of(&o) == uid_of(&d));
            blocked |= still_there && blocks(&d, uid);
        }
        if !blocked {
            ignore_not_found(api.update_key(
                key,
                without_finalizer(owner, "foregroundDeletion"),
                None,
            ))?;
        }
        Ok(())
    }

    fn orphan(api: &Cluster, key: &ObjKey, owner: &Value) -> Result<(), ControllerError> {
        let uid: HashSet<String> = std::iter::once(uid_of(owner).to_string()).collect();
        for (k, d) in dependents_of(api, uid_of(owner)) {
            ignore_not_found(api.update_key(&k, without_owner(&d, &uid, false), None))?;
        }
        ignore_not_found(api.update_key(key, without_finalizer(owner, "orphan"), None))?;
        Ok(())
    }

    /// After the object `gone` (uid `uid`) was deleted: its dependents may be orphans now, its
    /// owners may be waiting for it (foreground).
    fn deleted(api: &Cluster, uid: &str, gone: &Value) -> Result<(), ControllerError> {
        let dependents = dependents_of(api, uid);
        let live: HashSet<String> = dependents
            .iter()
            .flat_map(|(_, d)| owner_uids(d))
            .filter(|u| api.uid_is(u, |_| true))
            .collect();
        Self::collect(api, &dependents, &live)?;
        for owner_uid in owner_uids(gone) {
            if let Some((k, o)) = api.by_uid(&owner_uid)
                && is_deleting(&o)
                && has_finalizer(&o, "foregroundDeletion")
            {
                Self::foreground(api, &k, &o)?;
            }
        }
        Ok(())
    }
}

fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

/// The objects with an owner reference to `uid` (through the store's index of owner
/// references, as the real collector keeps a dependency graph rather than scanning).
fn dependents_of(api: &Cluster, uid: &str) -> Vec<(ObjKey, Value)> {
    if uid.is_empty() {
        return Vec::new();
    }
    api.dependents(uid)
}

fn ignore_not_found(r: Result<Value, crate::ApiError>) -> Result<(), ControllerError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Controller for GarbageCollector {
    fn name(&self) -> &str {
        "garbage-collector"
    }

    fn watches(&self) -> Vec<Watched> {
        Vec::new()
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        let relevant = ev.kind == EventType::Deleted
            || is_deleting(&ev.object)
            || !owner_uids(&ev.object).is_empty();
        if !relevant {
            return Ok(());
        }
        if ev.kind != EventType::Deleted && !is_deleting(&ev.object) {
            let key = ObjKey {
                group: ev.group.clone(),
                resource: ev.resource.clone(),
                namespace: ev.namespace.clone().unwrap_or_default(),
                name: ev.name.clone(),
            };
            return match api.get_key(&key) {
                Some(current) if !is_deleting(&current) => Self::check_owners(api, &key, &current),
                _ => Ok(()),
            };
        }
        let key = ObjKey {
            group: ev.group.clone(),
            resource: ev.resource.clone(),
            namespace: ev.namespace.clone().unwrap_or_default(),
            name: ev.name.clone(),
        };
        let current = api
            .get_key(&key)
            .filter(|o| ev.uid().is_none_or(|u| uid_of(o) == u));
        match (ev.kind, current) {
            (EventType::Deleted, _) | (_, None) => {
                Self::deleted(api, ev.uid().unwrap_or_default(), &ev.object)?;
            }
            (_, Some(obj)) => {
                if is_deleting(&obj) && has_finalizer(&obj, "foregroundDeletion") {
                    Self::foreground(api, &key, &obj)?;
                } else if is_deleting(&obj) && has_finalizer(&obj, "orphan") {
                    Self::orphan(api, &key, &obj)?;
                }
                if !is_deleting(&obj) && !owner_uids(&obj).is_empty() {
                    Self::check_owners(api, &key, &obj)?;
                }
            }
        }
        Ok(())
    }
}
