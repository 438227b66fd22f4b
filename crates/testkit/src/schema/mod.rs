//! Upstream schema catalog and validator.
//!
//! [`Catalog`] holds every resource type kubecloud talks to: the CRDs that
//! KubeVirt, CDI, Kube-OVN, MetalLB, Multus, the Piraeus operator and the
//! volume-snapshot controller install, and the handful of core Kubernetes
//! kinds the SDK touches (Namespace, Secret, ConfigMap, Service, Pod, Event,
//! PersistentVolumeClaim, PersistentVolume, StorageClass and CSIDriver). Each
//! [`ResourceType`] carries what discovery needs (names, scope, verbs,
//! subresources) and a compiled copy of the upstream schema, so
//! [`ResourceType::validate`] can check an object the way kube-apiserver does
//! with strict field validation: unknown fields, types, enums, patterns,
//! formats, bounds, required fields and the ObjectMeta rules for names,
//! labels and annotations.
//!
//! The schemas come from the upstream projects' own files (kept verbatim, with their
//! provenance, in `../shared/upstream` beside the repository), through a compact bundle derived
//! from them and committed in `crates/testkit/schemas/` ([`bundle`]): it is compiled into this
//! crate, so the catalog needs no file outside the repository. [`Catalog::upstream`] parses it
//! once per process. The bundle keeps only what validation reads (no descriptions, no CEL
//! rules, which are not evaluated); regenerate it after changing the upstream files with
//!
//! ```text
//! cargo run -p kubecloud-testkit --bin kubecloud-schema-bundle
//! ```
//!
//! (`.ci/run` fails if the committed bundle differs from a fresh generation, whenever
//! `../shared/upstream` is there).
//!
//! ```
//! use kubecloud_testkit::schema::{Catalog, FieldErrorKind};
//!
//! let catalog = Catalog::upstream().expect("upstream schemas");
//! let vm = catalog.by_kind("kubevirt.io/v1", "VirtualMachine").unwrap();
//! let errors = vm
//!     .validate(&serde_json::json!({
//!         "apiVersion": "kubevirt.io/v1",
//!         "kind": "VirtualMachine",
//!         "metadata": {"name": "vm1"},
//!         "spec": {"runStrategyy": "Always", "template": {"spec": {"domain": {"devices": {}}}}},
//!     }))
//!     .unwrap_err();
//! assert_eq!(errors[0].path, "spec.runStrategyy");
//! assert_eq!(errors[0].kind, FieldErrorKind::Unknown);
//! ```

pub mod bundle;
mod compile;
mod error;
mod load;
mod locate;
mod meta;
mod register;
mod structural;
mod subset;
mod validate;
mod version;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use error::{CatalogError, FieldError, FieldErrorKind};

pub(crate) use compile::ListType;
use compile::{Arena, NodeId};
use meta::NameRule;
pub(crate) use structural::Step;

/// Every resource type kubecloud uses, with its compiled upstream schema.
///
/// Cheap to share: [`Catalog::upstream`] hands out a `&'static Catalog`, and
/// every [`ResourceType`] holds its schema behind an `Arc`.
#[derive(Debug)]
pub struct Catalog {
    types: Vec<ResourceType>,
    by_plural: HashMap<(String, String, String), usize>,
    by_kind: HashMap<(String, String), usize>,
}

static UPSTREAM: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();

impl Catalog {
    /// Loads (once per process, then cached) every resource type kubecloud uses, from the
    /// schema bundle compiled into this crate ([`bundle`]): no file is read, so it works
    /// from a lone clone of the repository.
    pub fn upstream() -> Result<&'static Catalog, CatalogError> {
        UPSTREAM
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let name = Path::new(bundle::CATALOG_FILE);
                let value: serde_json::Value =
                    serde_json::from_str(bundle::CATALOG).map_err(|e| CatalogError::Parse {
                        file: name.to_owned(),
                        reason: e.to_string(),
                    })?;
                let catalog = Catalog::from_types(load::from_bundle(&value, name)?)?;
                tracing::debug!(
                    types = catalog.types.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded the schema catalog from the bundle"
                );
                Ok(catalog)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads every resource type from the upstream schema directory `dir` (the layout of
    /// `shared/upstream`), without caching: the bundle is generated from it in memory (as
    /// [`bundle::generate`] does, without the header) and compiled.
    pub fn load_from(dir: &Path) -> Result<Catalog, CatalogError> {
        let started = std::time::Instant::now();
        let (body, _) = bundle::catalog_body(dir, true)?;
        let value = serde_json::Value::Object(body);
        let catalog = Catalog::from_types(load::from_bundle(&value, dir)?)?;
        tracing::debug!(
            dir = %dir.display(),
            types = catalog.types.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded upstream schema catalog"
        );
        Ok(catalog)
    }

    fn from_types(types: Vec<ResourceType>) -> Result<Catalog, CatalogError> {
        let mut by_plural = HashMap::new();
        let mut by_kind = HashMap::new();
        for (i, t) in types.iter().enumerate() {
            let key = (t.group.clone(), t.version.clone(), t.plural.clone());
            if by_plural.insert(key, i).is_some() {
                return Err(CatalogError::Duplicate {
                    resource: format!("{}/{}", t.api_version(), t.plural),
                });
            }
            if by_kind
                .insert((t.api_version(), t.kind.clone()), i)
                .is_some()
            {
                return Err(CatalogError::Duplicate {
                    resource: format!("{} {}", t.api_version(), t.kind),
                });
            }
        }
        Ok(Catalog {
            types,
            by_plural,
            by_kind,
        })
    }

    /// Every registered resource type: one entry per served version of each kind.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The resource type served at `/apis/{group}/{version}/{plural}` (group `""`
    /// means the core group, served at `/api/v1`).
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.by_plural
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .map(|&i| &self.types[i])
    }

    /// The resource type for an object's `apiVersion` (`"v1"` or
    /// `"kubevirt.io/v1"`) and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.by_kind
            .get(&(api_version.to_owned(), kind.to_owned()))
            .map(|&i| &self.types[i])
    }

    /// Every API group with its served versions, preferred version first (the
    /// kube-aware version order: GA before beta before alpha, higher first).
    /// The core group `""` comes first; the others follow in registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            let pos = match groups.iter().position(|(g, _)| *g == t.group) {
                Some(pos) => pos,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            if !groups[pos].1.contains(&t.version) {
                groups[pos].1.push(t.version.clone());
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| version::compare(a, b));
        }
        groups.sort_by_key(|(g, _)| !g.is_empty());
        groups
    }
}

/// One served version of one kind: what discovery reports about it, and its schema.
#[derive(Clone, Debug)]
pub struct ResourceType {
    /// API group; `""` for the core group.
    pub group: String,
    /// Version name, e.g. `v1` or `v1beta2`.
    pub version: String,
    /// Kind, e.g. `VirtualMachine`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `virtualmachines`.
    pub plural: String,
    /// Singular resource name, e.g. `virtualmachine`.
    pub singular: String,
    /// Whether objects live in a namespace (CRD `scope: Namespaced`).
    pub namespaced: bool,
    /// Short names, e.g. `vm`, `vms`.
    pub short_names: Vec<String>,
    /// Kind of the list type, e.g. `VirtualMachineList`.
    pub list_kind: String,
    /// Whether the `/status` subresource exists.
    pub status_subresource: bool,
    /// Whether the `/scale` subresource exists.
    pub scale_subresource: bool,
    /// Verbs for discovery, e.g. `create delete deletecollection get list patch update watch`.
    pub verbs: Vec<String>,
    /// Whether this version is the storage version.
    pub storage_version: bool,
    /// A custom resource version's `additionalPrinterColumns` (server-side printing).
    pub(crate) printer_columns: Vec<crate::table::PrinterColumn>,
    /// Categories for discovery (`all` makes `kubectl get all` list the kind).
    pub(crate) categories: Vec<String>,
    schema: CompiledSchema,
}

/// The compiled schema of one resource type and the naming rule for its objects.
#[derive(Clone)]
struct CompiledSchema {
    arena: Arc<Arena>,
    root: NodeId,
    name_rule: NameRule,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("root", &self.root)
            .field("name_rule", &self.name_rule)
            .finish_non_exhaustive()
    }
}

impl ResourceType {
    /// The `apiVersion` objects of this type carry: `"v1"` for core, else `"group/version"`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Validates a whole object (apiVersion, kind, metadata, spec, status, ...) as
    /// kube-apiserver would with strict field validation, and returns every
    /// violation, each naming the JSON path of the field and the reason.
    ///
    /// Checks the upstream schema (unknown fields, types, nullability, enums,
    /// patterns, formats, bounds, required fields, list uniqueness), that
    /// `apiVersion` and `kind` (when present) name this type, and the ObjectMeta
    /// rules: a name or generateName is required, the name's format, the
    /// namespace's format, label and annotation keys and values. CEL rules
    /// (`x-kubernetes-validations`) are not evaluated.
    pub fn validate(&self, object: &serde_json::Value) -> Result<(), Vec<FieldError>> {
        let mut errors = self.schema_errors(object);
        if let Some(map) = object.as_object() {
            if let Some(metadata) = map.get("metadata").filter(|m| m.is_object()) {
                meta::validate_object_meta(
                    metadata,
                    self.schema.name_rule,
                    self.namespaced,
                    true,
                    "metadata",
                    &mut errors,
                );
            } else if !map.contains_key("metadata") {
                errors.push(FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Like [`validate`](Self::validate) but without the ObjectMeta rules on the
    /// object's own metadata (name required and its format, namespace format,
    /// label and annotation keys and values): only the schema (metadata's fields
    /// and their types included) and the `apiVersion`/`kind` match. For callers
    /// that check ObjectMeta themselves.
    pub fn validate_schema(&self, object: &serde_json::Value) -> Result<(), Vec<FieldError>> {
        let errors = self.schema_errors(object);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The `x-kubernetes-list-type` the schema declares for the list at `steps` (`Atomic` when
    /// unannotated), or `None` when the schema does not describe that path.
    pub(crate) fn list_type_at(&self, steps: &[Step<'_>]) -> Option<ListType> {
        structural::list_type_at(&self.schema.arena, self.schema.root, steps)
    }

    /// Fills in the schema's `default`s as kube-apiserver does for custom resources
    /// (structural defaulting: absent fields of present objects, list items included). Built-in
    /// kinds' schemas carry no defaults (their Go defaulters are not schemas), so this changes
    /// nothing for them.
    pub fn apply_defaults(&self, object: &mut serde_json::Value) {
        structural::default(&self.schema.arena, self.schema.root, object);
    }

    fn schema_errors(&self, object: &serde_json::Value) -> Vec<FieldError> {
        let mut errors = validate::validate(&self.schema.arena, self.schema.root, object);
        if let Some(map) = object.as_object() {
            self.check_type_meta(map, &mut errors);
        }
        errors
    }

    fn check_type_meta(
        &self,
        map: &serde_json::Map<String, serde_json::Value>,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(v) = map.get("apiVersion").and_then(|v| v.as_str()) {
            let expected = self.api_version();
            if v != expected {
                errors.push(FieldError::invalid(
                    "apiVersion",
                    &serde_json::Value::from(v),
                    &format!("must be {expected}"),
                ));
            }
        }
        if let Some(v) = map.get("kind").and_then(|v| v.as_str())
            && v != self.kind
        {
            errors.push(FieldError::invalid(
                "kind",
                &serde_json::Value::from(v),
                &format!("must be {}", self.kind),
            ));
        }
    }
}
