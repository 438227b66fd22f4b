//! MACs from Kubemacpool: KubeVirt compute and the Multus network with
//! `MultusBuilder::kubemacpool`, on the API double with the simulated Multus + whereabouts and
//! the Kubemacpool double (its VM webhook and controller).

use std::time::Duration;

use kubecloud_core::{
    Compute, MacAddress, MigrationTarget, Network, NetworkInterface, SubnetSpec, Tenant,
    VmAttachments, VmSpec, VpcSpec, wait,
};
use kubecloud_kubevirt::KubeVirt;
use kubecloud_multus::Multus;
use kubecloud_testkit::kubemacpool::{Allocation, Kubemacpool};
use kubecloud_testkit::{KubeVirtController, TestServer, WhereaboutsController};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Env {
    server: TestServer,
    pool: Kubemacpool,
    compute: KubeVirt,
    network: Multus,
}

async fn env(pool: Kubemacpool, kubemacpool: bool) -> Env {
    let server = TestServer::builder()
        .controller(KubeVirtController::new().with_multus())
        .controller(WhereaboutsController::default())
        .mutating_webhook(pool.clone())
        .controller(pool.clone())
        .start()
        .await
        .expect("server");
    let compute = KubeVirt::builder(server.client()).build();
    let mut network = Multus::builder(server.client());
    if kubemacpool {
        network = network.kubemacpool();
    }
    Env {
        network: network.build(),
        compute,
        server,
        pool,
    }
}

fn range() -> Kubemacpool {
    Kubemacpool::new([0x02, 0xaa, 0, 0, 0, 0], [0x02, 0xaa, 0, 0, 0, 0x0f])
}

impl Env {
    async fn subnet(&self, t: &Tenant) {
        self.network
            .create_vpc(t, &VpcSpec::named("main"))
            .await
            .unwrap();
        self.network
            .create_subnet(
                t,
                &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
            )
            .await
            .unwrap();
    }

    async fn apply(&self, t: &Tenant, spec: &VmSpec) -> kubecloud_core::Result<()> {
        let attachments = VmAttachments::resolve(t, spec, Some(&self.network), None).await?;
        self.compute.apply_vm(t, spec, &attachments).await.map(drop)
    }

    async fn running(&self, t: &Tenant, vm: &str) -> kubecloud_core::Vm {
        let states = self.compute.watch_vm(t, vm).await.unwrap();
        wait::until(states, wait::vm_running(), TIMEOUT)
            .await
            .unwrap()
    }

    /// The MAC the stored VM's interface `iface` has.
    fn stored_mac(&self, t: &Tenant, vm: &str, iface: &str) -> Option<String> {
        let object = self
            .server
            .cluster()
            .get("kubevirt.io/v1", "VirtualMachine", Some(t.as_str()), vm)
            .unwrap();
        object["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == iface)
            .and_then(|i| i["macAddress"].as_str())
            .map(String::from)
    }

    /// Waits until the pool's allocations of `vm` are `want` (MAC, interface, committed).
    async fn allocations_of(&self, t: &Tenant, vm: &str, want: &[(&str, &str, bool)]) {
        let mut changes = self.pool.subscribe();
        let got = || -> Vec<(String, String, bool)> {
            self.pool
                .allocations()
                .into_iter()
                .filter(|a: &Allocation| a.namespace == t.as_str() && a.vm == vm)
                .map(|a| (a.mac, a.interface, a.committed))
                .collect()
        };
        let want: Vec<(String, String, bool)> = want
            .iter()
            .map(|(m, i, c)| (m.to_string(), i.to_string(), *c))
            .collect();
        tokio::time::timeout(TIMEOUT, async {
            while got() != want {
                changes.changed().await.expect("pool");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("allocations of {vm}: {:?}, want {want:?}", got()));
    }
}

fn vm(name: &str, interfaces: Vec<NetworkInterface>) -> VmSpec {
    VmSpec {
        name: name.into(),
        interfaces,
        ..VmSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macs_come_from_kubemacpool_and_stay_over_re_apply_and_live_migration() {
    let e = env(range(), true).await;
    assert!(e.network.capabilities().mac_pool);
    let t = Tenant::new("macs").unwrap();
    e.subnet(&t).await;
    // The tenant's namespace opted in to Kubemacpool's webhook.
    let ns = e
        .server
        .cluster()
        .get("v1", "Namespace", None, "macs")
        .unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["mutatevirtualmachines.kubemacpool.io"],
        "allocate"
    );
    assert_eq!(ns["metadata"]["labels"]["kubecloud.io/tenant"], "macs");

    let web = vm("web", vec![NetworkInterface::on_subnet("eth0", "front")]);
    e.apply(&t, &web).await.unwrap();
    let mac = e.stored_mac(&t, "web", "eth0").expect("Kubemacpool's MAC");
    assert!(e.pool.in_range(&mac), "{mac} is not from the range");
    let running = e.running(&t, "web").await;
    assert_eq!(running.status.interfaces[0].mac, Some(mac.parse().unwrap()));
    e.allocations_of(&t, "web", &[(&mac, "eth0", true)]).await;

    // Re-applying the VM (which names no MAC) keeps Kubemacpool's.
    e.apply(&t, &web).await.unwrap();
    assert_eq!(
        e.stored_mac(&t, "web", "eth0").as_deref(),
        Some(mac.as_str())
    );

    // A second VM gets another MAC of the range.
    let db = vm("db", vec![NetworkInterface::on_subnet("eth0", "front")]);
    e.apply(&t, &db).await.unwrap();
    let db_mac = e.stored_mac(&t, "db", "eth0").unwrap();
    assert!(
        e.pool.in_range(&db_mac) && db_mac != mac,
        "{db_mac} vs {mac}"
    );

    // Live migration: the target pod gets the VM's MAC.
    let node = running.status.node.clone().expect("a node");
    let states = e.compute.watch_vm(&t, "web").await.unwrap();
    e.compute
        .migrate(&t, "web", &MigrationTarget::AnyNode)
        .await
        .unwrap();
    let moved = wait::until(states, wait::vm_running_elsewhere(node), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(moved.status.interfaces[0].mac, Some(mac.parse().unwrap()));

    // Deleting the VM releases its MAC; the next VM does not get it back at once (the pool's
    // cursor moves on).
    e.compute.delete_vm(&t, "web").await.unwrap();
    e.allocations_of(&t, "web", &[]).await;
    let next = vm("next", vec![NetworkInterface::on_subnet("eth0", "front")]);
    e.apply(&t, &next).await.unwrap();
    let next_mac = e.stored_mac(&t, "next", "eth0").unwrap();
    assert!(next_mac != mac && next_mac != db_mac, "{next_mac}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_mac_is_kept_and_one_repeated_in_a_vm_is_refused_before_sending() {
    let e = env(range(), true).await;
    let t = Tenant::new("fixed").unwrap();
    e.subnet(&t).await;
    let fixed: MacAddress = "02:00:00:00:be:ef".parse().unwrap();
    let spec = vm(
        "web",
        vec![NetworkInterface::on_subnet("eth0", "front").with_mac(fixed)],
    );
    e.apply(&t, &spec).await.unwrap();
    assert_eq!(
        e.stored_mac(&t, "web", "eth0").and_then(|m| m.parse().ok()),
        Some(fixed)
    );
    let running = e.running(&t, "web").await;
    assert_eq!(running.status.interfaces[0].mac, Some(fixed));
    e.allocations_of(&t, "web", &[("02:00:00:00:be:ef", "eth0", true)])
        .await;

    let twice = vm(
        "twice",
        vec![
            NetworkInterface::on_subnet("eth0", "front").with_mac(fixed),
            NetworkInterface::on_subnet("eth1", "front").with_mac(fixed),
        ],
    );
    let err = e.apply(&t, &twice).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("interfaces[1].mac"), "{err:?}");
    assert!(
        e.server
            .cluster()
            .get_opt("kubevirt.io/v1", "VirtualMachine", Some("fixed"), "twice")
            .unwrap()
            .is_none(),
        "nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_the_namespace_does_not_opt_in_and_kubemacpool_leaves_the_vm_alone() {
    let e = env(range(), false).await;
    assert!(!e.network.capabilities().mac_pool);
    let t = Tenant::new("plain").unwrap();
    e.subnet(&t).await;
    e.apply(
        &t,
        &vm("web", vec![NetworkInterface::on_subnet("eth0", "front")]),
    )
    .await
    .unwrap();
    let ns = e
        .server
        .cluster()
        .get("v1", "Namespace", None, "plain")
        .unwrap();
    assert!(ns["metadata"]["labels"]["mutatevirtualmachines.kubemacpool.io"].is_null());
    assert_eq!(e.stored_mac(&t, "web", "eth0"), None);
    let running = e.running(&t, "web").await;
    let mac = running.status.interfaces[0].mac.expect("a MAC").to_string();
    assert!(!e.pool.in_range(&mac), "{mac} came from Kubemacpool");
    assert!(e.pool.allocations().is_empty());
}
