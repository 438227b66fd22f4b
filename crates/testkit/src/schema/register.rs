//! Registering CustomResourceDefinitions at run time: a new [`Catalog`] with the types a CRD
//! object declares (compiled like the upstream CRDs), or without a resource whose CRD is gone.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::compile::Arena;
use super::{Catalog, CatalogError, ResourceType};

impl Catalog {
    /// A copy of this catalog with every served version of the CRD `crd` (an
    /// `apiextensions.k8s.io/v1` `CustomResourceDefinition` object) registered, replacing the
    /// versions of the same resource already there. The schemas are compiled as the upstream
    /// CRDs are (structural, unknown fields rejected); `metadata` is checked as ObjectMeta.
    ///
    /// ```
    /// use kubecloud_testkit::schema::Catalog;
    ///
    /// let crd = serde_json::json!({
    ///     "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    ///     "metadata": {"name": "widgets.example.com"},
    ///     "spec": {"group": "example.com", "scope": "Namespaced",
    ///              "names": {"kind": "Widget", "plural": "widgets"},
    ///              "versions": [{"name": "v1", "served": true, "storage": true,
    ///                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
    ///                      "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]},
    /// });
    /// let catalog = Catalog::upstream()?.with_crd(&crd)?;
    /// let widget = catalog.by_kind("example.com/v1", "Widget").unwrap();
    /// let bad = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget",
    ///     "metadata": {"name": "w"}, "spec": {"sise": 1}});
    /// assert_eq!(widget.validate(&bad).unwrap_err()[0].path, "spec.sise");
    /// # Ok::<(), kubecloud_testkit::schema::CatalogError>(())
    /// ```
    pub fn with_crd(&self, crd: &Value) -> Result<Catalog, CatalogError> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut arena = self.object_meta_arena();
        let mut added = Vec::new();
        super::load::crd_types(
            &mut arena,
            Path::new(&format!("CustomResourceDefinition {name}")),
            crd,
            &mut added,
        )?;
        let arena = Arc::new(arena);
        for t in &mut added {
            t.schema.arena = Arc::clone(&arena);
        }
        let mut types: Vec<ResourceType> = self
            .types
            .iter()
            .filter(|t| {
                !added
                    .iter()
                    .any(|a| a.group == t.group && a.plural == t.plural)
            })
            .cloned()
            .collect();
        types.extend(added);
        Catalog::from_types(types)
    }

    /// A copy of this catalog without any version of `plural` in `group`.
    pub fn without_resource(&self, group: &str, plural: &str) -> Catalog {
        let types = self
            .types
            .iter()
            .filter(|t| !(t.group == group && t.plural == plural))
            .cloned()
            .collect();
        Catalog::from_types(types).expect("removing types keeps names unique")
    }

    /// A catalog of these types plus `extra`, each compiled in its own arena (see
    /// [`Catalog::with_crd`]); the same names are refused as duplicates.
    pub(crate) fn with_types(&self, extra: Vec<ResourceType>) -> Result<Catalog, CatalogError> {
        let mut types = self.types.clone();
        types.extend(extra);
        Catalog::from_types(types)
    }

    /// A fresh arena holding a copy of this catalog's ObjectMeta schema.
    pub(crate) fn object_meta_arena(&self) -> Arena {
        self.types
            .iter()
            .map(|t| &*t.schema.arena)
            .find(|a| a.object_meta.is_some())
            .map(Arena::with_object_meta_of)
            .unwrap_or_default()
    }
}

impl ResourceType {
    /// Compiles a schema for a type the double serves itself (not read from upstream files),
    /// with `metadata` checked as ObjectMeta.
    #[allow(clippy::too_many_arguments, reason = "one call site per built-in kind")]
    pub(crate) fn served_by_double(
        catalog: &Catalog,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        status: bool,
        schema: &Value,
    ) -> Result<ResourceType, CatalogError> {
        let mut arena = catalog.object_meta_arena();
        let crd = serde_json::json!({
            "kind": "CustomResourceDefinition",
            "spec": {
                "group": group,
                "scope": if namespaced { "Namespaced" } else { "Cluster" },
                "names": {"kind": kind, "plural": plural},
                "versions": [{"name": version, "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": schema},
                              "subresources": if status { serde_json::json!({"status": {}}) } else { serde_json::json!({}) }}],
            },
        });
        let mut types = Vec::new();
        super::load::crd_types(&mut arena, Path::new(kind), &crd, &mut types)?;
        let mut t = types.pop().ok_or_else(|| CatalogError::Schema {
            file: Path::new(kind).to_owned(),
            reason: "no type compiled".to_owned(),
        })?;
        t.schema.arena = Arc::new(arena);
        Ok(t)
    }
}
