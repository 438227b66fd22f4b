//! The image catalog on CDI: golden images imported once into the catalog namespace
//! ([`crate::Options::catalog_namespace`], `kubecloud-images` by default), each a CDI
//! `DataSource` named after the image that VMs clone their boot disk from
//! (`sourceRef: {kind: DataSource, namespace, name}` in the VM's DataVolume template; CDI picks
//! the storage's own clone or snapshot where it can, a copy otherwise).
//!
//! | source | objects in the catalog namespace |
//! |---|---|
//! | `Registry` | a `DataImportCron` `<image>` (`managedDataSource: <image>`, `schedule`, `retentionPolicy: None`, the registry URL and size as template): CDI polls the registry on the schedule, imports each new digest once and points the DataSource (which it creates) at the last import |
//! | `Http` | a `DataVolume` `<image>-<12 hex of the URL's hash>` importing the URL (immediate binding: no VM consumes it) and a `DataSource` `<image>` pointing at its claim; CDI's DataImportCron takes no http source, so such an image is imported once (and again when its URL changes) |
//!
//! Every object is labelled `kubecloud.io/catalog-image=<image>` and carries the image's spec in
//! the annotation [`SPEC_ANNOTATION`] (the cron for a registry image, the DataSource for an http
//! one). Readiness is the DataSource's `Ready` condition; the last import is the cron's
//! `status.lastImportTimestamp` (registry) or when the import DataVolume became ready (http); a
//! failed import is the import DataVolume's `Failed` phase (its `Running` condition says why).
//!
//! Tenants need, in the catalog namespace, `get`/`list`/`watch` on `datasources` and `create`
//! on `datavolumes/source` for their VMs' service accounts: KubeVirt authorizes a VM's clone
//! from another namespace that way. `kubecloud::rbac::catalog_manifests` renders that `Role` and
//! its `RoleBinding`.

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use kubecloud_core::{CatalogImage, CatalogImageSpec, Error, ImageSource, ResourceKind, Result};
use kubecloud_kube::{MANAGED_BY, MANAGER, applied_hash, convert};
use kubecloud_models::cdi::{DataImportCron, DataSource, DataVolume};
use serde_json::json;

use crate::{BACKEND, KubeVirt, apis};

/// The label naming the catalog image an object belongs to.
pub const IMAGE_LABEL: &str = "kubecloud.io/catalog-image";
/// The annotation holding the image's spec (JSON).
pub const SPEC_ANNOTATION: &str = "kubecloud.io/catalog-spec";
/// CDI's annotation asking to bind a DataVolume's claim at once (no consumer waits for it).
const IMMEDIATE: &str = "cdi.kubevirt.io/storage.bind.immediate.requested";

const KIND: ResourceKind = ResourceKind::CatalogImage;

/// The import DataVolume of an http image from `url`.
pub fn http_import_name(image: &str, url: &str) -> String {
    let hash = applied_hash(&url);
    format!("{image}-{}", &hash[..12.min(hash.len())])
}

fn labels(name: &str) -> serde_json::Value {
    json!({MANAGED_BY: MANAGER, IMAGE_LABEL: name})
}

fn spec_json(spec: &CatalogImageSpec) -> Result<String> {
    serde_json::to_string(spec)
        .map_err(|e| Error::backend(BACKEND, "serializing the spec", false, e))
}

fn stored(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<CatalogImageSpec> {
    annotations
        .and_then(|a| a.get(SPEC_ANNOTATION))
        .and_then(|s| serde_json::from_str(s).ok())
}

fn ours(labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.get(MANAGED_BY).map(String::as_str) == Some(MANAGER))
}

/// The `DataImportCron` of a registry image.
pub fn cron_object(
    ns: &str,
    spec: &CatalogImageSpec,
    storage_class: Option<&str>,
) -> Result<serde_json::Value> {
    let mut storage = json!({"resources": {"requests": {"storage": spec.size.to_string()}}});
    if let Some(class) = storage_class {
        storage["storageClassName"] = json!(class);
    }
    Ok(json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataImportCron",
        "metadata": {"name": spec.name, "namespace": ns, "labels": labels(&spec.name),
                     "annotations": {SPEC_ANNOTATION: spec_json(spec)?}},
        "spec": {
            "managedDataSource": spec.name,
            "schedule": spec.schedule.clone().unwrap_or_default(),
            "retentionPolicy": "None",
            "template": {"spec": {"source": {"registry": {"url": spec.source.url()}}, "storage": storage}},
        },
    }))
}

/// The import `DataVolume` and the `DataSource` of an http image.
pub fn http_objects(
    ns: &str,
    spec: &CatalogImageSpec,
    storage_class: Option<&str>,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let dv_name = http_import_name(&spec.name, spec.source.url());
    let mut storage = json!({"resources": {"requests": {"storage": spec.size.to_string()}}});
    if let Some(class) = storage_class {
        storage["storageClassName"] = json!(class);
    }
    let dv = json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": dv_name, "namespace": ns, "labels": labels(&spec.name),
                     "annotations": {IMMEDIATE: "true"}},
        "spec": {"source": {"http": {"url": spec.source.url()}}, "storage": storage},
    });
    let ds = json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataSource",
        "metadata": {"name": spec.name, "namespace": ns, "labels": labels(&spec.name),
                     "annotations": {SPEC_ANNOTATION: spec_json(spec)?}},
        "spec": {"source": {"pvc": {"namespace": ns, "name": dv_name}}},
    });
    Ok((dv, ds))
}

/// The `Role` and `RoleBinding` (named `name`) tenants need in the catalog namespace
/// `namespace`: `get`/`list`/`watch` of `datasources` and `create` of `datavolumes/source`, for
/// every service account (`system:serviceaccounts`). `kubecloud::rbac::catalog_manifests`
/// gives them to operators.
pub fn rbac_manifests(namespace: &str, name: &str) -> [serde_json::Value; 2] {
    let labels = json!({MANAGED_BY: MANAGER});
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "rules": [
            {"apiGroups": ["cdi.kubevirt.io"], "resources": ["datasources"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"]},
        ],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts"}],
    });
    [role, binding]
}

impl KubeVirt {
    fn catalog_ns(&self) -> &str {
        &self.options.catalog_namespace
    }

    fn crons(&self) -> Api<DataImportCron> {
        Api::namespaced(self.client.clone(), self.catalog_ns())
    }

    fn sources(&self) -> Api<DataSource> {
        Api::namespaced(self.client.clone(), self.catalog_ns())
    }

    fn catalog_dvs(&self) -> Api<DataVolume> {
        apis::data_volumes(&self.client, self.catalog_ns())
    }

    /// The catalog namespace, applied (labelled as kubecloud's).
    async fn ensure_catalog_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = convert(
            &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": self.catalog_ns(), "labels": {MANAGED_BY: MANAGER}}}),
            BACKEND,
            KIND,
            name,
        )?;
        let current = self
            .writer
            .get_opt(&api, self.catalog_ns(), KIND, name)
            .await?;
        self.writer
            .apply_if_changed(&api, current.as_ref(), &ns, KIND, name)
            .await?;
        Ok(())
    }

    /// Deletes the import DataVolumes of image `name` but `keep`.
    async fn delete_http_imports(&self, name: &str, keep: Option<&str>) -> Result<()> {
        let dvs = self.catalog_dvs();
        let listed = self
            .writer
            .list(
                &dvs,
                &ListParams::default().labels(&format!("{IMAGE_LABEL}={name}")),
                KIND,
                name,
            )
            .await?;
        for dv in listed {
            let dv_name = dv.metadata.name.clone().unwrap_or_default();
            if Some(dv_name.as_str()) != keep {
                self.writer.delete(&dvs, &dv_name, KIND, name).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn apply_image(&self, spec: &CatalogImageSpec) -> Result<CatalogImage> {
        spec.validate()?;
        self.ensure_catalog_namespace(&spec.name).await?;
        let ns = self.catalog_ns().to_string();
        let class = self.options.storage_class.as_deref();
        let cron = self
            .writer
            .get_opt(&self.crons(), &spec.name, KIND, &spec.name)
            .await?;
        let source = self
            .writer
            .get_opt(&self.sources(), &spec.name, KIND, &spec.name)
            .await?;
        if cron
            .as_ref()
            .is_some_and(|c| !ours(c.metadata.labels.as_ref()))
            || source.as_ref().is_some_and(|s| {
                !ours(s.metadata.labels.as_ref())
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("cdi.kubevirt.io/dataImportCron"))
                        != Some(&spec.name)
            })
        {
            return Err(Error::conflict(
                KIND,
                &spec.name,
                format!(
                    "a DataSource or DataImportCron {:?} exists in {ns:?} and was not made by kubecloud",
                    spec.name
                ),
            ));
        }
        match &spec.source {
            ImageSource::Registry { .. } => {
                // From http to registry: the DataSource becomes the cron's.
                if source
                    .as_ref()
                    .is_some_and(|s| ours(s.metadata.labels.as_ref()))
                {
                    self.writer
                        .delete(&self.sources(), &spec.name, KIND, &spec.name)
                        .await?;
                    self.delete_http_imports(&spec.name, None).await?;
                }
                let desired: DataImportCron =
                    convert(&cron_object(&ns, spec, class)?, BACKEND, KIND, &spec.name)?;
                self.writer
                    .apply_if_changed(&self.crons(), cron.as_ref(), &desired, KIND, &spec.name)
                    .await?;
            }
            ImageSource::Http { url } => {
                if cron.is_some() {
                    self.writer
                        .delete(&self.crons(), &spec.name, KIND, &spec.name)
                        .await?;
                }
                let (dv, ds) = http_objects(&ns, spec, class)?;
                let dv: DataVolume = convert(&dv, BACKEND, KIND, &spec.name)?;
                let ds: DataSource = convert(&ds, BACKEND, KIND, &spec.name)?;
                let dv_name = http_import_name(&spec.name, url);
                let current = self
                    .writer
                    .get_opt(&self.catalog_dvs(), &dv_name, KIND, &spec.name)
                    .await?;
                self.writer
                    .apply_if_changed(&self.catalog_dvs(), current.as_ref(), &dv, KIND, &spec.name)
                    .await?;
                let source = source.filter(|s| ours(s.metadata.labels.as_ref()));
                self.writer
                    .apply_if_changed(&self.sources(), source.as_ref(), &ds, KIND, &spec.name)
                    .await?;
                self.delete_http_imports(&spec.name, Some(&dv_name)).await?;
            }
        }
        tracing::debug!(image = %spec.name, "catalog image applied");
        self.image(&spec.name).await
    }

    /// Catalog image `name` read now.
    pub(crate) async fn image(&self, name: &str) -> Result<CatalogImage> {
        let cron = self
            .writer
            .get_opt(&self.crons(), name, KIND, name)
            .await?
            .filter(|c| {
                ours(c.metadata.labels.as_ref()) && c.metadata.deletion_timestamp.is_none()
            });
        let source = self
            .writer
            .get_opt(&self.sources(), name, KIND, name)
            .await?;
        let spec = match (&cron, &source) {
            (Some(c), _) => stored(c.metadata.annotations.as_ref()),
            (None, Some(s)) if ours(s.metadata.labels.as_ref()) => {
                stored(s.metadata.annotations.as_ref())
            }
            _ => None,
        };
        let Some(spec) = spec else {
            return Err(Error::not_found(KIND, name));
        };
        let ready_condition = source
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.r#type == "Ready"));
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        // The import now or last: the cron's current one, or the http DataSource's.
        let import_name = match (&cron, &source) {
            (Some(c), _) => c
                .status
                .as_ref()
                .and_then(|s| s.current_imports.as_ref())
                .and_then(|i| i.first())
                .map(|i| i.data_volume_name.clone()),
            (None, Some(s)) => s.spec.source.pvc.as_ref().map(|p| p.name.clone()),
            _ => None,
        };
        let import = match &import_name {
            Some(dv) => {
                self.writer
                    .get_opt(&self.catalog_dvs(), dv, KIND, name)
                    .await?
            }
            None => None,
        };
        let phase = import
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.phase.clone());
        let failed = phase.as_deref() == Some("Failed");
        let dv_condition = |type_: &str| {
            import
                .as_ref()
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.r#type == type_).cloned())
        };
        let last_import = match &cron {
            Some(c) => c
                .status
                .as_ref()
                .and_then(|s| s.last_import_timestamp.clone()),
            None if phase.as_deref() == Some("Succeeded") => {
                dv_condition("Ready").and_then(|c| c.last_transition_time)
            }
            None => None,
        };
        let message = if failed {
            dv_condition("Running")
                .and_then(|c| c.message)
                .filter(|m| !m.is_empty())
        } else if ready {
            None
        } else {
            ready_condition
                .and_then(|c| c.message.clone())
                .or_else(|| Some("import scheduled".into()))
        };
        Ok(CatalogImage {
            spec,
            ready,
            failed: failed && !ready,
            last_import,
            message,
        })
    }

    pub(crate) async fn images(&self) -> Result<Vec<CatalogImage>> {
        let selector =
            ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER},{IMAGE_LABEL}"));
        let mut names = std::collections::BTreeSet::new();
        for c in self
            .writer
            .list(&self.crons(), &selector, KIND, "catalog")
            .await?
        {
            names.extend(c.metadata.name);
        }
        for s in self
            .writer
            .list(&self.sources(), &selector, KIND, "catalog")
            .await?
        {
            names.extend(s.metadata.name);
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.image(&name).await {
                Ok(image) => out.push(image),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub(crate) async fn image_states(
        &self,
        name: &str,
    ) -> Result<BoxStream<'static, Result<CatalogImage>>> {
        let first = self.image(name).await?;
        let sources = self.writer.states(&self.sources(), name).map(|_| ());
        let crons = self.writer.states(&self.crons(), name).map(|_| ());
        let changes = stream::select_all([sources.boxed(), crons.boxed()]);
        let this = self.clone();
        let name = name.to_string();
        let rest = stream::unfold(
            (changes, this, name, first.clone()),
            |(mut changes, this, name, mut last)| async move {
                loop {
                    changes.next().await?;
                    match this.image(&name).await {
                        Ok(image) if image == last => continue,
                        Ok(image) => {
                            last = image.clone();
                            return Some((Ok(image), (changes, this, name, last)));
                        }
                        Err(e) if e.is_not_found() => return None,
                        Err(e) => {
                            tracing::debug!(error = %e, image = %name, "reading a catalog image; the watch goes on");
                            continue;
                        }
                    }
                }
            },
        );
        Ok(stream::once(async move { Ok(first) }).chain(rest).boxed())
    }

    pub(crate) async fn delete_image(&self, name: &str) -> Result<()> {
        self.image(name).await?;
        // The cron's retentionPolicy None makes CDI delete its DataSource, imports and claims.
        self.writer.delete(&self.crons(), name, KIND, name).await?;
        let source = self
            .writer
            .get_opt(&self.sources(), name, KIND, name)
            .await?;
        if source.is_some_and(|s| ours(s.metadata.labels.as_ref())) {
            self.writer
                .delete(&self.sources(), name, KIND, name)
                .await?;
        }
        self.delete_http_imports(name, None).await?;
        tracing::debug!(image = %name, "catalog image deleted");
        Ok(())
    }

    /// Checks that a VM may boot from catalog image `image` (field `bootDisk.image`, and
    /// `bootDisk.size` for a clone smaller than the image).
    pub(crate) async fn check_catalog_boot(&self, spec: &kubecloud_core::VmSpec) -> Result<()> {
        let kubecloud_core::BootDisk::Catalog { image, size, .. } = &spec.boot_disk else {
            return Ok(());
        };
        let found = match self.image(image).await {
            Ok(found) => Some(found),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        kubecloud_core::catalog::check_boot_image(
            "bootDisk.image",
            "bootDisk.size",
            image,
            *size,
            found.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecloud_core::{BootDisk, ByteSize, Tenant, VmSpec};

    fn registry() -> CatalogImageSpec {
        CatalogImageSpec::new(
            "fedora",
            ImageSource::Registry {
                url: "docker://quay.io/containerdisks/fedora:40".into(),
            },
            ByteSize::gib(5),
        )
        .with_schedule("0 3 * * *")
    }

    #[test]
    fn a_registry_image_is_a_data_import_cron_cleaning_up_after_itself() {
        let cron = cron_object("images", &registry(), Some("fast")).unwrap();
        assert_eq!(cron["spec"]["managedDataSource"], "fedora");
        assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
        assert_eq!(cron["spec"]["retentionPolicy"], "None");
        let template = &cron["spec"]["template"]["spec"];
        assert_eq!(
            template["source"]["registry"]["url"],
            "docker://quay.io/containerdisks/fedora:40"
        );
        assert_eq!(template["storage"]["storageClassName"], "fast");
        assert_eq!(
            template["storage"]["resources"]["requests"]["storage"],
            "5Gi"
        );
        let stored: CatalogImageSpec = serde_json::from_str(
            cron["metadata"]["annotations"][SPEC_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(stored, registry());
        // It decodes as CDI's model.
        let _: DataImportCron = serde_json::from_value(cron).unwrap();
    }

    #[test]
    fn an_http_image_is_an_immediate_import_and_a_data_source_pointing_at_it() {
        let spec = CatalogImageSpec::new(
            "a".repeat(50),
            ImageSource::Http {
                url: "https://images.example.com/os.qcow2".into(),
            },
            ByteSize::gib(2),
        );
        let (dv, ds) = http_objects("images", &spec, None).unwrap();
        let name = dv["metadata"]["name"].as_str().unwrap();
        assert!(name.len() <= 63, "a DNS label: {name}");
        assert_eq!(dv["metadata"]["annotations"][IMMEDIATE], "true");
        assert_eq!(
            dv["spec"]["source"]["http"]["url"],
            "https://images.example.com/os.qcow2"
        );
        assert_eq!(
            ds["spec"]["source"]["pvc"],
            json!({"namespace": "images", "name": name})
        );
        let _: DataVolume = serde_json::from_value(dv).unwrap();
        let _: DataSource = serde_json::from_value(ds).unwrap();
    }

    #[test]
    fn a_catalog_boot_disk_is_a_clone_by_source_ref() {
        let tenant = Tenant::new("acme").unwrap();
        let vm = VmSpec {
            name: "web".into(),
            boot_disk: BootDisk::catalog("fedora"),
            ..VmSpec::default()
        };
        let options = crate::Options::default();
        let t = crate::translate::import_template(&tenant, &vm, &options).unwrap();
        assert_eq!(t["metadata"]["name"], "web-boot");
        assert_eq!(
            t["spec"]["sourceRef"],
            json!({"kind": "DataSource", "name": "fedora", "namespace": "kubecloud-images"})
        );
        assert!(t["spec"]["source"].is_null(), "never an import: {t}");
        assert!(
            t["spec"]["storage"]["resources"].is_null(),
            "the image's size: {t}"
        );
    }

    #[test]
    fn the_catalog_rbac_reads_data_sources_and_clones_from_them_only() {
        let [role, binding] = rbac_manifests("images", "reader");
        assert_eq!(role["metadata"]["namespace"], "images");
        assert_eq!(role["rules"].as_array().unwrap().len(), 2);
        assert_eq!(role["rules"][1]["resources"], json!(["datavolumes/source"]));
        assert_eq!(role["rules"][1]["verbs"], json!(["create"]));
        assert_eq!(binding["roleRef"]["name"], "reader");
    }
}
