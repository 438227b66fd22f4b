//! `apiextensions.k8s.io`: the double serves `CustomResourceDefinition` objects and, like
//! kube-apiserver, starts serving the resource a CRD declares once it is established.
//!
//! [`LiveCatalog`] is the set of types the server serves right now: the catalog it started with
//! plus `customresourcedefinitions` plus every established CRD. The
//! [`CrdController`](crate::controllers::crd::CrdController) (always running) compiles a created
//! or changed CRD into the catalog and sets its `Established`/`NamesAccepted` conditions; when a
//! CRD is deleted it deletes the custom resources and stops serving the type.

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::api::CatalogRef;
use crate::schema::{Catalog, CatalogError, ResourceType};

/// The API group of CRDs.
pub(crate) const GROUP: &str = "apiextensions.k8s.io";
/// The resource of CRDs.
pub(crate) const PLURAL: &str = "customresourcedefinitions";

/// The types served now; swapped as a whole when a CRD is registered or removed.
pub(crate) struct LiveCatalog {
    current: RwLock<CatalogRef>,
}

impl LiveCatalog {
    /// `base` plus the `CustomResourceDefinition` type (unless `base` has it already).
    pub(crate) fn new(base: CatalogRef) -> Result<LiveCatalog, CatalogError> {
        let current = if base.by_plural(GROUP, "v1", PLURAL).is_some() {
            base
        } else {
            let crd = crd_type(&base)?;
            CatalogRef::Shared(Arc::new(base.with_types(vec![crd])?))
        };
        Ok(LiveCatalog {
            current: RwLock::new(current),
        })
    }

    /// The types served now (cheap: a reference or an `Arc`).
    pub(crate) fn current(&self) -> CatalogRef {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves every served version of the CRD object `crd` (replacing earlier versions of it).
    pub(crate) fn register(&self, crd: &Value) -> Result<(), CatalogError> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let next = current.with_crd(crd)?;
        *current = CatalogRef::Shared(Arc::new(next));
        Ok(())
    }

    /// Stops serving `plural` in `group`.
    pub(crate) fn unregister(&self, group: &str, plural: &str) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current
            .types()
            .iter()
            .any(|t| t.group == group && t.plural == plural)
        {
            let next = current.without_resource(group, plural);
            *current = CatalogRef::Shared(Arc::new(next));
        }
    }
}

/// The `CustomResourceDefinition` type: the fields of `apiextensions.k8s.io/v1` the double reads
/// are typed; schemas, conversion and printer columns are kept as given.
fn crd_type(base: &Catalog) -> Result<ResourceType, CatalogError> {
    let kept = || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let string = || json!({"type": "string"});
    let strings = || json!({"type": "array", "items": {"type": "string"}});
    let names = json!({
        "type": "object",
        "required": ["kind", "plural"],
        "properties": {
            "kind": string(), "plural": string(), "singular": string(), "listKind": string(),
            "shortNames": strings(), "categories": strings(),
        },
    });
    let version = json!({
        "type": "object",
        "required": ["name", "served", "storage"],
        "properties": {
            "name": string(),
            "served": {"type": "boolean"},
            "storage": {"type": "boolean"},
            "deprecated": {"type": "boolean"},
            "deprecationWarning": string(),
            "schema": {"type": "object", "properties": {"openAPIV3Schema": kept()}},
            "subresources": {"type": "object", "properties": {"status": kept(), "scale": kept()}},
            "additionalPrinterColumns": {"type": "array", "items": kept()},
            "selectableFields": {"type": "array", "items": kept()},
        },
    });
    let schema = json!({
        "type": "object",
        "properties": {
            "apiVersion": string(),
            "kind": string(),
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["group", "names", "scope", "versions"],
                "properties": {
                    "group": string(),
                    "names": names,
                    "scope": {"type": "string", "enum": ["Namespaced", "Cluster"]},
                    "versions": {"type": "array", "items": version},
                    "conversion": kept(),
                    "preserveUnknownFields": {"type": "boolean"},
                },
            },
            "status": kept(),
        },
    });
    ResourceType::served_by_double(
        base,
        GROUP,
        "v1",
        "CustomResourceDefinition",
        PLURAL,
        false,
        true,
        &schema,
    )
}
