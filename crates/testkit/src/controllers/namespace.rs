//! The namespace controller: empties a terminating namespace, then finalizes it.
//!
//! When a Namespace is deleted the double (as kube-apiserver) marks it `Terminating` and keeps it
//! while `spec.finalizers` holds `kubernetes`. This controller deletes every object in it
//! (background propagation); once nothing is left it removes `kubernetes` through the
//! `finalize` subresource, and the namespace goes away.

use async_trait::async_trait;
use serde_json::Value;

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::api::Sub;
use crate::cluster::ObjectEvent;
use crate::store::ObjKey;

/// Deletes the contents of terminating namespaces. Registered by default.
#[derive(Debug, Default)]
pub struct NamespaceController;

#[async_trait]
impl Controller for NamespaceController {
    fn name(&self) -> &str {
        "namespace-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        // Every resource: a deletion inside a terminating namespace may be the last one.
        Vec::new()
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        let ns = if ev.group.is_empty() && ev.resource == "namespaces" {
            ev.name.clone()
        } else {
            match &ev.namespace {
                Some(ns) => ns.clone(),
                None => return Ok(()),
            }
        };
        let Some(namespace) = api.get_opt("v1", "Namespace", None, &ns)? else {
            return Ok(());
        };
        if !namespace["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let contents: Vec<(ObjKey, Value)> = api
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.namespace == ns)
            .collect();
        for (key, object) in &contents {
            if object["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            match api.delete_key(key) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !contents.is_empty() {
            // Objects held by finalizers: wait for their deletion events.
            return Ok(());
        }
        let mut finalized = namespace.clone();
        if let Some(f) = finalized["spec"]["finalizers"].as_array_mut() {
            f.retain(|x| x != "kubernetes");
        }
        if finalized != namespace {
            let key = ObjKey {
                group: String::new(),
                resource: "namespaces".into(),
                namespace: String::new(),
                name: ns,
            };
            match api.update_key(&key, finalized, Some(Sub::Finalize)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
