//! The [`Compute`] implementation: thin, sending what [`crate::translate`] builds through
//! `kubecloud-kube`.

use std::collections::BTreeMap;

use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kubecloud_core::{
    AccessMode, BootDisk, Compute, ComputeCapabilities, Error, Labels, Migration, MigrationBlocker,
    MigrationTarget, PowerAction, ResourceKind, Result, Tenant, Vm, VmAttachments, VmPhase,
    VmSnapshot, VmSpec,
};
use kubecloud_kube::convert;
use kubecloud_kube::{
    ensure_namespace, ensure_owned, from_kube, is_owned, names, tenant_namespace, tenant_selector,
};
use kubecloud_models::cdi::DataVolume;
use kubecloud_models::kubevirt::{VirtualMachine, VirtualMachineInstance};
use serde_json::Value;

use crate::apis;
use crate::status::{Observed, vm_status};
use crate::translate::{self, SPEC_ANNOTATION, VM_LABEL};
use crate::{BACKEND, KubeVirt};

/// The spec stored on a VM (secret material still masked), from the VM's metadata, or why it
/// cannot be read.
pub(crate) fn stored_spec(vm: &ObjectMeta, name: &str) -> Result<VmSpec> {
    spec_of_meta(vm, name)
}

/// The list of the tenant's VMs carrying all `selector` labels.
fn vm_list_params(tenant: &Tenant, selector: &Labels) -> ListParams {
    let mut label_selector = tenant_selector(tenant);
    for (k, v) in selector {
        label_selector.push_str(&format!(",{k}={v}"));
    }
    ListParams::default().labels(&label_selector)
}

/// The spec kubecloud stored in a VM's annotation, from the VM's metadata alone.
fn spec_of_meta(meta: &ObjectMeta, name: &str) -> Result<VmSpec> {
    let text = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SPEC_ANNOTATION))
        .ok_or_else(|| Error::not_found(ResourceKind::Vm, name))?;
    serde_json::from_str(text).map_err(|e| {
        Error::backend(
            BACKEND,
            format!("the spec annotation of vm {name:?} is unreadable"),
            false,
            e,
        )
    })
}

/// Fills the masked cloud-init of a stored spec from the VM's Secrets (`secrets` by name).
pub(crate) fn restore_secrets(spec: &mut VmSpec, secrets: &BTreeMap<String, Secret>) {
    let Some(ci) = &mut spec.cloud_init else {
        return;
    };
    let read = |secret: &str, key: &str| -> Option<String> {
        secrets
            .get(secret)
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    let ci_secret = names::cloud_init_secret(&spec.name);
    if ci.user_data.is_some() {
        ci.user_data = read(&ci_secret, "userdata").map(Into::into);
    }
    if ci.network_data.is_some() {
        ci.network_data = read(&ci_secret, "networkdata").map(Into::into);
    }
    let ssh = names::ssh_secret(&spec.name);
    ci.ssh_keys = (0..ci.ssh_keys.len())
        .filter_map(|i| read(&ssh, &format!("key{i}")).map(Into::into))
        .collect();
}

impl KubeVirt {
    fn ns(tenant: &Tenant) -> String {
        tenant_namespace(tenant)
    }

    fn secrets_api(&self, tenant: &Tenant) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &Self::ns(tenant))
    }

    /// The tenant's Secrets (those kubecloud owns), by name: where VMs' cloud-init is restored
    /// from.
    async fn secrets_by_name(&self, tenant: &Tenant) -> Result<BTreeMap<String, Secret>> {
        let owned = ListParams::default().labels(&tenant_selector(tenant));
        Ok(self
            .writer
            .list(&self.secrets_api(tenant), &owned, ResourceKind::Vm, "")
            .await?
            .into_iter()
            .filter_map(|s| s.metadata.name.clone().map(|n| (n, s)))
            .collect())
    }

    fn pvcs_api(&self, tenant: &Tenant) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &Self::ns(tenant))
    }

    /// The tenant's VM object named `name`, checked for ownership.
    pub(crate) async fn vm_object(&self, tenant: &Tenant, name: &str) -> Result<VirtualMachine> {
        let api = apis::vms(&self.client, &Self::ns(tenant));
        let vm = self
            .writer
            .get_opt(&api, name, ResourceKind::Vm, name)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Vm, name))?;
        ensure_owned(&vm.metadata, tenant, ResourceKind::Vm, name)?;
        Ok(vm)
    }

    /// The VM's Secrets that kubecloud made, by name.
    async fn vm_secrets(&self, tenant: &Tenant, spec: &VmSpec) -> Result<BTreeMap<String, Secret>> {
        let mut out = BTreeMap::new();
        let Some(ci) = &spec.cloud_init else {
            return Ok(out);
        };
        let api = self.secrets_api(tenant);
        let mut wanted = vec![names::cloud_init_secret(&spec.name)];
        if !ci.ssh_keys.is_empty() {
            wanted.push(names::ssh_secret(&spec.name));
        }
        for name in wanted {
            if let Some(s) = self
                .writer
                .get_opt(&api, &name, ResourceKind::Vm, &spec.name)
                .await?
                && is_owned(&s.metadata, tenant)
            {
                out.insert(name, s);
            }
        }
        Ok(out)
    }

    /// The VM's instance and import DataVolume, read now.
    async fn companions(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
    ) -> Result<(Option<VirtualMachineInstance>, Option<DataVolume>)> {
        let ns = Self::ns(tenant);
        let vmi = self
            .writer
            .get_opt(
                &apis::vmis(&self.client, &ns),
                &spec.name,
                ResourceKind::Vm,
                &spec.name,
            )
            .await?;
        let dv = match spec.boot_disk {
            BootDisk::Import { .. } | BootDisk::Catalog { .. } => self
                .writer
                .get_opt(
                    &apis::data_volumes(&self.client, &ns),
                    &BootDisk::import_volume_name(&spec.name),
                    ResourceKind::Vm,
                    &spec.name,
                )
                .await?
                .filter(|d| is_owned(&d.metadata, tenant)),
            _ => None,
        };
        Ok((vmi, dv))
    }

    /// The domain view of a VM object read now.
    pub(crate) async fn read_vm(
        &self,
        tenant: &Tenant,
        vm: &VirtualMachine,
        name: &str,
    ) -> Result<Vm> {
        let mut spec = stored_spec(&vm.metadata, name)?;
        let secrets = self.vm_secrets(tenant, &spec).await?;
        restore_secrets(&mut spec, &secrets);
        let (vmi, dv) = self.companions(tenant, &spec).await?;
        let status = vm_status(
            &spec,
            &Observed {
                vm: Some(vm),
                vmi: vmi.as_ref(),
                import: dv.as_ref(),
            },
        );
        Ok(Vm { spec, status })
    }

    /// Keeps the live annotations of the VM's interfaces (security groups, port security: what
    /// the network reads on a running pod) in step on the running instance `vmi` and its
    /// launcher pods, since KubeVirt does not carry template changes to a running VM: sets the
    /// wanted ones and removes the others of the networks' keys, with a JSON merge patch (the
    /// annotations were copied there by virt-controller, so only a patch can remove them).
    /// Nothing is sent when the instance already has them.
    async fn sync_live_annotations(
        &self,
        tenant: &Tenant,
        vmi: &VirtualMachineInstance,
        interfaces: &[kubecloud_core::InterfaceAttachment],
    ) -> Result<()> {
        let current = vmi.metadata.annotations.clone().unwrap_or_default();
        let mut patch = serde_json::Map::new();
        for a in interfaces {
            for key in &a.live_annotation_keys {
                let wanted = a.live_pod_annotations.get(key);
                if current.get(key) != wanted {
                    patch.insert(
                        key.clone(),
                        wanted.map_or(Value::Null, |v| Value::from(v.as_str())),
                    );
                }
            }
        }
        // Live labels likewise (what a network's pod-selecting policies read).
        let current_labels = vmi.metadata.labels.clone().unwrap_or_default();
        let mut label_patch = serde_json::Map::new();
        for a in interfaces {
            for key in &a.live_label_keys {
                let wanted = a.live_pod_labels.get(key);
                if current_labels.get(key) != wanted {
                    label_patch.insert(
                        key.clone(),
                        wanted.map_or(Value::Null, |v| Value::from(v.as_str())),
                    );
                }
            }
        }
        if patch.is_empty() && label_patch.is_empty() {
            return Ok(());
        }
        let mut body = serde_json::json!({"metadata": {}});
        if !patch.is_empty() {
            body["metadata"]["annotations"] = Value::Object(patch.clone());
        }
        if !label_patch.is_empty() {
            body["metadata"]["labels"] = Value::Object(label_patch);
        }
        let name = vmi.metadata.name.as_deref().unwrap_or_default();
        let ns = Self::ns(tenant);
        let params = kube::api::PatchParams {
            field_manager: Some(kubecloud_kube::FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let kind = ResourceKind::Vm;
        let patch_one = |api: Api<DynamicObject>, object: String| {
            let (body, params) = (body.clone(), params.clone());
            async move {
                self.writer
                    .retry()
                    .run("patch live annotations", || async {
                        match api
                            .patch(&object, &params, &kube::api::Patch::Merge(&body))
                            .await
                        {
                            Ok(_) => Ok(()),
                            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                            Err(e) => Err(from_kube(BACKEND, kind, name, e)),
                        }
                    })
                    .await
            }
        };
        patch_one(apis::vmis_dynamic(&self.client, &ns), name.to_string()).await?;
        let uid = vmi.metadata.uid.as_deref().unwrap_or_default();
        let pods: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &ns,
            &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
        );
        let launchers = self
            .writer
            .list(
                &pods,
                &ListParams::default().labels(&format!("kubevirt.io/created-by={uid}")),
                kind,
                name,
            )
            .await?;
        for pod in launchers {
            if pod.metadata.deletion_timestamp.is_none()
                && let Some(pod_name) = pod.metadata.name
            {
                patch_one(pods.clone(), pod_name).await?;
            }
        }
        tracing::debug!(%tenant, vm = name, keys = patch.len(), "live pod annotations synced");
        Ok(())
    }

    /// Applies the VM's Secrets (owned by the VM) and deletes the ones the spec no longer needs.
    async fn apply_secrets(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        previous: Option<&VmSpec>,
        vm: &VirtualMachine,
    ) -> Result<()> {
        let api = self.secrets_api(tenant);
        let uid = vm.metadata.uid.clone().unwrap_or_default();
        let wanted = translate::secrets(tenant, spec, Some(translate::vm_owner(&spec.name, &uid)));
        for secret in &wanted {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let current = self
                .writer
                .get_opt(&api, &name, ResourceKind::Vm, &spec.name)
                .await?;
            if let Some(c) = &current {
                ensure_owned(&c.metadata, tenant, ResourceKind::Vm, &spec.name).map_err(|_| {
                    Error::conflict(
                        ResourceKind::Vm,
                        &spec.name,
                        format!("Secret {name:?} exists and was not made by kubecloud"),
                    )
                })?;
            }
            self.writer
                .apply_if_changed(&api, current.as_ref(), secret, ResourceKind::Vm, &spec.name)
                .await?;
        }
        if let Some(prev) = previous.and_then(|p| p.cloud_init.as_ref()) {
            let keep: Vec<String> = wanted
                .iter()
                .filter_map(|s| s.metadata.name.clone())
                .collect();
            let mut made = vec![names::cloud_init_secret(&spec.name)];
            if !prev.ssh_keys.is_empty() {
                made.push(names::ssh_secret(&spec.name));
            }
            for name in made.into_iter().filter(|n| !keep.contains(n)) {
                self.writer
                    .delete(&api, &name, ResourceKind::Vm, &spec.name)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends `PUT .../virtualmachines/{vm}/{action}` to KubeVirt's subresource API, retried on
    /// temporary failures.
    async fn subresource(&self, tenant: &Tenant, vm: &str, action: &str) -> Result<()> {
        let path = apis::subresource_path(&Self::ns(tenant), vm, action);
        self.writer
            .retry()
            .run(action, || async {
                let request = http::Request::put(path.as_str())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(b"{}".to_vec())
                    .map_err(|e| Error::backend(BACKEND, "building a request", false, e))?;
                self.client
                    .request_text(request)
                    .await
                    .map(|_| ())
                    .map_err(|e| from_kube(BACKEND, ResourceKind::Vm, vm, e))
            })
            .await
    }

    /// Every reason the VM (read as `vm` from its object `object`) cannot live-migrate now.
    /// What it mounts and how its interfaces are bound are read from the object itself, as
    /// KubeVirt decides it.
    async fn blockers(
        &self,
        tenant: &Tenant,
        vm: &Vm,
        object: &VirtualMachine,
    ) -> Result<Vec<MigrationBlocker>> {
        let mut blockers = Vec::new();
        let pvcs = self.pvcs_api(tenant);
        let mounted = translate::template_volumes(object);
        for (volume, claim) in translate::claims(&vm.spec, &mounted) {
            let claim = self
                .writer
                .get_opt(&pvcs, &claim, ResourceKind::Volume, &volume)
                .await?;
            let modes: Vec<String> = match &claim {
                Some(c) => c
                    .status
                    .as_ref()
                    .and_then(|s| s.access_modes.clone())
                    .or_else(|| c.spec.as_ref().and_then(|s| s.access_modes.clone()))
                    .unwrap_or_default(),
                None => match &vm.spec.boot_disk {
                    BootDisk::Import { access, .. } | BootDisk::Catalog { access, .. }
                        if *access == AccessMode::ReadWriteMany =>
                    {
                        vec!["ReadWriteMany".into()]
                    }
                    _ => Vec::new(),
                },
            };
            if !modes.iter().any(|m| m == "ReadWriteMany") {
                blockers.push(MigrationBlocker::VolumeNotShared { volume });
            }
        }
        for interface in translate::unmigratable_interfaces(object)? {
            blockers.push(MigrationBlocker::BridgeOnPodNetwork { interface });
        }
        for interface in translate::macvtap_interfaces(object) {
            blockers.push(MigrationBlocker::MacvtapBinding { interface });
        }
        if vm.status.phase != VmPhase::Running {
            blockers.push(MigrationBlocker::NotRunning {
                phase: vm.status.phase,
            });
        }
        if let Some(nodes) = self.node_names().await?
            && nodes.len() < 2
        {
            blockers.push(MigrationBlocker::NoTargetNode {
                reason: format!("the cluster has {} node(s)", nodes.len()),
            });
        }
        Ok(blockers)
    }

    /// The cluster's node names, or `None` when the API does not list nodes to us.
    async fn node_names(&self) -> Result<Option<Vec<String>>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let listed = self
            .writer
            .retry()
            .run("list nodes", || async {
                match api.list_metadata(&ListParams::default()).await {
                    Ok(list) => Ok(Some(
                        list.items
                            .into_iter()
                            .filter_map(|n| n.metadata.name)
                            .collect::<Vec<_>>(),
                    )),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => Ok(None),
                    Err(e) => Err(from_kube(BACKEND, ResourceKind::Node, "", e)),
                }
            })
            .await?;
        Ok(listed.filter(|n| !n.is_empty()))
    }
}

#[kubecloud_core::async_trait]
impl Compute for KubeVirt {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> ComputeCapabilities {
        self.capabilities
    }

    fn kept_waits(&self) -> &'static [kubecloud_core::wait::KeptWait] {
        crate::KEPT_WAITS
    }

    fn system_namespaces(&self) -> Vec<String> {
        vec![self.options.catalog_namespace.clone()]
    }

    async fn apply_catalog_image(
        &self,
        spec: &kubecloud_core::CatalogImageSpec,
    ) -> Result<kubecloud_core::CatalogImage> {
        self.apply_image(spec).await
    }

    async fn get_catalog_image(&self, name: &str) -> Result<kubecloud_core::CatalogImage> {
        self.image(name).await
    }

    async fn watch_catalog_image(
        &self,
        name: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<kubecloud_core::CatalogImage>>> {
        self.image_states(name).await
    }

    async fn list_catalog_images(&self) -> Result<Vec<kubecloud_core::CatalogImage>> {
        self.images().await
    }

    async fn delete_catalog_image(&self, name: &str) -> Result<()> {
        self.delete_image(name).await
    }

    async fn apply_vm(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        attachments: &VmAttachments,
    ) -> Result<Vm> {
        spec.validate()?;
        attachments.check_for(spec)?;
        let vm_json = translate::virtual_machine(tenant, spec, attachments, &self.options)?;
        let desired: VirtualMachine = convert(&vm_json, BACKEND, ResourceKind::Vm, &spec.name)?;
        if matches!(spec.boot_disk, BootDisk::Catalog { .. }) {
            // Made once: a VM's clone does not depend on its image afterwards.
            let boot = self
                .writer
                .get_opt(
                    &apis::data_volumes(&self.client, &Self::ns(tenant)),
                    &BootDisk::import_volume_name(&spec.name),
                    ResourceKind::Vm,
                    &spec.name,
                )
                .await?;
            if boot.is_none() {
                self.check_catalog_boot(spec).await?;
            }
        }
        ensure_namespace(&self.client, &self.writer, tenant).await?;
        let ns = Self::ns(tenant);
        let api = apis::vms(&self.client, &ns);
        let current = self
            .writer
            .current(&api, &spec.name, ResourceKind::Vm, &spec.name)
            .await?;
        let previous = match &current {
            Some(c) => {
                if !is_owned(&c.metadata, tenant) {
                    return Err(Error::already_exists(ResourceKind::Vm, &spec.name));
                }
                stored_spec(&c.metadata, &spec.name).ok()
            }
            None => None,
        };
        let (applied, wrote) = self
            .writer
            .apply_if_changed(
                &api,
                current.as_ref(),
                &desired,
                ResourceKind::Vm,
                &spec.name,
            )
            .await?;
        tracing::debug!(%tenant, vm = %spec.name, wrote, "vm applied");
        self.apply_secrets(tenant, spec, previous.as_ref(), &applied)
            .await?;
        // A VM that did not exist has no instance or import yet: nothing to read.
        let (vmi, dv) = match current {
            Some(_) => self.companions(tenant, spec).await?,
            None => (None, None),
        };
        if let Some(vmi) = &vmi {
            let interfaces = translate::attached_interfaces(spec, attachments);
            self.sync_live_annotations(tenant, vmi, &interfaces).await?;
        }
        let status = vm_status(
            spec,
            &Observed {
                vm: Some(&applied),
                vmi: vmi.as_ref(),
                import: dv.as_ref(),
            },
        );
        Ok(Vm {
            spec: spec.clone(),
            status,
        })
    }

    async fn get_vm(&self, tenant: &Tenant, name: &str) -> Result<Vm> {
        let vm = self.vm_object(tenant, name).await?;
        let mut vm = self.read_vm(tenant, &vm, name).await?;
        // What the guest agent reports beyond the instance's status (host name, users, file
        // systems), while it is connected.
        if let Some(guest) = vm.status.guest.as_mut() {
            crate::guest::enrich(&self.client, &Self::ns(tenant), name, guest).await?;
        }
        Ok(vm)
    }

    async fn list_vms(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Vm>> {
        let ns = Self::ns(tenant);
        let params = vm_list_params(tenant, selector);
        let owned = ListParams::default().labels(&tenant_selector(tenant));
        // Through the Writer: identical lists within one `shared_lists` scope (a plan, where
        // the storage backend lists DataVolumes and instances too) are sent once.
        let (kind, w) = (ResourceKind::Vm, &self.writer);
        let vms = w
            .list_shared(&apis::vms(&self.client, &ns), &params, kind, "")
            .await?;
        if vms.is_empty() {
            return Ok(Vec::new());
        }
        let vmis = w
            .list_shared(
                &apis::vmis(&self.client, &ns),
                &ListParams::default(),
                kind,
                "",
            )
            .await?;
        let dvs = w
            .list_shared(&apis::data_volumes(&self.client, &ns), &owned, kind, "")
            .await?;
        let secrets = self.secrets_by_name(tenant).await?;
        // Joined by name through maps; objects read as their `data` (spec and status), not
        // re-serialised: the status needs no metadata but an instance's deletion mark.
        fn by_name<K: kube::Resource>(items: &[K]) -> BTreeMap<&str, &K> {
            items
                .iter()
                .filter_map(|o| o.meta().name.as_deref().map(|n| (n, o)))
                .collect()
        }
        let (vmis, dvs) = (by_name(&vmis), by_name(&dvs));
        let mut out = Vec::with_capacity(vms.len());
        for vm in vms.iter() {
            let name = vm.metadata.name.as_deref().unwrap_or_default();
            let Ok(mut spec) = stored_spec(&vm.metadata, name) else {
                continue;
            };
            restore_secrets(&mut spec, &secrets);
            let vmi = vmis
                .get(name)
                .filter(|v| v.metadata.deletion_timestamp.is_none())
                .copied();
            let dv = match spec.boot_disk {
                BootDisk::Import { .. } | BootDisk::Catalog { .. } => dvs
                    .get(BootDisk::import_volume_name(name).as_str())
                    .copied(),
                _ => None,
            };
            let status = vm_status(
                &spec,
                &Observed {
                    vm: Some(vm),
                    vmi,
                    import: dv,
                },
            );
            out.push(Vm { spec, status });
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    async fn list_instance_types(&self, tenant: &Tenant) -> Result<Option<Vec<String>>> {
        let ns = Self::ns(tenant);
        let api = apis::instancetypes(&self.client, &ns, self.options.instancetype_kind);
        let types = self
            .writer
            .list_metadata(&api, &ListParams::default(), ResourceKind::Vm, "")
            .await?;
        Ok(Some(
            types
                .iter()
                .filter_map(|t| t.metadata.name.clone())
                .collect(),
        ))
    }

    async fn list_vm_specs(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<VmSpec>> {
        let ns = Self::ns(tenant);
        let params = vm_list_params(tenant, selector);
        // The spec is in an annotation: the VMs' metadata is all there is to read (no specs,
        // no instances, no imports), and Secrets only when a VM has cloud-init to restore.
        let (kind, w) = (ResourceKind::Vm, &self.writer);
        let vms = w
            .list_metadata(&apis::vms(&self.client, &ns), &params, kind, "")
            .await?;
        let mut specs: Vec<VmSpec> = vms
            .iter()
            .filter_map(|vm| {
                let name = vm.metadata.name.as_deref().unwrap_or_default();
                spec_of_meta(&vm.metadata, name).ok()
            })
            .collect();
        if specs.iter().any(|s| s.cloud_init.is_some()) {
            let secrets = self.secrets_by_name(tenant).await?;
            for spec in &mut specs {
                restore_secrets(spec, &secrets);
            }
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(specs)
    }

    async fn volume_users(&self, tenant: &Tenant) -> Result<BTreeMap<String, Vec<String>>> {
        let ns = Self::ns(tenant);
        // The VMs' specs say which tenant volume each disk is; their running instances say
        // which claims are mounted now. Through the Writer: within one `shared_lists` scope
        // the instance list is sent once.
        let specs: BTreeMap<String, VmSpec> = self
            .list_vm_specs(tenant, &Labels::new())
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let owned = ListParams::default().labels(&tenant_selector(tenant));
        let vmis = self
            .writer
            .list_shared(&apis::vmis(&self.client, &ns), &owned, ResourceKind::Vm, "")
            .await?;
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for vmi in vmis.iter() {
            let phase = vmi
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or_default();
            let name = vmi.metadata.name.as_deref().unwrap_or_default();
            let Some(spec) = specs.get(name) else {
                continue;
            };
            if matches!(phase, "Succeeded" | "Failed") {
                continue;
            }
            for (volume, _claim) in translate::claims(spec, &translate::instance_volumes(vmi)) {
                users.entry(volume).or_default().push(name.to_string());
            }
        }
        for vms in users.values_mut() {
            vms.sort();
            vms.dedup();
        }
        Ok(users)
    }

    async fn power(&self, tenant: &Tenant, name: &str, action: PowerAction) -> Result<Vm> {
        let object = self.vm_object(tenant, name).await?;
        let vm = self.read_vm(tenant, &object, name).await?;
        let phase = vm.status.phase;
        let live = matches!(
            phase,
            VmPhase::Running | VmPhase::Starting | VmPhase::Migrating
        );
        let call = match action {
            PowerAction::Start if live => None,
            PowerAction::Start => Some("start"),
            PowerAction::Stop if phase == VmPhase::Stopped => None,
            PowerAction::Stop => Some("stop"),
            PowerAction::Restart if live => Some("restart"),
            PowerAction::Restart if phase == VmPhase::Failed => Some("start"),
            PowerAction::Restart => {
                return Err(Error::conflict(
                    ResourceKind::Vm,
                    name,
                    format!("the VM is {phase}; only a running VM can be restarted"),
                ));
            }
        };
        if let Some(call) = call {
            self.subresource(tenant, name, call).await?;
            tracing::debug!(%tenant, vm = name, call, "vm power");
        }
        self.get_vm(tenant, name).await
    }

    async fn migration_blockers(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Vec<MigrationBlocker>> {
        let object = self.vm_object(tenant, name).await?;
        let vm = self.read_vm(tenant, &object, name).await?;
        self.blockers(tenant, &vm, &object).await
    }

    async fn migrate(
        &self,
        tenant: &Tenant,
        name: &str,
        target: &MigrationTarget,
    ) -> Result<Migration> {
        let object = self.vm_object(tenant, name).await?;
        let vm = self.read_vm(tenant, &object, name).await?;
        let node = match target {
            MigrationTarget::AnyNode => None,
            MigrationTarget::Node(node) => {
                let api: Api<Node> = Api::all(self.client.clone());
                self.writer
                    .get_opt(&api, node, ResourceKind::Node, node)
                    .await?
                    .ok_or_else(|| Error::not_found(ResourceKind::Node, node))?;
                Some(node.as_str())
            }
        };
        let blockers = self.blockers(tenant, &vm, &object).await?;
        if !blockers.is_empty() {
            let reasons: Vec<String> = blockers.iter().map(ToString::to_string).collect();
            return Err(Error::conflict(
                ResourceKind::Vm,
                name,
                format!("cannot live-migrate: {}", reasons.join("; ")),
            ));
        }
        let source = vm
            .status
            .node
            .clone()
            .ok_or_else(|| Error::conflict(ResourceKind::Vm, name, "the VM has no node"))?;
        if node == Some(source.as_str()) {
            return Err(Error::conflict(
                ResourceKind::Vm,
                name,
                format!("the VM already runs on {source}"),
            ));
        }
        let ns = Self::ns(tenant);
        let vmi = self
            .writer
            .get_opt(&apis::vmis(&self.client, &ns), name, ResourceKind::Vm, name)
            .await?
            .ok_or_else(|| Error::conflict(ResourceKind::Vm, name, "the VM has no instance"))?;
        // One migration per instance state: a retried or repeated call names the same object.
        let revision = vmi.metadata.resource_version.clone().unwrap_or_default();
        let object = format!("{name}-migration-{revision}");
        let desired: DynamicObject =
            serde_json::from_value(translate::migration(tenant, name, &object, node))
                .map_err(|e| Error::backend(BACKEND, "building the migration", false, e))?;
        let api = apis::migrations(&self.client, &ns);
        self.writer
            .apply(&api, &desired, ResourceKind::Migration, name)
            .await?;
        tracing::debug!(%tenant, vm = name, from = %source, to = ?node, "vm migrating");
        Ok(Migration {
            vm: name.to_string(),
            source_node: source,
            target_node: node.map(String::from),
        })
    }

    async fn list_nodes(&self) -> Result<Vec<kubecloud_core::NodeInfo>> {
        self.nodes_list().await
    }

    async fn set_node_schedulable(
        &self,
        node: &str,
        schedulable: bool,
    ) -> Result<kubecloud_core::NodeInfo> {
        self.node_set_schedulable(node, schedulable).await
    }

    async fn vms_on_node(&self, node: &str) -> Result<Vec<kubecloud_core::VmRef>> {
        self.node_vms(node).await
    }

    async fn delete_vm(&self, tenant: &Tenant, name: &str) -> Result<()> {
        // One deadline for the whole deletion: the waits for the VM, its import and the import's
        // volume share `delete_timeout` (or the deadline of the operation this is part of).
        let timeout = self.options.delete_timeout;
        let deletion = self.delete_vm_and_wait(tenant, name, timeout);
        kubecloud_core::wait::within(timeout, ResourceKind::Vm, name, "gone", deletion).await
    }

    async fn watch_vm(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Vm>>> {
        // The first state comes from the shared watch of the tenant's VMs (which also knows this
        // backend's own writes, and reads from the server when it lags behind a state this
        // backend waited for, such as a finished restore), not from a read per VM.
        let api = apis::vms(&self.client, &Self::ns(tenant));
        let object = match self
            .writer
            .current(&api, name, ResourceKind::Vm, name)
            .await?
        {
            Some(vm) if is_owned(&vm.metadata, tenant) => vm,
            _ => return Err(Error::not_found(ResourceKind::Vm, name)),
        };
        let spec = stored_spec(&object.metadata, name)?;
        let secrets = self.vm_secrets(tenant, &spec).await?;
        let states = crate::watch::vm_states(
            self.client.clone(),
            &self.writer,
            tenant.clone(),
            name.to_string(),
            secrets,
        );
        Ok(states)
    }

    async fn snapshot_vm(&self, tenant: &Tenant, vm: &str, snapshot: &str) -> Result<VmSnapshot> {
        if !self.capabilities.vm_snapshots {
            return Err(Error::unsupported(BACKEND, "vms.snapshot", "vm_snapshots"));
        }
        self.take_vm_snapshot(tenant, vm, snapshot).await
    }

    async fn list_vm_snapshots(
        &self,
        tenant: &Tenant,
        vm: Option<&str>,
    ) -> Result<Vec<VmSnapshot>> {
        self.vm_snapshots(tenant, vm).await
    }

    async fn restore_vm(&self, tenant: &Tenant, vm: &str, snapshot: &str) -> Result<()> {
        if !self.capabilities.vm_snapshots {
            return Err(Error::unsupported(BACKEND, "vms.restore", "vm_snapshots"));
        }
        self.restore_from(tenant, vm, snapshot).await
    }

    async fn delete_vm_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        self.drop_vm_snapshot(tenant, snapshot).await
    }

    async fn console(&self, tenant: &Tenant, vm: &str) -> Result<kubecloud_core::ConsoleStream> {
        self.open_console(tenant, vm, kubecloud_core::ConsoleKind::Serial)
            .await
    }

    async fn vnc(&self, tenant: &Tenant, vm: &str) -> Result<kubecloud_core::ConsoleStream> {
        self.open_console(tenant, vm, kubecloud_core::ConsoleKind::Vnc)
            .await
    }
}

impl KubeVirt {
    /// Deletes the VM (foreground) and what this backend made for it, and waits until the VM,
    /// its import DataVolume and the import's volume are gone; `timeout` is each wait's own
    /// bound, the caller's deadline bounds them together.
    async fn delete_vm_and_wait(
        &self,
        tenant: &Tenant,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<()> {
        let object = self.vm_object(tenant, name).await?;
        let spec = stored_spec(&object.metadata, name)?;
        let ns = Self::ns(tenant);
        let vms = apis::vms(&self.client, &ns);
        // Foreground: the VM stays until the garbage collector has deleted what blocks it (its
        // instance, which waits for its launcher pod, and DataVolumes from its templates).
        let vm_uid = self
            .writer
            .delete_foreground(&vms, name, ResourceKind::Vm, name)
            .await?;
        // What this backend created for the VM goes too (the owner references would take it
        // as well; deleting it here does not depend on a garbage collector).
        let secrets = self.vm_secrets(tenant, &spec).await?;
        let secrets_api = self.secrets_api(tenant);
        for secret in secrets.keys() {
            self.writer
                .delete(&secrets_api, secret, ResourceKind::Vm, name)
                .await?;
        }
        let import = match spec.boot_disk {
            BootDisk::Import { .. } | BootDisk::Catalog { .. } => {
                self.delete_import(tenant, name).await?
            }
            _ => None,
        };
        let selector = format!("{},{VM_LABEL}={name}", tenant_selector(tenant));
        let api = apis::migrations(&self.client, &ns);
        self.writer
            .retry()
            .run("delete migrations", || async {
                api.delete_collection(
                    &DeleteParams::background(),
                    &ListParams::default().labels(&selector),
                )
                .await
                .map(|_| ())
                .map_err(|e| from_kube(BACKEND, ResourceKind::Migration, name, e))
            })
            .await?;
        self.writer
            .wait_gone(
                &vms,
                name,
                vm_uid.as_deref(),
                ResourceKind::Vm,
                name,
                timeout,
            )
            .await?;
        if let Some(import) = import {
            self.wait_import_gone(name, import, timeout).await?;
        }
        tracing::debug!(%tenant, vm = name, "vm deleted");
        Ok(())
    }
}
