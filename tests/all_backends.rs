//! The whole stack on the test doubles: KubeVirt + CDI, LINSTOR, Kube-OVN and MetalLB backends
//! composed into one `Cloud`, against one Kubernetes API double (with every simulated controller)
//! and one LINSTOR controller double, running the shared conformance suite and a tenant
//! plan/apply/destroy across all four.
#![cfg(all(
    feature = "kubevirt",
    feature = "linstor",
    feature = "kubeovn",
    feature = "metallb"
))]

use std::time::Duration;

use kubecloud::{ApplyOptions, Cloud, TenantSpec};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::linstor::LinstorServer;
use kubecloud_testkit::{
    CdiController, GarbageCollector, KubeOvnController, KubeVirtController,
    KubeVirtSnapshotController, LinstorCsi, MetalLbController, NamespaceController, TestServer,
};

const DEFAULT_CLASS: &str = r#"
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: linstor-default
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: linstor.csi.linbit.com
allowVolumeExpansion: true
volumeBindingMode: Immediate
parameters:
  linstor.csi.linbit.com/resourceGroup: rg-fast
  linstor.csi.linbit.com/placementCount: "2"
---
# KubeVirt imports boot disks into the StorageClass named after the tier (see kubecloud-kubevirt).
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: linstor.csi.linbit.com
allowVolumeExpansion: true
parameters:
  linstor.csi.linbit.com/resourceGroup: rg-fast
  property.linstor.csi.linbit.com/DrbdOptions/Net/allow-two-primaries: "yes"
"#;

struct Stack {
    _kube: TestServer,
    _linstor: LinstorServer,
    compute: kubecloud::kubevirt::KubeVirt,
    storage: kubecloud::linstor::Linstor,
    network: kubecloud::kubeovn::KubeOvn,
    load_balancer: kubecloud::metallb::MetalLb,
}

async fn stack() -> Stack {
    const POOL_KIB: u64 = 100 << 20;
    let linstor = LinstorServer::builder()
        .nodes(["node-1", "node-2", "node-3"])
        .pool_on_all_nodes("lvm-thin", "LVM_THIN", POOL_KIB)
        .pool_on_all_nodes("zfs", "ZFS", POOL_KIB)
        .resource_group("rg-fast", 2, ["lvm-thin"])
        .resource_group("rg-bulk", 1, ["zfs"])
        .start()
        .await
        .expect("LINSTOR double");
    let virt = KubeVirtController::new().with_nodes(&["node-1", "node-2", "node-3"]);
    // What installing KubeVirt and MetalLB leaves behind: nodes, and MetalLB's namespace.
    // A cluster administrator's default StorageClass, so claims without a class (CDI's imports)
    // land on LINSTOR.
    let nodes = format!(
        "{}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n{DEFAULT_CLASS}",
        virt.node_manifests()
    );
    let kube = TestServer::builder()
        .without_default_controllers()
        .controller(GarbageCollector)
        .controller(NamespaceController)
        .controller(LinstorCsi::new(&linstor))
        .controller(CdiController::new())
        .controller(virt)
        .controller(KubeVirtSnapshotController)
        .controller(KubeOvnController)
        .controller(MetalLbController::new())
        .seed_yaml(&nodes)
        .start()
        .await
        .expect("Kubernetes double");
    let client = kube.client();
    let storage = kubecloud::linstor::Linstor::builder(client.clone(), linstor.url())
        .insecure_http()
        .tier("fast", "rg-fast")
        .tier("bulk", "rg-bulk")
        .max_replicas(3)
        .build()
        .expect("LINSTOR backend");
    Stack {
        compute: kubecloud::kubevirt::KubeVirt::builder(client.clone()).build(),
        storage,
        network: kubecloud::kubeovn::KubeOvn::builder(client.clone()).build(),
        load_balancer: kubecloud::metallb::MetalLb::builder(client).build(),
        _kube: kube,
        _linstor: linstor,
    }
}

fn params() -> Params {
    Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

macro_rules! group {
    ($test:ident, $run:ident, $prefix:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let s = stack().await;
            let target = Target {
                compute: Some(&s.compute),
                storage: Some(&s.storage),
                network: Some(&s.network),
                load_balancer: Some(&s.load_balancer),
            };
            let report = conformance::$run(&target, $prefix, &params()).await;
            eprintln!("{report}");
            assert!(!report.passed.is_empty());
            // No check may skip: every capability the suite needs is there across the stack.
            let unexpected: Vec<_> = report.skipped.iter().collect();
            assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
        }
    };
}

group!(storage_conforms_across_the_stack, run_storage, "st");
group!(network_conforms_across_the_stack, run_network, "nw");
group!(compute_conforms_across_the_stack, run_compute, "cp");
group!(
    load_balancing_conforms_across_the_stack,
    run_load_balancer,
    "lb"
);
group!(tenants_are_isolated_across_the_stack, run_isolation, "is");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_and_destroyed_across_all_four_backends() {
    let s = stack().await;
    let cloud = Cloud::builder()
        .compute(s.compute.clone())
        .storage(s.storage.clone())
        .network(s.network.clone())
        .load_balancer(s.load_balancer.clone())
        .build()
        .unwrap();
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        ..spec
    };
    let options = ApplyOptions {
        timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options)
        .await
        .unwrap();
    let web = acme.vms().get("web").await.unwrap();
    assert_eq!(
        web.status.interfaces[0].ip,
        Some("10.1.0.10".parse().unwrap())
    );
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    acme.destroy(options).await.unwrap();
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}
