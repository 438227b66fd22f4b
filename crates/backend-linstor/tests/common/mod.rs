//! The test target: the Kubernetes API double with the LINSTOR CSI stand-in and CDI, the LINSTOR
//! controller double (3 nodes, a thin LVM pool and a ZFS pool on each), and the backend.
#![allow(dead_code)]

use std::time::Duration;

use kubecloud_kube::RetryPolicy;
use kubecloud_linstor::Linstor;
use kubecloud_testkit::linstor::LinstorServer;
use kubecloud_testkit::{
    CdiController, GarbageCollector, LinstorCsi, NamespaceController, PvcProtection, TestServer,
};

/// 100 GiB per node per pool, in KiB.
pub const POOL_KIB: u64 = 100 << 20;

pub struct Env {
    pub kube: TestServer,
    pub linstor: LinstorServer,
    pub backend: Linstor,
}

pub async fn linstor() -> LinstorServer {
    LinstorServer::builder()
        .nodes(["node-a", "node-b", "node-c"])
        .pool_on_all_nodes("lvm-thin", "LVM_THIN", POOL_KIB)
        .pool_on_all_nodes("zfs", "ZFS", POOL_KIB)
        .resource_group("rg-fast", 2, ["lvm-thin"])
        .resource_group("rg-bulk", 1, ["zfs"])
        .start()
        .await
        .expect("LINSTOR double")
}

pub async fn env() -> Env {
    env_with(linstor().await).await
}

pub async fn env_with(linstor: LinstorServer) -> Env {
    let kube = TestServer::builder()
        .without_default_controllers()
        .controller(GarbageCollector)
        .controller(NamespaceController)
        // kube-apiserver gives every claim the pvc-protection finalizer; this removes it.
        .controller(PvcProtection)
        .controller(LinstorCsi::new(&linstor))
        .controller(CdiController::new())
        .start()
        .await
        .expect("kube double");
    let backend = Linstor::builder(kube.client(), linstor.url())
        .insecure_http()
        .tier("fast", "rg-fast")
        .tier("bulk", "rg-bulk")
        .max_replicas(3)
        .timeouts(Duration::from_millis(500), Duration::from_millis(500))
        .retry(RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        })
        .build()
        .expect("backend");
    Env {
        kube,
        linstor,
        backend,
    }
}

pub fn params() -> kubecloud_core::conformance::Params {
    kubecloud_core::conformance::Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(20),
        nodes: 3,
        ..Default::default()
    }
}
