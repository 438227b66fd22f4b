//! The whole stack with load balancing on Cilium LB-IPAM instead of MetalLB: KubeVirt + CDI,
//! LINSTOR, Kube-OVN and the Cilium backend, on the fake cloud running the simulated LB-IPAM
//! (`FakeCloud::builder().cilium()`), connected with `Cloud::connect_with` choosing the Cilium
//! backend (both systems' CRDs are served, and MetalLB comes first unless chosen otherwise);
//! every conformance group, and a tenant apply / re-plan (empty) / destroy (nothing left). The
//! cluster's BGP speaker is given when connecting (`ConnectOptions::with(CiliumBgp)`), and a
//! tenant's BGP pool is announced by the simulated BGP control plane to the peer it names.
#![cfg(all(feature = "kubernetes", feature = "cilium"))]

mod common {
    pub mod ports;
    pub mod stack;
}

use std::time::Duration;

use common::ports::OvnPorts;
use common::stack::left_behind;
use kubecloud::cilium::bgp::{CiliumBgp, CiliumBgpPeer};
use kubecloud::{ApplyOptions, Cloud, ConnectOptions, Part, TenantSpec};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::FakeCloud;
use kubecloud_testkit::cilium_bgp::{self, BgpRoute};

fn params() -> Params {
    Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

const BULK: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bulk}\n\
                    provisioner: linstor.csi.linbit.com\n\
                    parameters: {linstor.csi.linbit.com/resourceGroup: rg-bulk}\n";

async fn stack() -> (FakeCloud, Cloud) {
    let fake = FakeCloud::builder()
        .cilium()
        .start()
        .await
        .expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    fake.kube().seed_yaml(BULK).expect("bulk class");
    let options = ConnectOptions::new()
        .backend(Part::LoadBalancer, "cilium")
        .with(speaker());
    let cloud = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect("connect");
    assert_eq!(
        cloud.backend_names(),
        ["kubevirt", "linstor", "kube-ovn", "cilium"],
        "the load balancer the options chose"
    );
    (fake, cloud)
}

/// The cluster's BGP speaker: AS 64512 on every node, peering with the conformance suite's
/// router `tor` (192.0.2.1, AS 64513).
fn speaker() -> CiliumBgp {
    CiliumBgp::new(64512).peer(CiliumBgpPeer::new(
        "tor",
        "192.0.2.1".parse().unwrap(),
        64513,
    ))
}

/// A pool cannot set a BGP peer's password or hold time on Cilium (sessions are the cluster's:
/// `kubecloud::cilium::bgp`), so the check changing them in place skips, with the backend's
/// reason; nothing else may skip.
const EXPECTED_SKIP: (&str, &str) = (
    "loadbalancer::pool_changes_in_place",
    "the load balancer's BGP sessions are not a pool's to set: ",
);

macro_rules! group {
    ($test:ident, $run:ident, $prefix:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let (fake, cloud) = stack().await;
            let ports = OvnPorts::new(&fake.ovn_northbound(), &cloud);
            let target = Target {
                compute: Some(cloud.compute()),
                storage: Some(cloud.storage()),
                network: Some(cloud.network()),
                load_balancer: Some(cloud.load_balancer()),
                ports: Some(&ports),
            };
            let report = conformance::$run(&target, $prefix, &params()).await;
            eprintln!("{report}");
            assert!(!report.passed.is_empty());
            let unexpected: Vec<_> = report
                .skipped
                .iter()
                .filter(|(name, why)| *name != EXPECTED_SKIP.0 || !why.starts_with(EXPECTED_SKIP.1))
                .collect();
            assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
        }
    };
}

group!(storage_conforms_with_cilium_lb, run_storage, "st");
group!(network_conforms_with_cilium_lb, run_network, "nw");
group!(compute_conforms_with_cilium_lb, run_compute, "cp");
group!(load_balancing_conforms_on_cilium, run_load_balancer, "lb");
group!(tenants_are_isolated_with_cilium_lb, run_isolation, "is");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_choice_metallb_is_taken_where_both_are_installed() {
    let fake = FakeCloud::builder()
        .cilium()
        .start()
        .await
        .expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    let cloud = Cloud::connect_with(fake.kube().client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[3], "metallb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_re_planned_and_destroyed_with_cilium_lb() {
    let (fake, cloud) = stack().await;
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // LB-IPAM cannot skip .0/.255 addresses (refused naming `avoidBuggyIps`): the pool keeps all.
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        address_pools: spec
            .address_pools
            .into_iter()
            .map(|p| kubecloud::AddressPoolSpec {
                avoid_buggy_ips: false,
                ..p
            })
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
    let exposed = cloud
        .load_balancer()
        .get_exposure(&kubecloud::Tenant::new("acme").unwrap(), "web")
        .await
        .unwrap();
    assert_eq!(exposed.pool.as_deref(), Some("public"), "{exposed:?}");
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    acme.destroy(options).await.unwrap();
    let left = left_behind(fake.kube(), "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}

/// A tenant's BGP pool and an exposure from it, applied as a tenant spec: every node announces
/// the exposure's address to the peer the pool names, with the local preference and communities
/// asked for; destroying the tenant withdraws it and deletes the pool's advertisement, and the
/// cluster's speaker stays. A pool naming a router the speaker does not peer with is refused
/// naming the field before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_s_bgp_pool_is_announced_to_its_peer_and_withdrawn_on_destroy() {
    let (fake, cloud) = stack().await;
    let acme = cloud.tenant("acme").unwrap();
    let yaml = |peer: &str, address: &str| {
        format!(
            "addressPools:\n  - name: routed\n    addresses: [{{ cidr: 198.51.100.0/28 }}]\n    \
             advertisement:\n      bgp:\n        peers: [{{ name: {peer}, myAsn: 64512, peerAsn: 64513, address: {address} }}]\n        \
             localPreference: 300\n        communities: [\"65000:42\", no-export]\n\
             exposures: [{{ name: web, selector: {{ app: web }}, ports: [{{ port: 443 }}], address: {{ pool: routed }} }}]\n"
        )
    };
    let options = ApplyOptions {
        timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    };

    let wrong = TenantSpec::from_yaml(&yaml("edge", "192.0.2.9")).unwrap();
    let writes = fake.kube().requests().writes().len();
    let err = match acme.plan(&wrong).await {
        Err(err) => err,
        Ok(plan) => acme.apply(&plan, options).await.unwrap_err(),
    };
    assert_eq!(
        err.invalid_field(),
        Some("advertisement.bgp.peers[0].name"),
        "{err}"
    );
    let cluster = fake.kube().cluster();
    assert!(
        cluster
            .list("cilium.io/v2", "CiliumLoadBalancerIPPool", None)
            .unwrap()
            .is_empty()
            && cluster
                .list("cilium.io/v2", "CiliumBGPAdvertisement", None)
                .unwrap()
                .is_empty(),
        "nothing of the refused pool was written ({} writes before)",
        writes
    );

    let spec = TenantSpec::from_yaml(&yaml("tor", "192.0.2.1")).unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options)
        .await
        .unwrap();
    let exposed = cloud
        .load_balancer()
        .get_exposure(&kubecloud::Tenant::new("acme").unwrap(), "web")
        .await
        .unwrap();
    let ip = exposed.ip.expect("an address");
    let want = BgpRoute {
        prefix: ip.into(),
        local_preference: Some(300),
        standard_communities: vec!["65000:42".into()],
        well_known_communities: vec!["no-export".into()],
        large_communities: vec![],
    };
    speaker_ready(&fake, "kubecloud").await;
    let node_configs = cluster
        .list("cilium.io/v2", "CiliumBGPNodeConfig", None)
        .unwrap()
        .len();
    assert_eq!(
        node_configs,
        FakeCloud::NODES.len(),
        "every node speaks BGP"
    );
    for node in FakeCloud::NODES {
        assert_eq!(
            cilium_bgp::advertised_routes(&cluster, node, "tor").unwrap(),
            std::slice::from_ref(&want),
            "{node} announces the exposure to tor"
        );
    }
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");

    acme.destroy(options).await.unwrap();
    for node in FakeCloud::NODES {
        assert!(
            cilium_bgp::advertised_routes(&cluster, node, "tor")
                .unwrap()
                .is_empty(),
            "{node} withdrew the route"
        );
    }
    assert!(
        cluster
            .list("cilium.io/v2", "CiliumBGPAdvertisement", None)
            .unwrap()
            .is_empty(),
        "the pool's advertisement is deleted"
    );
    assert_eq!(
        cluster
            .list("cilium.io/v2", "CiliumBGPClusterConfig", None)
            .unwrap()
            .len(),
        1,
        "the cluster's speaker stays"
    );
    let left = left_behind(fake.kube(), "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Waits until the simulated operator has handled the current generation of the cluster config
/// `name` (it writes the config's conditions after its node configs).
async fn speaker_ready(fake: &FakeCloud, name: &str) {
    use kubecloud::cilium::models::CiliumBgpClusterConfig;
    use kubecloud::cilium::models::bgp_cluster_config::CiliumBgpClusterConfigStatusConditionsStatus as Status;
    let api = kube::Api::<CiliumBgpClusterConfig>::all(fake.kube().client());
    let handled =
        kube::runtime::wait::await_condition(api, name, |c: Option<&CiliumBgpClusterConfig>| {
            c.is_some_and(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|k| {
                            k.r#type == "cilium.io/NoMatchingNode"
                                && k.status == Status::False
                                && k.observed_generation == c.metadata.generation
                        })
                    })
            })
        });
    tokio::time::timeout(Duration::from_secs(30), handled)
        .await
        .expect("the operator handles the cluster config in time")
        .expect("watch");
}
