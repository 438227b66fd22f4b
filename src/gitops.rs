//! GitOps output: a tenant rendered as Kubernetes manifests in a folder, for Flux or Argo CD to
//! apply instead of kubecloud (feature `kubernetes`).
//!
//! [`Renderer::render`] turns a [`TenantSpec`] into the very objects the four Kubernetes
//! backends send when they apply it — the same translation (each backend's `translate`
//! module, through the `kubecloud_kube::plugin` `*Manifests` traits it implements), names,
//! attachments, ownership labels and
//! `kubecloud.io/applied-hash` annotations — so a cluster applied from the folder and planned
//! later by kubecloud shows no changes, and applying with kubecloud afterwards writes nothing.
//!
//! ## The folder
//!
//! | file | what |
//! |---|---|
//! | `<kind>_<namespace>_<name>.yaml` | one namespaced object (`kind` lower-case), e.g. `virtualmachine_acme_web.yaml` |
//! | `<kind>_<name>.yaml` | one cluster-scoped object, e.g. `vpc_acme-main.yaml`, `namespace_acme.yaml` |
//! | `kustomization.yaml` | `kustomize.config.k8s.io/v1beta1` `Kustomization` listing every object file, sorted |
//! | `SECRETS.md` | the Secrets the objects need (namespace, name, keys, what uses them) |
//! | `.kubecloud-rendered` | the files the last render wrote, so the next one removes those it no longer has |
//!
//! Kubernetes names never hold `_`, so file names cannot collide. Rendering the same spec twice
//! gives byte-identical files: keys sorted, files sorted, no timestamps, no server-set fields
//! (`status`, `resourceVersion`, `managedFields`, `uid`).
//!
//! ## What is in it
//!
//! With the backends kubecloud ships: the tenant's `Namespace`; Kube-OVN `Vpc`, `Subnet` (and a secondary subnet's Multus
//! `NetworkAttachmentDefinition`), `IP` reservations, `SecurityGroup`s and ClusterIP `Service`s;
//! a LINSTOR `StorageClass` per tier and replica count and a `PersistentVolumeClaim` (or CDI
//! `DataVolume`, for imports) per volume; a KubeVirt `VirtualMachine` per VM (with the
//! `DataVolume` template of an imported boot disk); MetalLB `IPAddressPool`s with their
//! advertisements, peers, BFD profiles and communities in MetalLB's namespace; a `Service` of
//! type `LoadBalancer` per exposure.
//!
//! What kubecloud does only through LINSTOR's REST API at apply time is not a manifest: the
//! check that a tier's storage pools have room for a volume's replicas (the CSI driver then
//! reports a volume that cannot be placed on its claim). The other checks against live state
//! that applying makes (CIDRs overlapping subnets outside the tenant, pools overlapping other
//! pools, addresses already held) need a cluster too; [`Renderer::render`] checks the spec as a
//! whole, like [`crate::TenantHandle::plan`], and refuses references to resources that are not
//! in the spec.
//!
//! ## Secrets
//!
//! Cloud-init user and network data, SSH public keys and BGP passwords are Kubernetes Secrets.
//! By default they are **not** written: [`Manifests::secrets`] and `SECRETS.md` list the
//! Secrets that must exist (name, namespace, keys) for the cluster to create them some other way
//! (sealed-secrets, SOPS, External Secrets). [`Renderer::include_secrets`] writes them as
//! ordinary files too, for a pipeline that encrypts them before they are committed. The Secrets
//! carry no owner reference (the VM's UID is not known before it exists); kubecloud adds it when
//! it next applies the VM.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use kubecloud_core::{Error, Result, Tenant, VmAttachments, VmSpec};
use kubecloud_kube::plugin::{
    ComputeManifests, LoadBalancerManifests, NetworkManifests, StorageManifests, VolumeManifests,
};
use kubecloud_kube::render::{manifest, stamped};

use crate::TenantSpec;
use crate::declarative::check_references_within;

/// The kustomization's file name.
pub const KUSTOMIZATION: &str = "kustomization.yaml";
/// The file listing the Secrets the objects need.
pub const SECRETS_FILE: &str = "SECRETS.md";
/// The file recording what the last render wrote.
pub const INDEX_FILE: &str = ".kubecloud-rendered";

/// Renders tenants as manifests, from the four backends' own translations and configuration
/// (anything implementing the `kubecloud_kube::plugin` `*Manifests` traits).
///
/// ```no_run
/// # async fn demo(compute: kubecloud::kubevirt::KubeVirt, storage: kubecloud::linstor::Linstor,
/// #     network: kubecloud::kubeovn::KubeOvn, lb: kubecloud::metallb::MetalLb) -> kubecloud::Result<()> {
/// use kubecloud::gitops::Renderer;
/// use kubecloud::{Tenant, TenantSpec};
/// let spec = TenantSpec::from_yaml(&std::fs::read_to_string("acme.yaml").unwrap())?;
/// let manifests = Renderer::new(compute, storage, network, lb)
///     .render(&Tenant::new("acme")?, &spec)
///     .await?;
/// manifests.write_to("gitops/acme").unwrap();
/// for secret in manifests.secrets() {
///     println!("create Secret {}/{} with keys {:?}", secret.namespace, secret.name, secret.keys);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Renderer {
    compute: Arc<dyn ComputeManifests>,
    storage: Arc<dyn StorageManifests>,
    network: Arc<dyn NetworkManifests>,
    load_balancer: Arc<dyn LoadBalancerManifests>,
    include_secrets: bool,
}

impl Renderer {
    /// A renderer from the four backends (nothing is sent to Kubernetes when rendering; a
    /// storage backend may read what its tiers are made of, see
    /// [`StorageManifests::volume_renderer`]).
    pub fn new(
        compute: impl ComputeManifests + 'static,
        storage: impl StorageManifests + 'static,
        network: impl NetworkManifests + 'static,
        load_balancer: impl LoadBalancerManifests + 'static,
    ) -> Self {
        Self {
            compute: Arc::new(compute),
            storage: Arc::new(storage),
            network: Arc::new(network),
            load_balancer: Arc::new(load_balancer),
            include_secrets: false,
        }
    }

    /// Whether to write the Secrets (cloud-init, SSH keys, BGP passwords) as files too (default
    /// `false`: they are only listed). Encrypt them before committing them.
    pub fn include_secrets(mut self, yes: bool) -> Self {
        self.include_secrets = yes;
        self
    }

    /// The manifests of `spec` for `tenant`. The spec is checked as a whole first (as by
    /// [`crate::TenantHandle::plan`]), and every reference must be to a resource of the spec;
    /// errors name the field (`vms[0].interfaces[0].subnet`).
    pub async fn render(&self, tenant: &Tenant, spec: &TenantSpec) -> Result<Manifests> {
        spec.validate()?;
        check_references_within(spec)?;
        let mut objects = Objects::default();
        let namespace = kubecloud_kube::namespace_object(tenant);
        objects.add(manifest("kubecloud", &stamped(&namespace))?, "namespace")?;
        if let Some(quota) = &spec.quota {
            // What the cluster enforces of the quota; kubecloud's own check (subnets, external
            // IPs, vCPUs, memory, tiers) needs kubecloud in the loop, which GitOps is not.
            let rq = kubecloud_kube::quota::resource_quota(tenant, quota);
            objects.add(manifest("kubecloud", &stamped(&rq))?, "quota")?;
        }

        macro_rules! each {
            ($list:expr, $field:literal, |$item:ident| $render:expr) => {
                for (i, $item) in $list.iter().enumerate() {
                    let field = format!(concat!($field, "[{}]"), i);
                    for object in $render.map_err(|e| e.within(&field))? {
                        objects.add(object, &field)?;
                    }
                }
            };
        }
        let net = &self.network;
        each!(spec.vpcs, "vpcs", |s| net.vpc_manifests(tenant, s));
        each!(spec.subnets, "subnets", |s| net.subnet_manifests(tenant, s));
        each!(spec.security_groups, "securityGroups", |s| net
            .security_group_manifests(tenant, s));
        each!(spec.ip_reservations, "ipReservations", |s| net
            .ip_reservation_manifests(tenant, s));
        let volumes = self.storage.volume_renderer(&spec.volumes).await?;
        each!(spec.volumes, "volumes", |s| volumes
            .volume_manifests(tenant, s));
        each!(spec.vms, "vms", |s| self
            .attachments(tenant, spec, &*volumes, s)
            .and_then(|attached| self
                .compute
                .vm_manifests(tenant, s, &attached)));
        each!(spec.services, "services", |s| net
            .service_manifests(tenant, s));
        let lb = &self.load_balancer;
        each!(spec.address_pools, "addressPools", |s| lb
            .pool_manifests(tenant, s));
        each!(spec.exposures, "exposures", |s| lb.exposure_manifests(
            tenant,
            s,
            &spec.address_pools
        ));
        Ok(objects.into_manifests(tenant, self.include_secrets))
    }

    /// How VM `vm` of `spec` is attached: its interfaces as the network backend attaches them,
    /// its volumes as the storage backend does (references were checked within the spec).
    fn attachments(
        &self,
        tenant: &Tenant,
        spec: &TenantSpec,
        storage: &dyn VolumeManifests,
        vm: &VmSpec,
    ) -> Result<VmAttachments> {
        let volumes = vm
            .volumes()
            .iter()
            .filter_map(|name| spec.volumes.iter().find(|v| &v.name == name))
            .map(|v| storage.volume_attachment(v))
            .collect();
        Ok(VmAttachments {
            interfaces: self.network.interface_attachments(
                tenant,
                &vm.interfaces,
                &spec.ip_reservations,
            )?,
            volumes,
        })
    }
}

/// A Secret the rendered objects need, by name and keys (never its values).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RequiredSecret {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The keys it must hold.
    pub keys: Vec<String>,
    /// The domain resource that uses it (`kubecloud.io/name`).
    pub used_by: String,
}

/// A tenant's rendered manifests: the objects and the files of the folder.
///
/// `Debug` shows file names only (the Secrets, when included, hold secret material).
#[derive(Clone, PartialEq, Eq)]
pub struct Manifests {
    files: BTreeMap<String, String>,
    objects: BTreeMap<String, Value>,
    secrets: Vec<RequiredSecret>,
}

impl fmt::Debug for Manifests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifests")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// What [`Manifests::write_to`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Files written (new or changed).
    pub written: Vec<String>,
    /// Files already holding the same bytes.
    pub unchanged: Vec<String>,
    /// Files of an earlier render that this one no longer has, removed.
    pub removed: Vec<String>,
}

impl Manifests {
    /// Every file of the folder, by name, with its content (object files, `kustomization.yaml`,
    /// `SECRETS.md`; not the index).
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// The objects written, by file name (Secrets only with [`Renderer::include_secrets`]).
    pub fn objects(&self) -> &BTreeMap<String, Value> {
        &self.objects
    }

    /// The Secrets the objects need, sorted by namespace and name.
    pub fn secrets(&self) -> &[RequiredSecret] {
        &self.secrets
    }

    /// Writes the folder `dir` (created if missing): every file of [`Manifests::files`], only
    /// where its bytes change, and removes the files an earlier render wrote there
    /// (recorded in [`INDEX_FILE`]) that this one no longer has. Other files are never touched.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> std::io::Result<WriteReport> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let mut report = WriteReport::default();
        let index = dir.join(INDEX_FILE);
        let earlier = match std::fs::read_to_string(&index) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        for name in earlier.lines().map(str::trim) {
            // Only plain file names a render writes; never a path out of the folder.
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && !name.contains(['/', '\\'])
                && name != INDEX_FILE;
            if plain && !self.files.contains_key(name) {
                match std::fs::remove_file(dir.join(name)) {
                    Ok(()) => report.removed.push(name.to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for (name, content) in &self.files {
            let path = dir.join(name);
            if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
                report.unchanged.push(name.clone());
            } else {
                std::fs::write(&path, content)?;
                report.written.push(name.clone());
            }
        }
        let listing: String = self.files.keys().map(|n| format!("{n}\n")).collect();
        std::fs::write(index, listing)?;
        tracing::debug!(
            dir = %dir.display(),
            written = report.written.len(),
            removed = report.removed.len(),
            "manifests written"
        );
        Ok(report)
    }
}

/// The objects of one render, deduplicated (tenants' volumes share StorageClasses).
#[derive(Default)]
struct Objects {
    by_file: BTreeMap<String, Value>,
}

impl Objects {
    fn add(&mut self, object: Value, field: &str) -> Result<()> {
        let object = clean(object);
        let name = file_name(&object)
            .ok_or_else(|| Error::invalid(field, "a rendered object has no kind or name"))?;
        match self.by_file.get(&name) {
            Some(earlier) if earlier != &object => Err(Error::invalid(
                field,
                format!("renders {name} differently from an earlier resource of the spec"),
            )),
            Some(_) => Ok(()),
            None => {
                self.by_file.insert(name, object);
                Ok(())
            }
        }
    }

    fn into_manifests(self, tenant: &Tenant, include_secrets: bool) -> Manifests {
        let mut secrets = Vec::new();
        let mut objects = BTreeMap::new();
        for (file, object) in self.by_file {
            if object["kind"] == "Secret" && object["apiVersion"] == "v1" {
                secrets.push(required(&object));
                if !include_secrets {
                    continue;
                }
            }
            objects.insert(file, object);
        }
        secrets.sort();
        let mut files: BTreeMap<String, String> = objects
            .iter()
            .map(|(file, object)| (file.clone(), yaml(tenant, object)))
            .collect();
        let kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": objects.keys().collect::<Vec<_>>(),
        });
        files.insert(KUSTOMIZATION.to_string(), yaml(tenant, &kustomization));
        files.insert(
            SECRETS_FILE.to_string(),
            secrets_md(tenant, &secrets, include_secrets),
        );
        Manifests {
            files,
            objects,
            secrets,
        }
    }
}

/// Drops what the server sets, should a backend's object carry it.
fn clean(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "managedFields",
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
            ] {
                meta.remove(field);
            }
        }
    }
    object
}

/// `<kind>_<namespace>_<name>.yaml`, or `<kind>_<name>.yaml` for a cluster-scoped object.
fn file_name(object: &Value) -> Option<String> {
    let kind = object["kind"].as_str()?.to_ascii_lowercase();
    let name = object["metadata"]["name"].as_str()?;
    Some(match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}_{ns}_{name}.yaml"),
        None => format!("{kind}_{name}.yaml"),
    })
}

fn required(secret: &Value) -> RequiredSecret {
    let keys: BTreeSet<String> = ["data", "stringData"]
        .iter()
        .filter_map(|f| secret[f].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    RequiredSecret {
        namespace: text(&secret["metadata"]["namespace"]),
        name: text(&secret["metadata"]["name"]),
        keys: keys.into_iter().collect(),
        used_by: text(&secret["metadata"]["labels"][kubecloud_kube::NAME]),
    }
}

fn header(tenant: &Tenant) -> String {
    format!("# Rendered by kubecloud for tenant {tenant}. Do not edit: render the tenant again.\n")
}

fn yaml(tenant: &Tenant, value: &Value) -> String {
    // A serde_json::Value always serializes to YAML.
    let body = serde_saphyr::to_string(value).unwrap_or_default();
    let body = body.strip_prefix("---\n").unwrap_or(&body);
    format!("{}{body}", header(tenant))
}

fn secrets_md(tenant: &Tenant, secrets: &[RequiredSecret], included: bool) -> String {
    let mut out = format!("# Secrets of tenant {tenant}\n\n");
    if secrets.is_empty() {
        out.push_str("The rendered objects need no Secrets.\n");
        return out;
    }
    if included {
        out.push_str(
            "These Secrets are written in this folder **in clear** (base64 is not encryption). \
             Encrypt them (SOPS, sealed-secrets) before committing.\n\n",
        );
    } else {
        out.push_str(
            "These Secrets are not in this folder: they hold cloud-init data, SSH keys or BGP \
             passwords. Create them in the cluster some other way (sealed-secrets, SOPS, External \
             Secrets) before or with this folder; the objects refer to them by name.\n\n",
        );
    }
    out.push_str("| namespace | name | keys | used by |\n|---|---|---|---|\n");
    for s in secrets {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            s.namespace,
            s.name,
            s.keys.join(", "),
            s.used_by
        ));
    }
    out
}
