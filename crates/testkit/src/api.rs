//! The verbs (get, list, create, update, patch, apply, delete, deletecollection) on the store,
//! with kube-apiserver's rules: admission of names and namespaces, optimistic concurrency, the
//! status subresource, generation, finalizers, field management, and schema validation.
//!
//! Both the HTTP layer and the in-process [`Cluster`](crate::Cluster) handle call these, so an
//! object seeded or written by a simulated controller goes through exactly the same checks.

use serde_json::{Map, Value, json};
use std::ops::Deref;
use std::sync::Arc;

use crate::admission::{AdmissionRequest, MutatingWebhook, Operation};
use crate::meta;
use crate::patch::{self, PatchKind};
use crate::schema::{Catalog, FieldError, FieldErrorKind, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::ssa::{self, Lists, Managed, Scope};
use crate::status::ApiError;
use crate::store::{ObjKey, Store, Txn};

/// How unknown and duplicate fields are treated, as the `fieldValidation` query parameter says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (400 `strict decoding error: unknown field ...`, `duplicate field ...`).
    Strict,
    /// Drop unknown fields (last duplicate wins) and answer with a `Warning` header per field:
    /// kube-apiserver's default when a request does not say (apiserver
    /// `pkg/endpoints/handlers/rest.go`, `fieldValidation`), and the double's.
    #[default]
    Warn,
    /// Drop unknown fields (last duplicate wins) silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter; an unsupported value is 422 on the request's options kind
    /// (`CreateOptions`, `UpdateOptions`, `PatchOptions`), as apimachinery's
    /// `pkg/apis/meta/v1/validation/validation.go` (`ValidateFieldValidation`) answers it. The
    /// empty value means the default.
    pub(crate) fn parse(s: &str, options_kind: &str) -> Result<Option<Self>, ApiError> {
        match s {
            "" => Ok(None),
            "Strict" => Ok(Some(FieldValidation::Strict)),
            "Warn" => Ok(Some(FieldValidation::Warn)),
            "Ignore" => Ok(Some(FieldValidation::Ignore)),
            other => Err(ApiError::invalid_fields(
                "meta.k8s.io",
                options_kind,
                "",
                &[(
                    "fieldValidation".into(),
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                    ),
                )],
            )),
        }
    }
}

/// Checks a `dryRun` query value: only `All` is supported (apimachinery `ValidateDryRun`,
/// 422 on the request's options kind).
pub(crate) fn parse_dry_run(values: &[&str], options_kind: &str) -> Result<bool, ApiError> {
    if values.iter().all(|v| *v == "All") {
        return Ok(!values.is_empty());
    }
    let list: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    Err(ApiError::invalid_fields(
        "meta.k8s.io",
        options_kind,
        "",
        &[(
            "dryRun".into(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: []string{{{}}}: supported values: \"All\"",
                list.join(", ")
            ),
        )],
    ))
}

/// The catalog, borrowed for the process or shared.
#[derive(Clone)]
pub(crate) enum CatalogRef {
    Static(&'static Catalog),
    Shared(Arc<Catalog>),
}

impl Deref for CatalogRef {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        match self {
            CatalogRef::Static(c) => c,
            CatalogRef::Shared(c) => c,
        }
    }
}

/// Which subresource a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    Status,
    /// `namespaces/{name}/finalize`.
    Finalize,
}

/// What a write request says besides its body.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteOpts {
    pub manager: Option<String>,
    pub dry_run: bool,
    pub field_validation: Option<FieldValidation>,
    pub force: bool,
    /// Paths of keys the request body repeats (`spec.paused`), in document order; the last
    /// value was kept.
    pub duplicate_fields: Vec<String>,
    /// The dry-run flag mutating admission sees when it differs from `dry_run` (an apply that
    /// creates runs the create as a dry run, then stores its result).
    pub admission_dry_run: Option<bool>,
}

/// What a delete request says.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOpts {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// A list request's parameters.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListOpts {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// A successful write.
#[derive(Debug)]
pub(crate) struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// The API over the store.
pub(crate) struct Core {
    pub catalog: crate::apiextensions::LiveCatalog,
    pub store: Store,
    pub default_validation: FieldValidation,
    /// The registered mutating admission webhooks, in registration order.
    pub webhooks: std::sync::RwLock<Vec<Arc<dyn MutatingWebhook>>>,
}

/// Where a request points.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Sub>,
}

impl Target {
    fn key(&self, name: &str) -> ObjKey {
        ObjKey {
            group: self.rt.group.clone(),
            resource: self.rt.plural.clone(),
            namespace: if self.rt.namespaced {
                self.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    fn name(&self) -> Result<&str, ApiError> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("a resource name is required"))
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.rt.group, &self.rt.plural, name)
    }

    fn scope(&self) -> Scope {
        match self.sub {
            Some(Sub::Status) => Scope::Status,
            _ => Scope::Main {
                has_status_subresource: self.rt.status_subresource,
            },
        }
    }

    fn lists(&self) -> Lists<'_> {
        Lists::of(&self.rt)
    }
}

/// Built-in kinds (core and storage.k8s.io) versus custom resources.
pub(crate) fn is_builtin(rt: &ResourceType) -> bool {
    rt.group.is_empty() || rt.group.ends_with(".k8s.io") && !rt.group.starts_with("snapshot.")
}

/// The object as served at the target's version (the double stores one copy, without conversion),
/// with its schema's defaults: kube-apiserver defaults custom resources when it reads them from
/// storage too (apiextensions-apiserver `pkg/apiserver/customresource_handler.go`: the storage
/// codec's `unstructuredDefaulter`), so a default the schema gained later shows on old objects.
pub(crate) fn present(rt: &ResourceType, mut object: Value) -> Value {
    object["apiVersion"] = Value::String(rt.api_version());
    if !is_builtin(rt) {
        rt.apply_defaults(&mut object);
    }
    object
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// The object without what does not make a write meaningful (revision, managedFields times).
fn comparable(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(entries) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
            for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
    }
    v
}

/// Everything except metadata (and status, when it is a subresource): what `generation` counts.
fn spec_part(rt: &ResourceType, object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if rt.status_subresource {
            m.remove("status");
        }
    }
    v
}

/// Whether kube-apiserver keeps `metadata.generation` for the kind: every custom resource
/// (apiextensions-apiserver `pkg/registry/customresource/strategy.go`) and, of the built-in kinds
/// the double serves, Pods (`pkg/registry/core/pod/strategy.go`, `updatePodGeneration`); not
/// ConfigMaps, Secrets, Services, claims, volumes, namespaces, nodes, events or storage classes,
/// whose strategies never set it.
fn has_generation(rt: &ResourceType) -> bool {
    !is_builtin(rt) || (rt.group.is_empty() && rt.kind == "Pod")
}

/// The Go validation of built-in kinds ([`crate::builtin::validate`]) as a 422.
fn builtin_rules(t: &Target, name: &str, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let causes = crate::builtin::validate(&t.rt, new, old);
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_fields(
        &t.rt.group,
        &t.rt.kind,
        name,
        &causes,
    ))
}

impl Core {
    /// Gives a Service the node ports its type needs, unique among the cluster's Services.
    fn allocate_node_ports(&self, txn: &mut Txn<'_>, t: &Target, object: &mut Value) {
        if !(t.rt.group.is_empty() && t.rt.kind == "Service") {
            return;
        }
        let services = txn.list("", "services", None);
        let mut used = crate::builtin::node_ports_in_use(services.iter().map(|(_, o)| o));
        crate::builtin::allocate(&t.rt, object, &mut used, &mut txn.inner.rng);
    }

    /// The type served at `api_version`/`kind`.
    pub fn type_by_kind(&self, api_version: &str, kind: &str) -> Result<ResourceType, ApiError> {
        self.catalog
            .current()
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("no matches for kind \"{kind}\" in version \"{api_version}\""),
                )
            })
    }

    /// GET one object.
    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        let name = t.name()?;
        let txn = self.store.lock();
        txn.get(&t.key(name))
            .cloned()
            .map(|o| present(&t.rt, o))
            .ok_or_else(|| t.not_found(name))
    }

    /// LIST: a `<Kind>List` with `metadata.resourceVersion` and, when paginated, `continue`.
    /// A `resourceVersion` newer than the store's is answered by the HTTP layer, which waits
    /// for it first ([`wait_for_revision`]).
    pub fn list(&self, t: &Target, opts: &ListOpts) -> Result<Value, ApiError> {
        let txn = self.store.lock();
        let current = txn.current_rv();
        let asked = opts
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty())
            .map(|rv| {
                rv.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))
            })
            .transpose()?;
        if let Some(rv) = asked
            && rv > current
        {
            return Err(too_large(rv, current));
        }
        if opts.resource_version_match.as_deref() == Some("Exact")
            && let Some(rv) = asked
            && rv != current
        {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({current}); the double serves lists at the latest revision only"
            )));
        }
        let ns = if t.rt.namespaced {
            t.namespace.as_deref()
        } else {
            None
        };
        let (list_rv, after) = match &opts.continue_token {
            Some(token) => {
                let (rv, after) = decode_continue(token)?;
                // The etcd3 store cannot read a compacted revision (apiserver
                // pkg/storage/etcd3/store.go, `GetList`): the token has expired.
                if rv < txn.compacted_rv() {
                    return Err(ApiError::expired(CONTINUE_EXPIRED));
                }
                (rv, after)
            }
            None => (current, None),
        };
        // Selected before cloning: a selective list costs a scan, not a copy of the resource.
        let mut items: Vec<(ObjKey, Value)> =
            txn.list_where(&t.rt.group, &t.rt.plural, ns, |k, o| {
                after
                    .as_ref()
                    .is_none_or(|a| (&k.namespace, &k.name) > (&a.0, &a.1))
                    && opts.labels.matches(o)
                    && opts.fields.matches(o)
            });
        drop(txn);
        let mut meta = json!({"resourceVersion": list_rv.to_string()});
        // `resourceVersion=0` is served from the watch cache, which ignores `limit`
        // (apiserver pkg/storage/cacher/cacher.go, `shouldDelegateList`).
        let limit = opts.limit.filter(|l| *l > 0 && asked != Some(0));
        if let Some(limit) = limit
            && items.len() > limit
        {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = &items[limit - 1].0;
            meta["continue"] = Value::String(encode_continue(list_rv, &last.namespace, &last.name));
            meta["remainingItemCount"] = json!(remaining);
        }
        let items: Vec<Value> = items.into_iter().map(|(_, o)| present(&t.rt, o)).collect();
        Ok(json!({
            "apiVersion": t.rt.api_version(),
            "kind": t.rt.list_kind,
            "metadata": meta,
            "items": items,
        }))
    }

    /// Checks `apiVersion`, `kind`, name and namespace of a request body against the URL.
    fn admit_body(
        &self,
        t: &Target,
        object: &mut Value,
        url_name: Option<&str>,
    ) -> Result<(), ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let want_av = t.rt.api_version();
        match object["apiVersion"].as_str() {
            Some(av) if av != want_av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
            Some(_) => {}
            None if is_builtin(&t.rt) => object["apiVersion"] = Value::String(want_av),
            None => {
                return Err(ApiError::bad_request(
                    "Object 'apiVersion' is missing in the request body",
                ));
            }
        }
        match object["kind"].as_str() {
            Some(k) if k != t.rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    t.rt.kind
                )));
            }
            Some(_) => {}
            None if is_builtin(&t.rt) => object["kind"] = Value::String(t.rt.kind.clone()),
            None => {
                return Err(ApiError::bad_request(
                    "Object 'Kind' is missing in the request body",
                ));
            }
        }
        let meta = meta_mut(object);
        if t.rt.namespaced {
            let url_ns = t.namespace.clone().unwrap_or_default();
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), Value::String(url_ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        if let Some(url_name) = url_name {
            match meta.get("name").and_then(Value::as_str) {
                Some(n) if n != url_name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({url_name})"
                    )));
                }
                Some(_) => {}
                None => {
                    meta.insert("name".into(), Value::String(url_name.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Metadata and schema validation. Unknown fields are rejected or pruned per `fieldValidation`.
    fn validate(
        &self,
        t: &Target,
        object: &mut Value,
        fv: FieldValidation,
        dups: &[String],
    ) -> Result<Vec<String>, ApiError> {
        let name = str_at(object, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        // Custom resources are defaulted from their structural schema when a request body is
        // decoded (create, update) and after a patch or apply is merged (apiextensions-apiserver
        // `pkg/apiserver/schema/defaulting/algorithm.go`; structuredmerge.go defaults the applied
        // result), before validation.
        if !is_builtin(&t.rt) {
            t.rt.apply_defaults(object);
        }
        let errors = t.rt.validate(object).err().unwrap_or_default();
        let (unknown, invalid): (Vec<FieldError>, Vec<FieldError>) = errors
            .into_iter()
            .partition(|e| matches!(e.kind, FieldErrorKind::Unknown));
        // Duplicates first (document order), then unknown fields sorted, as the strict decoder
        // of apiextensions-apiserver reports them (test/integration/apiserver/
        // field_validation_test.go).
        let mut unknown_paths: Vec<&str> = unknown.iter().map(|e| e.path.as_str()).collect();
        unknown_paths.sort_unstable();
        let said: Vec<String> = dups
            .iter()
            .map(|d| format!("duplicate field \"{d}\""))
            .chain(
                unknown_paths
                    .iter()
                    .map(|p| format!("unknown field \"{p}\"")),
            )
            .collect();
        let mut warnings = Vec::new();
        match fv {
            FieldValidation::Strict if !said.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    said.join(", ")
                )));
            }
            FieldValidation::Strict => {}
            FieldValidation::Warn | FieldValidation::Ignore => {
                for e in &unknown {
                    prune(object, &e.path);
                }
                if fv == FieldValidation::Warn {
                    warnings = said;
                }
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::invalid(&t.rt, &name, &invalid));
        }
        Ok(warnings)
    }

    /// Calls the mutating webhooks whose rules and namespace selector match, in registration
    /// order, each seeing the previous one's changes (see [`crate::admission`]).
    #[allow(clippy::too_many_arguments)]
    fn mutating_admission(
        &self,
        txn: &Txn<'_>,
        t: &Target,
        operation: Operation,
        name: &str,
        old: Option<&Value>,
        object: &mut Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let webhooks: Vec<Arc<dyn MutatingWebhook>> = self
            .webhooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|w| w.handles(&t.rt.group, &t.rt.plural, operation))
            .cloned()
            .collect();
        if webhooks.is_empty() {
            return Ok(());
        }
        let namespace = if t.rt.namespaced {
            t.namespace.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let namespace_labels = (!namespace.is_empty()).then(|| {
            txn.get(&ObjKey {
                group: String::new(),
                resource: "namespaces".into(),
                namespace: String::new(),
                name: namespace.clone(),
            })
            .map(crate::admission::labels_of)
            .unwrap_or_default()
        });
        for webhook in webhooks {
            if let Some(labels) = &namespace_labels
                && !crate::admission::selects(&webhook.namespace_selector(), labels)
            {
                continue;
            }
            let request = AdmissionRequest {
                operation,
                group: &t.rt.group,
                resource: &t.rt.plural,
                namespace: &namespace,
                name,
                old_object: old,
                dry_run,
            };
            webhook
                .admit(&request, object)
                .map_err(|d| crate::admission::denied(webhook.name(), d))?;
        }
        Ok(())
    }

    fn check_namespace(&self, txn: &Txn<'_>, t: &Target, name: &str) -> Result<(), ApiError> {
        if !t.rt.namespaced {
            return Ok(());
        }
        let ns = t.namespace.clone().unwrap_or_default();
        let key = ObjKey {
            group: String::new(),
            resource: "namespaces".into(),
            namespace: String::new(),
            name: ns.clone(),
        };
        match txn.get(&key) {
            None => Err(ApiError::not_found("", "namespaces", &ns)),
            Some(n) if is_deleting(n) => Err(ApiError::namespace_terminating(
                &t.rt.group,
                &t.rt.plural,
                name,
                &ns,
            )),
            Some(_) => Ok(()),
        }
    }

    /// POST.
    pub fn create(
        &self,
        t: &Target,
        mut object: Value,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        self.admit_body(t, &mut object, None)?;
        let mut txn = self.store.lock();
        let meta = meta_mut(&mut object);
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                let mut n;
                loop {
                    n = format!("{prefix}{}", meta::name_suffix(&mut txn.inner.rng));
                    if txn.get(&t.key(&n)).is_none() {
                        break;
                    }
                }
                n
            }
            _ => {
                return Err(ApiError::invalid_fields(
                    &t.rt.group,
                    &t.rt.kind,
                    "",
                    &[(
                        "metadata.name".into(),
                        "FieldValueRequired",
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
        };
        let uid = meta::new_uid(&mut txn.inner.rng);
        let meta = meta_mut(&mut object);
        meta.insert("name".into(), Value::String(name.clone()));
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(meta::now()));
        if has_generation(&t.rt) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(f);
        }
        self.check_namespace(&txn, t, &name)?;
        if t.rt.status_subresource
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        crate::defaults::on_create(&t.rt, &mut object, &mut txn.inner.rng);
        if t.rt.group.is_empty()
            && t.rt.kind == "PersistentVolumeClaim"
            && object["spec"]["storageClassName"].is_null()
        {
            // The DefaultStorageClass admission plugin: a claim without a class gets the default.
            let default = txn
                .list("storage.k8s.io", "storageclasses", None)
                .into_iter()
                .map(|(_, class)| class)
                .find(|class| {
                    class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                        == "true"
                });
            if let Some(class) = default {
                object["spec"]["storageClassName"] = class["metadata"]["name"].clone();
            }
        }
        if t.rt.group.is_empty() && t.rt.kind == "PersistentVolumeClaim" {
            // The StorageObjectInUseProtection admission plugin
            // (plugin/pkg/admission/storage/storageobjectinuseprotection/admission.go).
            let fins = meta_mut(&mut object)
                .entry("finalizers")
                .or_insert_with(|| json!([]));
            if let Some(list) = fins.as_array_mut()
                && !list.iter().any(|f| f == crate::PVC_PROTECTION)
            {
                list.push(json!(crate::PVC_PROTECTION));
            }
        }
        crate::builtin::normalize(&t.rt, &mut object);
        self.allocate_node_ports(&mut txn, t, &mut object);
        let key = t.key(&name);
        if txn.get(&key).is_some() {
            return Err(ApiError::already_exists(&t.rt.group, &t.rt.plural, &name));
        }
        self.mutating_admission(
            &txn,
            t,
            Operation::Create,
            &name,
            None,
            &mut object,
            opts.admission_dry_run.unwrap_or(opts.dry_run),
        )?;
        let fv = opts.field_validation.unwrap_or(self.default_validation);
        let warnings = self.validate(t, &mut object, fv, &opts.duplicate_fields)?;
        builtin_rules(t, &name, &object, None)?;
        let mut managed = Managed::default();
        managed.record_update(
            &manager_or_default(opts),
            t.scope(),
            &t.rt.api_version(),
            &json!({}),
            &object,
            t.lists(),
        );
        managed.write_to(&mut object);
        crate::quota::admit(
            &mut txn,
            &crate::quota::Request {
                group: &t.rt.group,
                plural: &t.rt.plural,
                namespace: &key.namespace,
                name: &name,
                new: &object,
                old: None,
                status_only: false,
                dry_run: opts.dry_run,
            },
        )?;
        let stored = if opts.dry_run {
            object
        } else {
            let stored = txn.put(key.clone(), object);
            if crate::quota::is_quota(&key.group, &key.resource) {
                crate::quota::sync(&mut txn, &key.namespace);
                txn.get(&key).cloned().unwrap_or(stored)
            } else {
                stored
            }
        };
        Ok(Written {
            object: present(&t.rt, stored),
            warnings,
            created: true,
        })
    }

    /// PUT (main resource, `status`, or a namespace's `finalize`).
    pub fn update(
        &self,
        t: &Target,
        mut object: Value,
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        let name = t.name()?.to_string();
        self.admit_body(t, &mut object, Some(&name))?;
        let mut txn = self.store.lock();
        let old = txn
            .get(&t.key(&name))
            .cloned()
            .ok_or_else(|| t.not_found(&name))?;
        match str_at(&object, &["metadata", "resourceVersion"]) {
            Some(rv)
                if !rv.is_empty() && Some(rv) != str_at(&old, &["metadata", "resourceVersion"]) =>
            {
                return Err(ApiError::stale(&t.rt.group, &t.rt.plural, &name));
            }
            Some(rv) if !rv.is_empty() => {}
            _ if !is_builtin(&t.rt) => {
                return Err(ApiError::invalid_fields(
                    &t.rt.group,
                    &t.rt.kind,
                    &name,
                    &[(
                        "metadata.resourceVersion".into(),
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update".into(),
                    )],
                ));
            }
            _ => {}
        }
        let new = self.scope_write(t, &old, object);
        self.commit_update(&mut txn, t, &name, &old, new, opts, None)
    }

    /// PATCH with a JSON, merge or strategic merge patch, or an apply patch.
    pub fn patch(
        &self,
        t: &Target,
        kind: PatchKind,
        body: &[u8],
        opts: &WriteOpts,
    ) -> Result<Written, ApiError> {
        if kind == PatchKind::Apply {
            return self.apply(t, body, opts);
        }
        if kind == PatchKind::Strategic && !is_builtin(&t.rt) {
            return Err(ApiError::unsupported_patch(
                "application/strategic-merge-patch+json",
            ));
        }
        let name = t.name()?.to_string();
        let mut txn = self.store.lock();
        let old = txn
            .get(&t.key(&name))
            .cloned()
            .ok_or_else(|| t.not_found(&name))?;
        let current = present(&t.rt, old.clone());
        let mut patched = match kind {
            PatchKind::Json => patch::json_patch(&current, body)?,
            PatchKind::Merge => patch::merge_patch(&current, body)?,
            PatchKind::Strategic => patch::strategic_merge_patch(&current, body)?,
            PatchKind::Apply => unreachable!("handled above"),
        };
        self.admit_body(t, &mut patched, Some(&name))?;
        if let Some(rv) = str_at(&patched, &["metadata", "resourceVersion"])
            && Some(rv) != str_at(&old, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::stale(&t.rt.group, &t.rt.plural, &name));
        }
        let new = self.scope_write(t, &old, patched);
        self.commit_update(&mut txn, t, &name, &old, new, opts, None)
    }

    /// Restricts a full-object write to what the addressed (sub)resource may change.
    fn scope_write(&self, t: &Target, old: &Value, mut new: Value) -> Value {
        match t.sub {
            Some(Sub::Status) => {
                let mut n = old.clone();
                match new.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        n.as_object_mut().map(|m| m.remove("status"));
                    }
                }
                n
            }
            Some(Sub::Finalize) => {
                let mut n = old.clone();
                n["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
                n
            }
            None => {
                if t.rt.status_subresource {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            new.as_object_mut().map(|m| m.remove("status"));
                        }
                    }
                }
                new
            }
        }
    }

    /// Server-side apply. An apply to a missing object is a create; when that create loses a
    /// race with another writer creating the same object (AlreadyExists), the apply is tried
    /// again and becomes an update of what the winner made, as kube-apiserver's guaranteed
    /// update does: concurrent applies creating one object all succeed.
    fn apply(&self, t: &Target, body: &[u8], opts: &WriteOpts) -> Result<Written, ApiError> {
        // kube-apiserver retries until the storage transaction goes through; the bound only
        // keeps a pathological create/delete churn from spinning forever.
        const ATTEMPTS: usize = 64;
        let mut attempt = 1;
        loop {
            match self.apply_once(t, body, opts) {
                Err(e) if e.reason == "AlreadyExists" && attempt < ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    /// One attempt of [`Self::apply`] against the current state of the store.
    fn apply_once(&self, t: &Target, body: &[u8], opts: &WriteOpts) -> Result<Written, ApiError> {
        let name = t.name()?.to_string();
        let manager = opts
            .manager
            .clone()
            .filter(|m| !m.is_empty())
            // kube-apiserver validates the PatchOptions first (apimachinery
            // validation.ValidatePatchOptions): 422 Invalid on `PatchOptions.meta.k8s.io ""`.
            .ok_or_else(|| {
                ApiError::invalid_fields(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    &[(
                        "fieldManager".to_string(),
                        "FieldValueRequired",
                        "Required value: is required for apply patch".to_string(),
                    )],
                )
            })?;
        let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut applied: Value = serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if applied.get("apiVersion").and_then(Value::as_str).is_none()
            || applied.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion and kind must be set in an apply configuration",
            ));
        }
        // kube-apiserver refuses an apply configuration that carries managed fields (create,
        // update and other patches may set them; apply may not): 400, kubernetes PR #81453.
        if applied["metadata"]
            .get("managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        self.admit_body(t, &mut applied, Some(&name))?;
        undeclared_fields(t, &name, &applied)?;
        let applied_rv = str_at(&applied, &["metadata", "resourceVersion"]).map(String::from);
        if let Some(m) = applied["metadata"].as_object_mut() {
            for f in [
                "resourceVersion",
                "managedFields",
                "uid",
                "creationTimestamp",
                "generation",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        let scope = t.scope();
        let applied = match scope {
            Scope::Status => ssa::only_status(&applied),
            Scope::Main {
                has_status_subresource: true,
            } => {
                let mut a = applied;
                a.as_object_mut().map(|m| m.remove("status"));
                a
            }
            Scope::Main { .. } => applied,
        };
        let mut txn = self.store.lock();
        let key = t.key(&name);
        let old = txn.get(&key).cloned();
        if let (Some(rv), Some(old)) = (&applied_rv, &old)
            && Some(rv.as_str()) != str_at(old, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::stale(&t.rt.group, &t.rt.plural, &name));
        }
        match old {
            None => {
                if t.sub.is_some() {
                    return Err(t.not_found(&name));
                }
                let mut managed = Managed::default();
                let base =
                    json!({"apiVersion": t.rt.api_version(), "kind": t.rt.kind, "metadata": {}});
                let mut merged = managed.apply(
                    &manager,
                    opts.force,
                    scope,
                    &t.rt.api_version(),
                    &base,
                    &applied,
                    t.lists(),
                )?;
                managed.write_to(&mut merged);
                drop(txn);
                // Creation goes through the create path (names, namespace, defaults, validation),
                // keeping the Apply entry computed above.
                let written = self.create_with_managed(t, merged, opts, managed)?;
                Ok(written)
            }
            Some(old) => {
                let mut managed = Managed::from_object(&old);
                let live = present(&t.rt, old.clone());
                let mut merged = managed.apply(
                    &manager,
                    opts.force,
                    scope,
                    &t.rt.api_version(),
                    &live,
                    &applied,
                    t.lists(),
                )?;
                managed.write_to(&mut merged);
                let new = self.scope_write(t, &old, merged);
                self.commit_update(&mut txn, t, &name, &old, new, opts, Some(managed))
            }
        }
    }

    fn create_with_managed(
        &self,
        t: &Target,
        object: Value,
        opts: &WriteOpts,
        managed: Managed,
    ) -> Result<Written, ApiError> {
        let mut written = self.create(
            t,
            object,
            &WriteOpts {
                dry_run: true,
                admission_dry_run: Some(opts.dry_run),
                ..opts.clone()
            },
        )?;
        managed.write_to(&mut written.object);
        if opts.dry_run {
            return Ok(written);
        }
        let mut txn = self.store.lock();
        let name = str_at(&written.object, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let key = t.key(&name);
        if txn.get(&key).is_some() {
            return Err(ApiError::already_exists(&t.rt.group, &t.rt.plural, &name));
        }
        self.check_namespace(&txn, t, &name)?;
        crate::quota::admit(
            &mut txn,
            &crate::quota::Request {
                group: &t.rt.group,
                plural: &t.rt.plural,
                namespace: &key.namespace,
                name: &name,
                new: &written.object,
                old: None,
                status_only: false,
                dry_run: false,
            },
        )?;
        let stored = txn.put(key.clone(), written.object);
        written.object = if crate::quota::is_quota(&key.group, &key.resource) {
            crate::quota::sync(&mut txn, &key.namespace);
            present(&t.rt, txn.get(&key).cloned().unwrap_or(stored))
        } else {
            present(&t.rt, stored)
        };
        Ok(written)
    }

    /// The shared tail of update, patch and apply: server-owned metadata, finalizer rules,
    /// generation, managed fields, validation, the no-op check, and the write.
    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        txn: &mut Txn<'_>,
        t: &Target,
        name: &str,
        old: &Value,
        mut new: Value,
        opts: &WriteOpts,
        managed: Option<Managed>,
    ) -> Result<Written, ApiError> {
        // Server-owned metadata comes from the stored object.
        {
            let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
            let meta = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "name",
                "namespace",
            ] {
                match old_meta.get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
            meta.remove("selfLink");
        }
        crate::defaults::name_label(&t.rt, &mut new);
        crate::builtin::carry_over(&t.rt, old, &mut new);
        crate::defaults::on_update(&t.rt, &mut new, &mut txn.inner.rng);
        crate::builtin::normalize(&t.rt, &mut new);
        self.allocate_node_ports(txn, t, &mut new);
        // No new finalizers on an object being deleted.
        if is_deleting(old) {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid_fields(
                    &t.rt.group,
                    &t.rt.kind,
                    name,
                    &[(
                        "metadata.finalizers".into(),
                        "FieldValueForbidden",
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        if has_generation(&t.rt) && spec_part(&t.rt, old) != spec_part(&t.rt, &new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if t.sub.is_none() {
            let stored = present(&t.rt, old.clone());
            self.mutating_admission(
                txn,
                t,
                Operation::Update,
                name,
                Some(&stored),
                &mut new,
                opts.admission_dry_run.unwrap_or(opts.dry_run),
            )?;
        }
        let fv = opts.field_validation.unwrap_or(self.default_validation);
        let warnings = self.validate(t, &mut new, fv, &opts.duplicate_fields)?;
        builtin_rules(t, name, &new, Some(old))?;
        // `PersistentVolumeClaimResize` is a validating admission plugin: it runs after the
        // object's validation.
        if t.sub.is_none() && t.rt.group.is_empty() && t.rt.kind == "PersistentVolumeClaim" {
            admit_claim_resize(txn, name, old, &new)?;
        }
        let managed = match managed {
            Some(m) => m,
            None => {
                let mut m = Managed::from_object(old);
                m.record_update(
                    &manager_or_default(opts),
                    t.scope(),
                    &t.rt.api_version(),
                    old,
                    &new,
                    t.lists(),
                );
                m
            }
        };
        managed.write_to(&mut new);
        let key = t.key(name);
        if comparable(&new) == comparable(old) {
            // kube-apiserver does not write an unchanged object: same resourceVersion, no event.
            return Ok(Written {
                object: present(&t.rt, old.clone()),
                warnings,
                created: false,
            });
        }
        if !is_deleting(&new) {
            crate::quota::admit(
                txn,
                &crate::quota::Request {
                    group: &t.rt.group,
                    plural: &t.rt.plural,
                    namespace: &key.namespace,
                    name,
                    new: &new,
                    old: Some(old),
                    status_only: t.sub.is_some(),
                    dry_run: opts.dry_run,
                },
            )?;
        }
        if opts.dry_run {
            return Ok(Written {
                object: present(&t.rt, new),
                warnings,
                created: false,
            });
        }
        let finished = is_deleting(&new)
            && finalizers(&new).is_empty()
            && new["spec"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty() || t.rt.kind != "Namespace");
        let stored = if finished {
            // As kube-apiserver: one DELETED event (carrying the last stored state); the caller
            // gets the object as it asked for it, at the deletion's revision.
            let gone = txn.remove(&key).unwrap_or_default();
            new["metadata"]["resourceVersion"] = gone["metadata"]["resourceVersion"].clone();
            if crate::quota::touches(&key, txn) {
                crate::quota::sync(txn, &key.namespace);
            }
            new
        } else {
            let stored = txn.put(key.clone(), new);
            if crate::quota::is_quota(&key.group, &key.resource) {
                crate::quota::sync(txn, &key.namespace);
                txn.get(&key).cloned().unwrap_or(stored)
            } else {
                stored
            }
        };
        Ok(Written {
            object: present(&t.rt, stored),
            warnings,
            created: false,
        })
    }

    /// DELETE one object. Returns the object: removed, or marked for deletion when finalizers
    /// (including `foregroundDeletion` and `orphan` for those propagation policies, and a
    /// namespace's `spec.finalizers`) hold it.
    pub fn delete(&self, t: &Target, opts: &DeleteOpts) -> Result<Value, ApiError> {
        let name = t.name()?.to_string();
        let mut txn = self.store.lock();
        self.delete_locked(&mut txn, t, &name, opts)
    }

    fn delete_locked(
        &self,
        txn: &mut Txn<'_>,
        t: &Target,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let key = t.key(name);
        let old = txn.get(&key).cloned().ok_or_else(|| t.not_found(name))?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != str_at(&old, &["metadata", "uid"])
        {
            return Err(ApiError::conflict(
                &t.rt.group,
                &t.rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    str_at(&old, &["metadata", "uid"]).unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != str_at(&old, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::conflict(
                &t.rt.group,
                &t.rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    str_at(&old, &["metadata", "resourceVersion"]).unwrap_or_default()
                ),
            ));
        }
        let mut new = old.clone();
        let mut fins = finalizers(&old);
        match opts.propagation.as_deref() {
            Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.push("foregroundDeletion".into())
            }
            Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            Some("Foreground" | "Orphan" | "Background") | None => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        let namespace_finalizers = t.rt.kind == "Namespace"
            && new["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if fins.is_empty() && !namespace_finalizers {
            if opts.dry_run {
                return Ok(present(&t.rt, old));
            }
            let gone = txn.remove(&key).unwrap_or_default();
            if crate::quota::touches(&key, txn) {
                crate::quota::sync(txn, &key.namespace);
            }
            return Ok(present(&t.rt, gone));
        }
        if fins != finalizers(&old) {
            new["metadata"]["finalizers"] = json!(fins);
        }
        if !is_deleting(&new) {
            new["metadata"]["deletionTimestamp"] = Value::String(meta::now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if t.rt.kind == "Namespace" && t.rt.group.is_empty() {
            new["status"]["phase"] = json!("Terminating");
        }
        if comparable(&new) == comparable(&old) || opts.dry_run {
            return Ok(present(&t.rt, new));
        }
        Ok(present(&t.rt, txn.put(key, new)))
    }

    /// DELETE on a collection: deletes every matching object; returns the list of them.
    pub fn delete_collection(
        &self,
        t: &Target,
        list: &ListOpts,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let mut txn = self.store.lock();
        let ns = if t.rt.namespaced {
            t.namespace.as_deref()
        } else {
            None
        };
        let names: Vec<(String, String)> = txn
            .list(&t.rt.group, &t.rt.plural, ns)
            .into_iter()
            .filter(|(_, o)| list.labels.matches(o) && list.fields.matches(o))
            .map(|(k, _)| (k.namespace, k.name))
            .collect();
        let mut items = Vec::new();
        for (namespace, name) in names {
            let target = Target {
                namespace: Some(namespace),
                name: Some(name.clone()),
                ..t.clone()
            };
            items.push(self.delete_locked(&mut txn, &target, &name, opts)?);
        }
        Ok(json!({
            "apiVersion": t.rt.api_version(),
            "kind": t.rt.list_kind,
            "metadata": {"resourceVersion": txn.current_rv().to_string()},
            "items": items,
        }))
    }
}

/// A claim's storage request growing: kube-apiserver's `PersistentVolumeClaimResize` validating
/// admission plugin (`plugin/pkg/admission/storage/persistentvolume/resize`): growing needs the
/// same class, existing, with `allowVolumeExpansion: true`. (Shrinking is the update
/// validation's, in [`crate::builtin`].)
fn admit_claim_resize(txn: &Txn<'_>, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let size =
        |o: &Value| crate::csi::parse_quantity(&o["spec"]["resources"]["requests"]["storage"]);
    let (Some(before), Some(after)) = (size(old), size(new)) else {
        return Ok(());
    };
    if after > before {
        let class = new["spec"]["storageClassName"].as_str().unwrap_or_default();
        let allowed = !class.is_empty()
            && old["spec"]["storageClassName"] == new["spec"]["storageClassName"]
            && txn
                .get(&ObjKey {
                    group: "storage.k8s.io".into(),
                    resource: "storageclasses".into(),
                    namespace: String::new(),
                    name: class.to_string(),
                })
                .is_some_and(|sc| sc["allowVolumeExpansion"] == true);
        if !allowed {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "persistentvolumeclaims \"{name}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
                ),
            ));
        }
    }
    Ok(())
}

/// Server-side apply converts the applied configuration to a typed value first, whatever
/// `fieldValidation` says: a field the schema does not declare fails the request with a plain
/// error, which kube-apiserver answers as 500 with no reason (apiserver
/// `pkg/util/managedfields/internal/structuredmerge.go` `Apply`: "failed to create typed patch
/// object"; structured-merge-diff `typed/validate.go`: "field not declared in schema").
fn undeclared_fields(t: &Target, name: &str, applied: &Value) -> Result<(), ApiError> {
    let mut paths: Vec<String> =
        t.rt.validate_schema(applied)
            .err()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| matches!(e.kind, FieldErrorKind::Unknown))
            .map(|e| format!(".{}: field not declared in schema", e.path))
            .collect();
    if paths.is_empty() {
        return Ok(());
    }
    paths.sort();
    let errors = if paths.len() == 1 {
        paths.remove(0)
    } else {
        format!("errors:\n  {}", paths.join("\n  "))
    };
    let ns = if t.rt.namespaced {
        t.namespace.as_deref().unwrap_or_default()
    } else {
        ""
    };
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({ns}/{name}; {}/{}, Kind={}): {errors}",
            t.rt.group, t.rt.version, t.rt.kind
        ),
    ))
}

fn manager_or_default(opts: &WriteOpts) -> String {
    opts.manager
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Removes the field at a validator path such as `spec.template.spec.disks[0].foo`.
fn prune(object: &mut Value, path: &str) {
    let mut steps: Vec<Result<usize, &str>> = Vec::new();
    for part in path.split('.') {
        let (field, rest) = part.split_once('[').unwrap_or((part, ""));
        if !field.is_empty() {
            steps.push(Err(field));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse::<usize>() {
                steps.push(Ok(i));
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut cur = object;
    for s in parents {
        let next = match s {
            Err(f) => cur.get_mut(*f),
            Ok(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let (Err(f), Some(m)) = (last, cur.as_object_mut()) {
        m.remove(*f);
    }
}

/// kube-apiserver's message for a `continue` token from a compacted revision
/// (apiserver `pkg/storage/etcd3/store.go`).
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// How long kube-apiserver's watch cache waits for a `resourceVersion` it has not seen yet
/// (apiserver `pkg/storage/cacher/watch_cache.go`, `blockTimeout`).
pub(crate) const FRESHNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// 504 for a `resourceVersion` the store has not reached (apiserver `pkg/storage/errors.go`,
/// `NewTooLargeResourceVersionError`).
pub(crate) fn too_large(rv: u64, current: u64) -> ApiError {
    ApiError {
        details: json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }),
        retry_after: Some(1),
        ..ApiError::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {rv}, current: {current}"),
        )
    }
}

/// Waits, up to [`FRESHNESS_WAIT`], until the store has reached revision `rv` (as the watch
/// cache's `waitUntilFreshAndBlock` does); 504 `ResourceVersionTooLarge` if it has not.
pub(crate) async fn wait_for_revision(store: &Store, rv: u64) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
    let (_, mut current, mut rx) = store.snapshot_and_subscribe(|_| false);
    while current < rv {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) => current = current.max(e.rv),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                current = store.lock().current_rv();
            }
            Ok(Err(_)) | Err(_) => return Err(too_large(rv, store.lock().current_rv())),
        }
    }
    Ok(())
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    format!("{rv}.{namespace}.{name}")
}

fn decode_continue(token: &str) -> Result<(u64, Option<(String, String)>), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let (rv, rest) = token.split_once('.').ok_or_else(bad)?;
    let rv = rv.parse::<u64>().map_err(|_| bad())?;
    // Names may contain dots, namespaces may not.
    let (ns, name) = rest.split_once('.').ok_or_else(bad)?;
    Ok((rv, Some((ns.to_string(), name.to_string()))))
}
