//! What crosses the wire: nothing for bad input, one apply per object, no polling, faults
//! retried or resolved, tenants kept apart, objects not ours left alone.

mod common;

use common::*;
use kubecloud_core::{
    BootDisk, Compute, MigrationBlocker, NetworkInterface, PodBinding, PowerAction, Tenant,
    VmPhase, VmSpec, wait,
};
use kubecloud_testkit::{Fault, Verb};
use serde_json::json;

fn spec(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        ..VmSpec::default()
    }
}

#[tokio::test]
async fn bad_input_sends_nothing() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    let before = env.server.requests().total();
    let err = env
        .compute
        .apply_vm(
            &t,
            &spec("Bad_Name"),
            &common::attachments(&spec("Bad_Name")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    assert_eq!(env.server.requests().total(), before, "nothing sent");
}

#[tokio::test]
async fn specs_are_listed_from_the_vms_metadata_alone() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    let mut labelled = spec("b");
    labelled.labels.insert("app".into(), "web".into());
    env.compute
        .apply_vm(&t, &spec("a"), &common::attachments(&spec("a")))
        .await
        .unwrap();
    env.compute
        .apply_vm(&t, &labelled, &common::attachments(&labelled))
        .await
        .unwrap();
    let listed = env.compute.list_vms(&t, &Default::default()).await.unwrap();
    let before = env.server.requests().all().len();
    let specs = env
        .compute
        .list_vm_specs(&t, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        specs,
        listed.into_iter().map(|vm| vm.spec).collect::<Vec<_>>()
    );
    // One list of VMs, as metadata (the spec is an annotation): no instances, no imports, no
    // Secrets (no VM has cloud-init).
    let sent: Vec<(Verb, String, bool)> = env.server.requests().all()[before..]
        .iter()
        .filter(|r| r.verb != Verb::Watch)
        .map(|r| {
            let metadata_only = r
                .accept
                .as_deref()
                .is_some_and(|a| a.contains("as=PartialObjectMetadataList"));
            (r.verb, r.resource.clone(), metadata_only)
        })
        .collect();
    assert_eq!(sent, [(Verb::List, "virtualmachines".to_string(), true)]);
}

#[tokio::test]
async fn one_apply_per_object_and_waiting_does_not_poll() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    env.compute
        .apply_vm(&t, &spec("a"), &common::attachments(&spec("a")))
        .await
        .unwrap();
    let requests = env.server.requests();
    assert_eq!(requests.count(Verb::Apply, "virtualmachines"), 1);
    let gets = requests.count(Verb::Get, "virtualmachines");
    let vmi_gets = requests.count(Verb::Get, "virtualmachineinstances");
    wait_vm(&env.compute, &t, "a", wait::vm_running())
        .await
        .unwrap();
    assert_eq!(
        requests.count(Verb::Get, "virtualmachines"),
        gets,
        "no read: the watch's first state comes from the shared watch of the tenant's VMs"
    );
    assert_eq!(
        requests.count(Verb::Watch, "virtualmachines"),
        1,
        "one watch of the kind"
    );
    assert_eq!(
        requests.count(Verb::Get, "virtualmachineinstances"),
        vmi_gets,
        "the instance is watched, not read"
    );
}

#[tokio::test]
async fn server_errors_and_throttling_on_writes_are_retried() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    let faults = env.server.faults();
    faults.inject(Fault::status(500).on_verb(Verb::Apply).times(2));
    faults.inject(
        Fault::too_many_requests(0)
            .on_verb(Verb::Update)
            .on_resource("virtualmachines")
            .times(1),
    );
    env.compute
        .apply_vm(&t, &spec("a"), &common::attachments(&spec("a")))
        .await
        .unwrap();
    wait_vm(&env.compute, &t, "a", wait::vm_running())
        .await
        .unwrap();
    env.compute
        .power(&t, "a", PowerAction::Stop)
        .await
        .expect("stop despite a 429");
    wait_vm(&env.compute, &t, "a", wait::vm_phase(VmPhase::Stopped))
        .await
        .unwrap();
    assert_eq!(
        env.server
            .cluster()
            .list("kubevirt.io/v1", "VirtualMachine", Some("acme"))
            .unwrap()
            .len(),
        1,
        "nothing duplicated"
    );
}

#[tokio::test]
async fn a_conflict_on_apply_is_resolved() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    env.server.faults().inject(
        Fault::status(409)
            .on_verb(Verb::Apply)
            .on_resource("virtualmachines")
            .times(1),
    );
    let vm = env
        .compute
        .apply_vm(&t, &spec("a"), &common::attachments(&spec("a")))
        .await
        .unwrap();
    assert_eq!(vm.spec, spec("a"));
}

#[tokio::test]
async fn a_dropped_watch_resumes() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    env.compute
        .apply_vm(&t, &spec("a"), &common::attachments(&spec("a")))
        .await
        .unwrap();
    env.server
        .faults()
        .inject(Fault::drop_connection().on_verb(Verb::Watch).times(2));
    let vm = wait_vm(&env.compute, &t, "a", wait::vm_running())
        .await
        .expect("the watch resumed");
    assert!(vm.status.node.is_some());
}

#[tokio::test]
async fn every_blocker_is_listed() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    seed_volume(&env.server, &t, "root", false);
    seed_volume(&env.server, &t, "data", false);
    let vm = VmSpec {
        boot_disk: BootDisk::Volume {
            volume: "root".into(),
        },
        data_volumes: vec!["data".into()],
        interfaces: vec![NetworkInterface {
            attachment: kubecloud_core::Attachment::PodNetwork {
                binding: PodBinding::Bridge,
            },
            ..NetworkInterface::pod_network("eth0")
        }],
        run_strategy: kubecloud_core::RunStrategy::Halted,
        ..spec("pinned")
    };
    env.compute
        .apply_vm(&t, &vm, &common::attachments(&vm))
        .await
        .unwrap();
    let blockers = env.compute.migration_blockers(&t, "pinned").await.unwrap();
    for expected in [
        MigrationBlocker::VolumeNotShared {
            volume: "root".into(),
        },
        MigrationBlocker::VolumeNotShared {
            volume: "data".into(),
        },
        MigrationBlocker::BridgeOnPodNetwork {
            interface: "eth0".into(),
        },
    ] {
        assert!(blockers.contains(&expected), "{expected:?} in {blockers:?}");
    }
    assert!(
        blockers
            .iter()
            .any(|b| matches!(b, MigrationBlocker::NotRunning { .. }))
    );
}

#[tokio::test]
async fn the_simulated_kubevirt_refuses_a_migration_of_rwo_volumes() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    seed_volume(&env.server, &t, "root", false);
    let vm = VmSpec {
        boot_disk: BootDisk::Volume {
            volume: "root".into(),
        },
        ..spec("local")
    };
    env.compute
        .apply_vm(&t, &vm, &common::attachments(&vm))
        .await
        .unwrap();
    wait_vm(&env.compute, &t, "local", wait::vm_running())
        .await
        .unwrap();
    // Bypassing the preflight, as another client could: KubeVirt refuses.
    let cluster = env.server.cluster();
    cluster
        .create(
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": "m1", "namespace": "acme"}, "spec": {"vmiName": "local"}}),
        )
        .unwrap();
    let gvk =
        kube::core::GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstanceMigration");
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, "virtualmachineinstancemigrations");
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(env.server.client(), "acme", &ar);
    let failed = |m: Option<&kube::api::DynamicObject>| {
        m.is_some_and(|m| m.data["status"]["phase"] == "Failed")
    };
    let m = tokio::time::timeout(
        TIMEOUT,
        kube::runtime::wait::await_condition(api, "m1", failed),
    )
    .await
    .expect("in time")
    .expect("watch")
    .expect("exists");
    let message = m.data["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("root") && message.contains("ReadWriteMany"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failed_migration_is_reported() {
    let env = env().await;
    let t = Tenant::new("acme").unwrap();
    seed_volume(&env.server, &t, "root", true);
    let vm = VmSpec {
        boot_disk: BootDisk::Volume {
            volume: "root".into(),
        },
        ..spec("mover")
    };
    env.compute
        .apply_vm(&t, &vm, &common::attachments(&vm))
        .await
        .unwrap();
    let running = wait_vm(&env.compute, &t, "mover", wait::vm_running())
        .await
        .unwrap();
    env.knobs.fail_next_migration(1);
    env.compute
        .migrate(&t, "mover", &kubecloud_core::MigrationTarget::AnyNode)
        .await
        .unwrap();
    let err = wait_vm(
        &env.compute,
        &t,
        "mover",
        wait::vm_running_elsewhere(running.status.node.clone().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("migration failed"), "{err}");
    let vm = env.compute.get_vm(&t, "mover").await.unwrap();
    assert_eq!(vm.status.node, running.status.node, "it stays where it was");
}

#[tokio::test]
async fn tenants_and_foreign_objects_are_kept_apart() {
    let env = env().await;
    let acme = Tenant::new("acme").unwrap();
    let globex = Tenant::new("globex").unwrap();
    env.compute
        .apply_vm(&acme, &spec("a"), &common::attachments(&spec("a")))
        .await
        .unwrap();
    assert!(
        env.compute
            .get_vm(&globex, "a")
            .await
            .unwrap_err()
            .is_not_found()
    );
    // A VM nobody made through kubecloud is not ours: not listed, not deleted.
    env.server
        .seed_yaml("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: manual, namespace: acme}\nspec: {runStrategy: Halted, template: {spec: {domain: {devices: {}, memory: {guest: 1Gi}}}}}\n")
        .unwrap();
    assert!(
        env.compute
            .delete_vm(&acme, "manual")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let names: Vec<String> = env
        .compute
        .list_vms(&acme, &Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.spec.name)
        .collect();
    assert_eq!(names, ["a"]);
    assert!(
        env.server
            .cluster()
            .get_opt("kubevirt.io/v1", "VirtualMachine", Some("acme"), "manual")
            .unwrap()
            .is_some()
    );
}
