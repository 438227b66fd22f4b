//! Compiling a catalog bundle (see `bundle.rs`: the built-in kinds' definitions from the core
//! OpenAPI documents and every CRD) into [`ResourceType`]s whose schemas share one compiled arena.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::compile::{Arena, Compiler, NodeId};
use super::meta::NameRule;
use super::{CatalogError, CompiledSchema, ResourceType};

/// Directories whose every `*.yaml` file holds CRDs, relative to the upstream dir.
pub(crate) const CRD_DIRS: &[&str] = &[
    "kubevirt/crds",
    "cdi/crds_generated",
    "kube-ovn",
    "metallb",
    "multus",
    "whereabouts",
    "multi-networkpolicy",
    "piraeus-operator",
    "external-snapshotter",
];

/// Single CRD files, relative to the upstream dir.
pub(crate) const CRD_FILES: &[&str] = &[
    "kubevirt/kv-resource.yaml",
    // Cilium's LB-IPAM and BGP kinds only (its network-policy CRDs are not served by the double).
    "cilium/v2/ciliumloadbalancerippools.yaml",
    "cilium/v2/ciliumbgpclusterconfigs.yaml",
    "cilium/v2/ciliumbgppeerconfigs.yaml",
    "cilium/v2/ciliumbgpadvertisements.yaml",
    "cilium/v2/ciliumbgpnodeconfigs.yaml",
    "cilium/v2alpha1/ciliuml2announcementpolicies.yaml",
];

pub(crate) const CORE_DOC: &str = "kubernetes/api__v1_openapi.json";
pub(crate) const STORAGE_DOC: &str = "kubernetes/apis__storage.k8s.io__v1_openapi.json";
pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Verbs every registered resource serves.
const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A built-in kind taken from a core OpenAPI document.
pub(crate) struct BuiltIn {
    pub(crate) definition: &'static str,
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    name_rule: NameRule,
}

pub(crate) const CORE_KINDS: &[BuiltIn] = &[
    BuiltIn {
        definition: "io.k8s.api.core.v1.Namespace",
        group: "",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short_names: &["ns"],
        status: true,
        name_rule: NameRule::Label,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.Secret",
        group: "",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short_names: &[],
        status: false,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.ConfigMap",
        group: "",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short_names: &["cm"],
        status: false,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.Service",
        group: "",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short_names: &["svc"],
        status: true,
        name_rule: NameRule::Dns1035Label,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.PersistentVolumeClaim",
        group: "",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        namespaced: true,
        short_names: &["pvc"],
        status: true,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.Pod",
        group: "",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        short_names: &["po"],
        status: true,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.ResourceQuota",
        group: "",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        namespaced: true,
        short_names: &["quota"],
        status: true,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.Event",
        group: "",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        status: false,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.PersistentVolume",
        group: "",
        kind: "PersistentVolume",
        plural: "persistentvolumes",
        namespaced: false,
        short_names: &["pv"],
        status: true,
        name_rule: NameRule::Subdomain,
    },
    BuiltIn {
        definition: "io.k8s.api.core.v1.Node",
        group: "",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        short_names: &["no"],
        status: true,
        name_rule: NameRule::Subdomain,
    },
];

pub(crate) const STORAGE_KINDS: &[BuiltIn] = &[
    BuiltIn {
        definition: "io.k8s.api.storage.v1.StorageClass",
        group: "storage.k8s.io",
        kind: "StorageClass",
        plural: "storageclasses",
        namespaced: false,
        short_names: &["sc"],
        status: false,
        name_rule: NameRule::Subdomain,
    },
    // What a CSI driver's installation registers (the testkit's `csi` module seeds it).
    BuiltIn {
        definition: "io.k8s.api.storage.v1.CSIDriver",
        group: "storage.k8s.io",
        kind: "CSIDriver",
        plural: "csidrivers",
        namespaced: false,
        short_names: &[],
        status: false,
        name_rule: NameRule::Subdomain,
    },
];

/// Compiles every resource type of the catalog bundle `bundle` (its `builtIn` definitions and
/// its `crds`); `name` names the bundle in errors.
pub(crate) fn from_bundle(bundle: &Value, name: &Path) -> Result<Vec<ResourceType>, CatalogError> {
    let bad = |reason: String| CatalogError::Schema {
        file: name.to_owned(),
        reason,
    };
    let definitions = |doc: &str| {
        bundle
            .get("builtIn")
            .and_then(|b| b.get(doc))
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("no builtIn definitions of {doc}")))
    };
    let core = definitions(CORE_DOC)?;
    let storage = definitions(STORAGE_DOC)?;
    let crds = bundle
        .get("crds")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no crds".to_owned()))?;

    let mut arena = Arena::default();
    let mut types = Vec::new();
    compile_built_ins(
        &mut arena,
        Path::new(CORE_DOC),
        core,
        CORE_KINDS,
        true,
        &mut types,
    )?;
    compile_built_ins(
        &mut arena,
        Path::new(STORAGE_DOC),
        storage,
        STORAGE_KINDS,
        false,
        &mut types,
    )?;
    for entry in crds {
        let file = entry.get("file").and_then(Value::as_str).unwrap_or("?");
        let crd = entry
            .get("crd")
            .ok_or_else(|| bad(format!("{file}: an entry without crd")))?;
        crd_types(&mut arena, Path::new(file), crd, &mut types)?;
    }

    let arena = Arc::new(arena);
    for t in &mut types {
        t.schema.arena = Arc::clone(&arena);
    }
    Ok(types)
}

/// Compiles the `kinds` of one core OpenAPI document; the first document also
/// provides the ObjectMeta schema used for CRD metadata.
fn compile_built_ins(
    arena: &mut Arena,
    file: &Path,
    definitions: &serde_json::Map<String, Value>,
    kinds: &[BuiltIn],
    provides_object_meta: bool,
    types: &mut Vec<ResourceType>,
) -> Result<(), CatalogError> {
    let schema_error = |reason: String| CatalogError::Schema {
        file: file.to_owned(),
        reason,
    };
    let mut roots = Vec::new();
    let object_meta;
    {
        let mut compiler = Compiler::built_in(arena, definitions);
        object_meta = compiler.definition(OBJECT_META).map_err(schema_error)?;
        for k in kinds {
            roots.push(compiler.definition(k.definition).map_err(schema_error)?);
        }
    }
    if provides_object_meta {
        arena.object_meta = Some(object_meta);
    }
    for (k, root) in kinds.iter().zip(roots) {
        types.push(ResourceType {
            group: k.group.to_owned(),
            version: "v1".to_owned(),
            kind: k.kind.to_owned(),
            plural: k.plural.to_owned(),
            singular: k.kind.to_lowercase(),
            namespaced: k.namespaced,
            short_names: k.short_names.iter().map(|s| (*s).to_owned()).collect(),
            list_kind: format!("{}List", k.kind),
            status_subresource: k.status,
            scale_subresource: false,
            verbs: verbs(),
            storage_version: true,
            printer_columns: Vec::new(),
            // As kube-apiserver registers them, for the built-in kinds the catalog serves.
            categories: if k.group.is_empty() && matches!(k.kind, "Pod" | "Service") {
                vec!["all".to_owned()]
            } else {
                Vec::new()
            },
            schema: placeholder(root, k.name_rule),
        });
    }
    Ok(())
}

fn verbs() -> Vec<String> {
    VERBS.iter().map(|v| (*v).to_owned()).collect()
}

/// A compiled schema whose arena is filled in once every schema is compiled.
fn placeholder(root: NodeId, name_rule: NameRule) -> CompiledSchema {
    CompiledSchema {
        arena: Arc::default(),
        root,
        name_rule,
    }
}

/// Registers every served version of the CRD `doc`.
pub(crate) fn crd_types(
    arena: &mut Arena,
    file: &Path,
    doc: &Value,
    types: &mut Vec<ResourceType>,
) -> Result<(), CatalogError> {
    let bad = |reason: String| CatalogError::Schema {
        file: file.to_owned(),
        reason,
    };
    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        tracing::warn!(file = %file.display(), "skipping a document that is not a CRD");
        return Ok(());
    }
    let text = |ptr: &str| doc.pointer(ptr).and_then(Value::as_str);
    let need = |ptr: &str| text(ptr).ok_or_else(|| bad(format!("CRD has no {ptr}")));
    let group = need("/spec/group")?;
    let kind = need("/spec/names/kind")?;
    let plural = need("/spec/names/plural")?;
    let singular = text("/spec/names/singular").map_or_else(|| kind.to_lowercase(), str::to_owned);
    let list_kind =
        text("/spec/names/listKind").map_or_else(|| format!("{kind}List"), str::to_owned);
    let short_names: Vec<String> = doc
        .pointer("/spec/names/shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let categories: Vec<String> = doc
        .pointer("/spec/names/categories")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let namespaced = match need("/spec/scope")? {
        "Namespaced" => true,
        "Cluster" => false,
        other => return Err(bad(format!("{plural}.{group}: unknown scope {other:?}"))),
    };
    let versions = doc
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("{plural}.{group}: no spec.versions")))?;
    for v in versions {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let version = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{plural}.{group}: a version has no name")))?;
        let free_form =
            serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let mut schema = v
            .pointer("/schema/openAPIV3Schema")
            .unwrap_or(&free_form)
            .clone();
        // kube-apiserver always accepts apiVersion and kind at the root of a custom resource.
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for field in ["apiVersion", "kind"] {
                props
                    .entry(field)
                    .or_insert_with(|| serde_json::json!({"type": "string"}));
            }
        }
        let root = Compiler::crd(arena)
            .schema(&schema, false)
            .map_err(|e| bad(format!("{plural}.{group}/{version}: {e}")))?;
        arena.use_object_meta(root);
        let subresource = |name: &str| v.pointer(&format!("/subresources/{name}")).is_some();
        types.push(ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            list_kind: list_kind.clone(),
            status_subresource: subresource("status"),
            scale_subresource: subresource("scale"),
            verbs: verbs(),
            storage_version: v.get("storage").and_then(Value::as_bool) == Some(true),
            printer_columns: crate::table::PrinterColumn::of_crd_version(v),
            categories: categories.clone(),
            schema: placeholder(root, NameRule::Subdomain),
        });
    }
    Ok(())
}
