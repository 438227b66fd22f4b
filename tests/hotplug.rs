//! Hot-plug across the whole stack (KubeVirt, LINSTOR, Kube-OVN and MetalLB on their doubles):
//! a LINSTOR-backed volume attached to and detached from a running VM live (the VM's instance
//! keeps its UID, so the VM never restarted), by a tenant spec's plan and apply and by the
//! facade's calls; what cannot change live waits for a restart and says so.
#![cfg(all(
    feature = "kubevirt",
    feature = "linstor",
    feature = "kubeovn",
    feature = "metallb"
))]

mod common {
    pub mod stack;
}

use std::time::Duration;

use common::stack::stack;
use kubecloud::{ApplyOptions, Error, NetworkInterface, ResourceKind, TenantSpec, VmResources};
use kubecloud_testkit::{Latency, TestServer};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

const SPEC: &str = r#"
vpcs: [{ name: main }]
subnets: [{ name: front, vpc: main, cidr: 10.61.0.0/24 }]
volumes:
  - { name: data, size: 1Gi, tier: fast, replicas: 2 }
vms:
  - name: app
    resources: { custom: { cpuCores: 1, memory: 1Gi } }
    bootDisk: { containerImage: { image: "quay.io/containerdisks/fedora:40" } }
    interfaces: [{ name: eth0, attachment: { subnet: { subnet: front } } }]
  - name: other
    resources: { custom: { cpuCores: 1, memory: 1Gi } }
    bootDisk: { containerImage: { image: "quay.io/containerdisks/fedora:40" } }
"#;

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: WAIT,
        ..ApplyOptions::default()
    }
}

fn vmi(server: &TestServer, ns: &str, name: &str) -> Value {
    server
        .cluster()
        .get("kubevirt.io/v1", "VirtualMachineInstance", Some(ns), name)
        .expect("the VM's instance")
}

fn volume_status<'a>(vmi: &'a Value, disk: &str) -> Option<&'a Value> {
    vmi["status"]["volumeStatus"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == disk)
}

fn attachment_pods(server: &TestServer, ns: &str) -> Vec<Value> {
    server
        .cluster()
        .list_selected("v1", "Pod", Some(ns), "kubevirt.io=hotplug-disk")
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linstor_volume_is_attached_and_detached_live_and_a_cpu_change_beyond_the_limit_waits_for_a_restart()
 {
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("hp-acme").unwrap();
    let ns = "hp-acme";
    let mut spec = TenantSpec::from_yaml(SPEC).unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let running = acme.vms().wait_running("app", WAIT).await.unwrap();
    acme.vms().wait_running("other", WAIT).await.unwrap();
    let before = vmi(&s.kube, ns, "app");
    let uid = before["metadata"]["uid"].as_str().unwrap().to_string();
    let eth0 = running.status.interfaces[0].clone();
    assert!(eth0.ip.is_some() && eth0.mac.is_some(), "{eth0:?}");

    // A tenant spec giving the running VM a data volume: a live attach in the plan and apply.
    spec.vms[0].data_volumes = vec!["data".into()];
    let plan = acme.plan(&spec).await.unwrap();
    let step = plan
        .steps
        .iter()
        .find(|st| st.kind == ResourceKind::Vm && st.name == "app")
        .expect("a step changing vm app");
    let live = step
        .live
        .as_ref()
        .expect("a vm change says what it does live");
    assert_eq!(live.attach_volumes, vec!["data".to_string()]);
    assert!(live.is_live(), "{live:?}");
    assert!(
        plan.to_string().contains("attach data live"),
        "the plan shows the live attach:\n{plan}"
    );
    acme.apply(&plan, options()).await.unwrap();
    let attached = acme
        .vms()
        .wait(
            "app",
            kubecloud::wait::vm_volumes_attached(vec!["data".into()], vec![]),
            WAIT,
        )
        .await
        .unwrap();
    assert!(attached.status.restart_required.is_empty());
    // On the double: the instance has the hot-pluggable volume, Ready, mounted by an attachment
    // pod on its node (not by the launcher pod), and is the same instance.
    let now = vmi(&s.kube, ns, "app");
    assert_eq!(
        now["metadata"]["uid"],
        uid.as_str(),
        "the VM never restarted"
    );
    let volume = now["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data-data")
        .expect("the instance has the volume");
    assert_eq!(volume["persistentVolumeClaim"]["hotpluggable"], true);
    let status = volume_status(&now, "data-data").expect("its volume status");
    assert_eq!(status["phase"], "Ready", "{status}");
    let pods = attachment_pods(&s.kube, ns);
    assert_eq!(pods.len(), 1, "one attachment pod: {pods:?}");
    assert_eq!(pods[0]["spec"]["nodeName"], now["status"]["nodeName"]);
    assert_eq!(
        attached.status.interfaces[0], eth0,
        "eth0 keeps its address"
    );
    assert!(
        acme.plan(&spec).await.unwrap().is_empty(),
        "applied as planned"
    );

    // The read-write-once volume cannot go to another VM while app has it.
    let err = acme
        .vms()
        .attach_volume("other", "data", WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "a RWO volume in use: {err:?}"
    );
    // Interfaces do not plug live on KubeVirt (yet): refused before anything is sent.
    let err = acme
        .vms()
        .add_interface("app", &NetworkInterface::on_subnet("eth1", "front"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");

    // Detached live through the facade: the volume, its status and its pod go.
    let detached = acme.vms().detach_volume("app", "data", WAIT).await.unwrap();
    assert!(detached.status.attached_volumes.is_empty());
    let now = vmi(&s.kube, ns, "app");
    assert_eq!(
        now["metadata"]["uid"],
        uid.as_str(),
        "the VM never restarted"
    );
    assert!(volume_status(&now, "data-data").is_none(), "{now}");
    assert!(attachment_pods(&s.kube, ns).is_empty());
    // Attached again through the facade.
    acme.vms().attach_volume("app", "data", WAIT).await.unwrap();

    // CPU beyond maxSockets (4 x 1): KubeVirt's RestartRequired, named by field.
    let mut vm = acme.vms().get("app").await.unwrap().spec;
    vm.resources = VmResources::Custom {
        cpu_cores: 5,
        memory: kubecloud::ByteSize::gib(1),
    };
    spec.vms[0] = vm.clone();
    let plan = acme.plan(&spec).await.unwrap();
    let live = plan.steps[0].live.clone().unwrap();
    assert_eq!(
        live.restart_required,
        vec!["resources.cpuCores".to_string()]
    );
    assert!(
        plan.to_string()
            .contains("restart required for resources.cpuCores")
    );
    acme.apply(&plan, options()).await.unwrap();
    let waiting = acme
        .vms()
        .wait(
            "app",
            kubecloud::wait::condition("restart required", |vm: &kubecloud::Vm| {
                if vm.status.restart_required.is_empty() {
                    kubecloud::wait::Check::Pending
                } else {
                    kubecloud::wait::Check::Met
                }
            }),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(waiting.status.restart_required, vec!["resources.cpuCores"]);
    let object = s
        .kube
        .cluster()
        .get("kubevirt.io/v1", "VirtualMachine", Some(ns), "app")
        .unwrap();
    assert!(
        object["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "RestartRequired" && c["status"] == "True"),
        "{object}"
    );
    assert_eq!(
        vmi(&s.kube, ns, "app")["spec"]["domain"]["cpu"]["sockets"],
        1
    );
    assert_eq!(vmi(&s.kube, ns, "app")["metadata"]["uid"], uid.as_str());

    // Two cores on a VM started with one are live: after a restart (5 sockets, at most 20).
    acme.vms().restart("app").await.unwrap();
    let restarted = acme
        .vms()
        .wait(
            "app",
            kubecloud::wait::condition("running again", |vm: &kubecloud::Vm| {
                match (vm.status.phase, vm.status.restart_required.is_empty()) {
                    (kubecloud::VmPhase::Running, true) => kubecloud::wait::Check::Met,
                    _ => kubecloud::wait::Check::Pending,
                }
            }),
            WAIT,
        )
        .await
        .unwrap();
    let after = vmi(&s.kube, ns, "app");
    assert_ne!(
        after["metadata"]["uid"],
        uid.as_str(),
        "a restart makes a new instance"
    );
    assert_eq!(after["spec"]["domain"]["cpu"]["sockets"], 5);
    assert_eq!(after["spec"]["domain"]["cpu"]["maxSockets"], 20);
    assert!(restarted.status.restart_required.is_empty());
}

/// On the in-memory cloud (which plugs interfaces live): an interface added to a running VM
/// keeps the addresses of the others, and goes again; the conveniences refuse what they cannot
/// do, naming why, before anything changes.
#[tokio::test]
async fn on_the_memory_cloud_interfaces_plug_live_and_bad_requests_are_refused() {
    let cloud = kubecloud::Cloud::in_memory();
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(SPEC).unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let vms = acme.vms();
    let running = vms.wait_running("app", WAIT).await.unwrap();
    let eth0 = running.status.interfaces[0].clone();

    let plugged = vms
        .add_interface("app", &NetworkInterface::on_subnet("eth1", "front"))
        .await
        .unwrap();
    assert_eq!(
        plugged.status.interfaces[0], eth0,
        "eth0 keeps its IP and MAC"
    );
    assert_eq!(plugged.status.interfaces.len(), 2);
    assert!(plugged.status.interfaces[1].ip.is_some());
    assert!(plugged.status.restart_required.is_empty());
    let err = vms
        .add_interface("app", &NetworkInterface::on_subnet("eth1", "front"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let err = vms
        .add_interface("app", &NetworkInterface::pod_network("pod"))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("interface.attachment"));
    let unplugged = vms.remove_interface("app", "eth1").await.unwrap();
    assert_eq!(unplugged.status.interfaces, vec![eth0]);

    // Unknown volume, RWO volume in use, stopped VM, a volume it does not have.
    let err = vms.attach_volume("app", "nope", WAIT).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    vms.attach_volume("app", "data", WAIT).await.unwrap();
    let err = vms.attach_volume("other", "data", WAIT).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let err = vms.detach_volume("other", "data", WAIT).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    vms.stop("other").await.unwrap();
    vms.wait(
        "other",
        kubecloud::wait::vm_phase(kubecloud::VmPhase::Stopped),
        WAIT,
    )
    .await
    .unwrap();
    let err = vms.detach_volume("other", "data", WAIT).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "a stopped VM: {err:?}"
    );
    let detached = vms.detach_volume("app", "data", WAIT).await.unwrap();
    assert!(detached.status.attached_volumes.is_empty());
}
