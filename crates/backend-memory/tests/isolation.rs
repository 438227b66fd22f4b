//! Tenant isolation, determinism and watches across the in-memory cloud.

use std::time::Duration;

use futures::StreamExt;
use kubecloud_core::{
    AddressBlock, AddressPoolSpec, BlockStorage, ByteSize, Compute, ExposureSpec, Labels,
    LoadBalancer, Network, NetworkInterface, ServicePort, SubnetSpec, Tenant, VmPhase, VmSpec,
    VolumeSpec, VpcSpec, wait,
};
use kubecloud_memory::MemoryCloud;

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

async fn setup(cloud: &MemoryCloud, t: &Tenant) {
    cloud.create_vpc(t, &VpcSpec::named("main")).await.unwrap();
    let subnet = SubnetSpec::new("front", "main", "10.0.0.0/24".parse().unwrap());
    cloud.create_subnet(t, &subnet).await.unwrap();
    cloud
        .create_volume(t, &VolumeSpec::blank("data", ByteSize::gib(1)))
        .await
        .unwrap();
    let vm = VmSpec {
        name: "web".into(),
        data_volumes: vec!["data".into()],
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
        ..VmSpec::default()
    };
    cloud.apply_vm_resolved(t, &vm).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_same_names_in_two_tenants_are_independent() {
    let cloud = MemoryCloud::new();
    let (a, b) = (tenant("a"), tenant("b"));
    setup(&cloud, &a).await;
    setup(&cloud, &b).await;
    let (va, vb) = (
        cloud.get_vm(&a, "web").await.unwrap(),
        cloud.get_vm(&b, "web").await.unwrap(),
    );
    assert_eq!(
        va.status.interfaces[0].ip, vb.status.interfaces[0].ip,
        "own IPAM each"
    );
    assert_ne!(
        va.status.interfaces[0].mac, vb.status.interfaces[0].mac,
        "MACs cloud-wide"
    );

    cloud.delete_vm(&a, "web").await.unwrap();
    cloud.delete_volume(&a, "data", false).await.unwrap();
    cloud.delete_subnet(&a, "front").await.unwrap();
    assert_eq!(
        cloud.get_vm(&b, "web").await.unwrap().status.interfaces,
        vb.status.interfaces
    );
    assert_eq!(cloud.get_subnet(&b, "front").await.unwrap().used, 1);
    assert!(cloud.get_volume(&b, "data").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_tenant_never_sees_changes_or_deletes_another_tenants_resources() {
    let cloud = MemoryCloud::new();
    let (a, b) = (tenant("a"), tenant("b"));
    setup(&cloud, &a).await;
    cloud
        .create_pool(
            &a,
            &AddressPoolSpec::l2(
                "public",
                vec![AddressBlock::Cidr("203.0.113.0/29".parse().unwrap())],
            ),
        )
        .await
        .unwrap();
    cloud
        .expose(
            &a,
            &ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(80)]),
        )
        .await
        .unwrap();

    assert!(cloud.list_vms(&b, &Labels::new()).await.unwrap().is_empty());
    assert!(
        cloud
            .list_volumes(&b, &Labels::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(cloud.list_vpcs(&b).await.unwrap().is_empty());
    assert!(cloud.list_subnets(&b).await.unwrap().is_empty());
    assert!(
        LoadBalancer::list_pools(&cloud, &b)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(cloud.list_exposures(&b).await.unwrap().is_empty());

    assert!(cloud.get_vm(&b, "web").await.unwrap_err().is_not_found());
    assert!(
        cloud
            .watch_vm(&b, "web")
            .await
            .err()
            .unwrap()
            .is_not_found()
    );
    assert!(
        cloud
            .watch_volume(&b, "data")
            .await
            .err()
            .unwrap()
            .is_not_found()
    );
    assert!(
        cloud
            .watch_exposure(&b, "web")
            .await
            .err()
            .unwrap()
            .is_not_found()
    );
    assert!(cloud.delete_vm(&b, "web").await.unwrap_err().is_not_found());
    assert!(
        cloud
            .delete_volume(&b, "data", true)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        cloud
            .delete_subnet(&b, "front")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        cloud
            .delete_pool(&b, "public")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(cloud.release(&b, "web").await.unwrap_err().is_not_found());
    let data = VmSpec {
        name: "thief".into(),
        data_volumes: vec!["data".into()],
        ..VmSpec::default()
    };
    assert!(
        cloud
            .apply_vm_resolved(&b, &data)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(cloud.get_vm(&a, "web").await.is_ok());
}

/// Runs the same calls on a fresh cloud and returns every choice it made.
async fn choices(seed: u64) -> Vec<String> {
    let cloud = MemoryCloud::builder().seed(seed).build();
    let t = tenant("acme");
    cloud.create_vpc(&t, &VpcSpec::named("main")).await.unwrap();
    let subnet = SubnetSpec::new("front", "main", "10.0.0.0/24".parse().unwrap());
    cloud.create_subnet(&t, &subnet).await.unwrap();
    let mut out = Vec::new();
    for i in 0..12 {
        let mut spec = VmSpec {
            name: format!("vm-{i}"),
            interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
            ..VmSpec::default()
        };
        if i % 3 == 0 {
            spec.placement.spread_group = Some("g".into());
        }
        cloud.apply_vm_resolved(&t, &spec).await.unwrap();
        if i % 4 == 1 {
            cloud.delete_vm(&t, &format!("vm-{}", i - 1)).await.unwrap();
        }
    }
    for vm in cloud.list_vms(&t, &Labels::new()).await.unwrap() {
        let vm = wait::until(
            cloud.watch_vm(&t, vm.name()).await.unwrap(),
            wait::vm_phase(VmPhase::Running),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let iface = &vm.status.interfaces[0];
        out.push(format!(
            "{} {} {} {}",
            vm.name(),
            vm.status.node.as_deref().unwrap(),
            iface.ip.unwrap(),
            iface.mac.unwrap()
        ));
    }
    out
}

#[tokio::test]
async fn the_same_seed_and_calls_make_the_same_choices() {
    let (a, b) = (choices(7).await, choices(7).await);
    assert_eq!(a, b);
    assert_eq!(a.len(), 9);
    let other = choices(8).await;
    assert_ne!(a, other, "another seed, other MACs");
}

#[tokio::test(start_paused = true)]
async fn a_watch_yields_the_current_state_then_every_change_then_ends() {
    let cloud = MemoryCloud::new();
    let t = tenant("acme");
    cloud
        .apply_vm_resolved(
            &t,
            &VmSpec {
                name: "web".into(),
                ..VmSpec::default()
            },
        )
        .await
        .unwrap();
    let mut early = cloud.watch_vm(&t, "web").await.unwrap();
    let mut phases = Vec::new();
    while let Some(vm) = early.next().await {
        phases.push(vm.unwrap().status.phase);
        if phases.last() == Some(&VmPhase::Running) {
            break;
        }
    }
    assert_eq!(phases, vec![VmPhase::Starting, VmPhase::Running]);
    let late = cloud.watch_vm(&t, "web").await.unwrap();
    cloud.delete_vm(&t, "web").await.unwrap();
    let rest: Vec<_> = late.map(|v| v.unwrap().status.phase).collect().await;
    assert_eq!(rest, vec![VmPhase::Running]);
    assert!(early.next().await.is_none(), "ended by the delete");
}

#[tokio::test]
async fn clones_of_a_cloud_share_it_and_steps_survive_a_new_runtime() {
    let cloud = MemoryCloud::new();
    let t = tenant("acme");
    let copy = cloud.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = VmSpec {
        name: "web".into(),
        ..VmSpec::default()
    };
    // Created on another runtime that then goes away before the VM runs.
    std::thread::spawn({
        let copy = copy.clone();
        let t = t.clone();
        move || {
            runtime.block_on(copy.apply_vm_resolved(&t, &spec)).unwrap();
            drop(runtime);
        }
    })
    .join()
    .unwrap();
    let vm = wait::until(
        cloud.watch_vm(&t, "web").await.unwrap(),
        wait::vm_running(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(vm.status.phase, VmPhase::Running);
}
