//! The end-to-end path through the `Compute` trait against the TestServer.

mod common;

use common::*;
use kubecloud_core::{
    AccessMode, BootDisk, ByteSize, CloudInit, Compute, MigrationTarget, NetworkInterface,
    PowerAction, Tenant, VmPhase, VmResources, VmSpec, VolumeMode, wait,
};
use kubecloud_testkit::Verb;

fn full_spec() -> VmSpec {
    VmSpec {
        name: "web-1".into(),
        resources: VmResources::Custom {
            cpu_cores: 2,
            memory: ByteSize::gib(4),
        },
        boot_disk: BootDisk::Import {
            url: "https://images.example.com/fedora.qcow2".into(),
            size: ByteSize::gib(10),
            tier: None,
            replicas: 1,
            access: AccessMode::ReadWriteMany,
            mode: VolumeMode::Block,
        },
        data_volumes: vec!["web-1-data".into()],
        interfaces: vec![
            NetworkInterface::on_subnet("eth0", "front")
                .with_fixed_ip("10.240.7.20".parse().unwrap())
                .with_mac("52:54:00:0c:0f:07".parse().unwrap()),
        ],
        cloud_init: Some(CloudInit {
            user_data: Some("#cloud-config\npassword: hunter2\n".into()),
            network_data: None,
            ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIsecret me@host".into()],
        }),
        labels: [("app".to_string(), "web".to_string())].into(),
        ..VmSpec::default()
    }
}

#[tokio::test]
async fn a_vm_is_created_started_stopped_migrated_and_deleted() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    seed_volume(&env.server, &t, "web-1-data", true);
    seed_subnet(&env.server, &t, "front", "10.240.7.0/24");
    let spec = full_spec();

    let vm = env
        .compute
        .apply_vm(&t, &spec, &common::attachments(&spec))
        .await
        .expect("apply");
    assert_eq!(vm.spec, spec);
    let running = wait_vm(&env.compute, &t, "web-1", wait::vm_running())
        .await
        .expect("running");
    let eth0 = &running.status.interfaces[0];
    assert_eq!(eth0.ip, Some("10.240.7.20".parse().unwrap()));
    assert_eq!(eth0.mac, Some("52:54:00:0c:0f:07".parse().unwrap()));
    let source = running.status.node.clone().expect("node");

    // Secrets hold the cloud-init, not the VM.
    let cluster = env.server.cluster();
    let vm_obj = cluster
        .get("kubevirt.io/v1", "VirtualMachine", Some("acme"), "web-1")
        .unwrap();
    assert!(!vm_obj.to_string().contains("hunter2"));
    let secret = cluster
        .get("v1", "Secret", Some("acme"), "web-1-cloudinit")
        .unwrap();
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "VirtualMachine"
    );
    cluster
        .get("v1", "Secret", Some("acme"), "web-1-ssh")
        .unwrap();
    // The launcher pod carries the VM's labels.
    let pods = cluster
        .list_selected("v1", "Pod", Some("acme"), "app=web")
        .unwrap();
    assert_eq!(pods.len(), 1);

    // get_vm returns the spec with its secrets.
    assert_eq!(env.compute.get_vm(&t, "web-1").await.unwrap().spec, spec);

    // Re-applying the same spec writes nothing.
    let writes = env.server.requests().writes().len();
    env.compute
        .apply_vm(&t, &spec, &common::attachments(&spec))
        .await
        .unwrap();
    assert_eq!(
        env.server.requests().writes().len(),
        writes,
        "no write for an unchanged spec"
    );

    // Stop and start through the subresources.
    env.compute
        .power(&t, "web-1", PowerAction::Stop)
        .await
        .unwrap();
    let stopped = wait_vm(&env.compute, &t, "web-1", wait::vm_phase(VmPhase::Stopped))
        .await
        .unwrap();
    assert_eq!(stopped.status.node, None);
    env.compute
        .power(&t, "web-1", PowerAction::Start)
        .await
        .unwrap();
    let running = wait_vm(&env.compute, &t, "web-1", wait::vm_running())
        .await
        .unwrap();
    let source = running.status.node.clone().unwrap_or(source);
    let subresource_puts = env
        .server
        .requests()
        .count_where(|r| r.group == "subresources.kubevirt.io" && r.verb == Verb::Update);
    assert_eq!(subresource_puts, 2);

    // Live migration keeps the addresses.
    assert!(
        env.compute
            .migration_blockers(&t, "web-1")
            .await
            .unwrap()
            .is_empty()
    );
    let migration = env
        .compute
        .migrate(&t, "web-1", &MigrationTarget::AnyNode)
        .await
        .expect("migrate");
    assert_eq!(migration.source_node, source);
    let moved = wait_vm(
        &env.compute,
        &t,
        "web-1",
        wait::vm_running_elsewhere(source.clone()),
    )
    .await
    .expect("migrated");
    assert_eq!(moved.status.interfaces, running.status.interfaces);

    // Migrate back to a named node.
    let err = env
        .compute
        .migrate(&t, "web-1", &MigrationTarget::Node("nope".into()))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let back = env
        .compute
        .migrate(&t, "web-1", &MigrationTarget::Node(source.clone()))
        .await
        .expect("migrate back");
    assert_eq!(back.target_node.as_deref(), Some(source.as_str()));
    let wanted = source.clone();
    wait_vm(
        &env.compute,
        &t,
        "web-1",
        wait::condition("on the source again", move |vm: &kubecloud_core::Vm| {
            if vm.status.phase == VmPhase::Running && vm.status.node.as_deref() == Some(&wanted) {
                wait::Check::Met
            } else {
                wait::Check::Pending
            }
        }),
    )
    .await
    .expect("back on the source");

    // Delete: the VM, its secrets and its DataVolume go; the data volume's claim stays.
    env.compute.delete_vm(&t, "web-1").await.unwrap();
    assert!(
        env.compute
            .get_vm(&t, "web-1")
            .await
            .unwrap_err()
            .is_not_found()
    );
    for (av, kind, name) in [
        ("v1", "Secret", "web-1-cloudinit"),
        ("v1", "Secret", "web-1-ssh"),
        ("cdi.kubevirt.io/v1beta1", "DataVolume", "web-1-boot"),
    ] {
        assert!(
            cluster
                .get_opt(av, kind, Some("acme"), name)
                .unwrap()
                .is_none(),
            "{kind} {name}"
        );
    }
    assert!(
        cluster
            .get_opt("v1", "PersistentVolumeClaim", Some("acme"), "web-1-data")
            .unwrap()
            .is_some()
    );
}
