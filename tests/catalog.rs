//! The image catalog on the whole stack of doubles (KubeVirt + CDI, LINSTOR, Kube-OVN, MetalLB):
//! VMs booted from one catalog image cause exactly one import (counted at the CDI double), bad
//! references are refused naming the field before anything is sent, and a `TenantSpec` can boot
//! its VMs from the catalog.
#![cfg(all(
    feature = "kubevirt",
    feature = "linstor",
    feature = "kubeovn",
    feature = "metallb"
))]

mod common {
    pub mod catalog;
    pub mod stack;
}

use std::time::Duration;

use common::catalog::{IMAGE, boot_from_catalog};
use common::stack::stack;
use kubecloud::{
    ApplyOptions, BootDisk, ByteSize, CatalogImageSpec, ImageSource, ResourceKind, TenantSpec,
    VmSpec,
};
use kubecloud_testkit::{Latency, Verb};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Enough VMs to show clones never import; `examples/catalog_bench.rs` runs 100.
const VMS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_booted_from_one_catalog_image_cause_one_import() {
    let s = stack(Latency::None, 0).await;
    let figures = boot_from_catalog(&s.cloud, &s.cdi, "acme", VMS, 4, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(figures.imports, 1, "{figures:?}");
    assert_eq!(s.cdi.imports_of(common::catalog::URL), 1);
    // Each VM has its own boot volume, a clone in the tenant's namespace.
    let acme = s.cloud.tenant("acme").unwrap();
    for i in 0..VMS {
        let boot = BootDisk::import_volume_name(&format!("vm-{i}"));
        let claim = s
            .kube
            .cluster()
            .get("v1", "PersistentVolumeClaim", Some("acme"), &boot)
            .unwrap();
        assert!(
            claim["metadata"]["annotations"]["cdi.kubevirt.io/cloneType"].is_string(),
            "{claim}"
        );
    }
    let image = s.cloud.catalog().get(IMAGE).await.unwrap();
    assert!(image.ready && image.last_import.is_some(), "{image:?}");
    assert_eq!(
        s.cloud
            .catalog()
            .list()
            .await
            .unwrap()
            .iter()
            .map(|i| i.spec.name.as_str())
            .collect::<Vec<_>>(),
        [IMAGE]
    );
    // Deleting VMs and the image leaves the tenant's other clones alone.
    acme.vms().delete("vm-0").await.unwrap();
    s.cloud.catalog().delete(IMAGE).await.unwrap();
    let err = s.cloud.catalog().get(IMAGE).await.unwrap_err();
    assert!(
        matches!(
            err,
            kubecloud::Error::NotFound {
                kind: ResourceKind::CatalogImage,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(acme.vms().get("vm-1").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalog_references_are_refused_naming_the_field_before_anything_is_sent() {
    let s = stack(Latency::None, 0).await;
    let catalog = s.cloud.catalog();
    let broken = CatalogImageSpec::new(
        "broken",
        ImageSource::Http {
            url: "https://images.example.invalid/missing.qcow2".into(),
        },
        ByteSize::gib(1),
    );
    catalog.apply(&broken).await.unwrap();
    let err = catalog.wait_ready("broken", TIMEOUT).await.unwrap_err();
    assert!(matches!(err, kubecloud::Error::Failed { .. }), "{err:?}");
    let acme = s.cloud.tenant("acme").unwrap();
    for (image, field) in [("nope", "bootDisk.image"), ("broken", "bootDisk.image")] {
        s.kube.requests().reset();
        let vm = VmSpec {
            name: "web".into(),
            boot_disk: BootDisk::catalog(image),
            ..VmSpec::default()
        };
        let err = acme.vms().apply(&vm).await.unwrap_err();
        assert_eq!(err.invalid_field(), Some(field), "{err}");
        let writes: Vec<_> = s
            .kube
            .requests()
            .all()
            .into_iter()
            .filter(|r| {
                matches!(
                    r.verb,
                    Verb::Create
                        | Verb::Update
                        | Verb::Patch
                        | Verb::Apply
                        | Verb::Delete
                        | Verb::DeleteCollection
                )
            })
            .collect();
        assert!(writes.is_empty(), "nothing sent for {image:?}: {writes:?}");
    }
    // In a TenantSpec too: planning refuses it, naming the VM's field.
    let spec = TenantSpec {
        vms: vec![VmSpec {
            name: "web".into(),
            boot_disk: BootDisk::catalog("nope"),
            ..VmSpec::default()
        }],
        ..TenantSpec::default()
    };
    let err = acme.plan(&spec).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("vms[0].bootDisk.image"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_spec_boots_its_vms_from_the_catalog() {
    let s = stack(Latency::None, 0).await;
    let spec = CatalogImageSpec::new(
        IMAGE,
        ImageSource::Http {
            url: common::catalog::URL.into(),
        },
        ByteSize::gib(1),
    );
    s.cloud.catalog().apply(&spec).await.unwrap();
    s.cloud.catalog().wait_ready(IMAGE, TIMEOUT).await.unwrap();
    let acme = s.cloud.tenant("acme").unwrap();
    let tenant = TenantSpec::from_yaml(
        "vms:\n  - name: web\n    resources: { custom: { cpuCores: 1, memory: 1Gi } }\n    bootDisk: { catalog: { image: fedora, size: 2Gi } }\n  - name: db\n    resources: { custom: { cpuCores: 1, memory: 1Gi } }\n    bootDisk: { catalog: { image: fedora } }\n",
    )
    .unwrap();
    let options = ApplyOptions {
        timeout: TIMEOUT,
        ..ApplyOptions::default()
    };
    acme.apply(&acme.plan(&tenant).await.unwrap(), options)
        .await
        .unwrap();
    for vm in ["web", "db"] {
        acme.vms().wait_running(vm, TIMEOUT).await.unwrap();
    }
    let again = acme.plan(&tenant).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    assert_eq!(s.cdi.imports(), 1);
    acme.destroy(options).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_clones_from_the_catalog_only_with_the_catalog_rbac() {
    let s = stack(Latency::None, 0).await;
    // A cluster where the operator did not apply kubecloud::rbac::catalog_manifests.
    s.rbac.clear();
    let spec = CatalogImageSpec::new(
        IMAGE,
        ImageSource::Http {
            url: common::catalog::URL.into(),
        },
        ByteSize::gib(1),
    );
    s.cloud.catalog().apply(&spec).await.unwrap();
    s.cloud.catalog().wait_ready(IMAGE, TIMEOUT).await.unwrap();
    let acme = s.cloud.tenant("acme").unwrap();
    let vm = VmSpec {
        name: "web".into(),
        boot_disk: BootDisk::catalog(IMAGE),
        ..VmSpec::default()
    };
    acme.vms().apply(&vm).await.unwrap();
    // KubeVirt refuses to create the clone for the VM's service account, and says why.
    let refused = kubecloud::wait::until(
        acme.vms().watch("web").await.unwrap(),
        kubecloud::wait::condition("refused", |vm: &kubecloud::Vm| {
            if vm
                .status
                .conditions
                .iter()
                .any(|c| c.type_ == "Failure" && c.status)
            {
                kubecloud::wait::Check::Met
            } else {
                kubecloud::wait::Check::Pending
            }
        }),
        TIMEOUT,
    )
    .await
    .unwrap();
    let failure = refused
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failure")
        .unwrap();
    assert!(
        failure.message.contains(
            "system:serviceaccount:acme:default has insufficient permissions in clone source namespace kubecloud-images"
        ),
        "{failure:?}"
    );
    assert!(
        s.kube
            .cluster()
            .get_opt(
                "cdi.kubevirt.io/v1beta1",
                "DataVolume",
                Some("acme"),
                "web-boot"
            )
            .unwrap()
            .is_none()
    );
    // With the catalog RBAC (and the VM reconciled again), the clone is made and the VM runs.
    common::stack::install_catalog_rbac(&s.rbac);
    s.kube
        .cluster()
        .merge_patch(
            "kubevirt.io/v1",
            "VirtualMachine",
            Some("acme"),
            "web",
            &serde_json::json!({"metadata": {"annotations": {"test/poke": "1"}}}),
        )
        .unwrap();
    acme.vms().wait_running("web", TIMEOUT).await.unwrap();
    assert_eq!(s.cdi.imports(), 1);
}
