//! Every wait ends by its timeout, and a tenant's `destroy` or `apply` by one deadline for the
//! whole operation, with `Error::Timeout` naming what was awaited and the last state seen; on
//! the whole stack (KubeVirt + CDI, LINSTOR, Kube-OVN, MetalLB on the test doubles).
//!
//! The timeouts here are short real ones: they are bounds, not sleeps. Each operation runs under
//! an outer `tokio::time::timeout` a few times longer, so a wait that ignored its timeout fails
//! the test instead of hanging it.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::time::Duration;

use common::stack::{Stack, stack_from};
use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kubecloud::{
    Action, AddressBlock, AddressPoolSpec, ApplyOptions, BootDisk, ByteSize, Cloud, Error,
    ExposureSpec, IpReservationSpec, ResourceKind, ServicePort, SubnetSpec, TenantSpec, VmSpec,
    VolumeSpec, VpcSpec,
};
use kubecloud_testkit::{FakeCloud, PVC_PROTECTION};
use serde_json::json;

/// The timeout under test.
const SHORT: Duration = Duration::from_secs(2);
/// How long an operation with the timeout [`SHORT`] may take before the test calls it hung.
const HUNG: Duration = Duration::from_secs(20);

fn options(timeout: Duration) -> ApplyOptions {
    ApplyOptions {
        timeout,
        ..ApplyOptions::default()
    }
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HUNG, f).await.unwrap_or_else(|_| {
        panic!("{what} had not returned after {HUNG:?}: its timeout is ignored")
    })
}

/// The stack with kube-controller-manager's PVC protection modelled.
/// The parts of a timeout; any other error fails the test, naming it.
struct TimedOut<'a> {
    kind: ResourceKind,
    name: &'a str,
    waiting_for: &'a str,
    after: Duration,
    last_seen: &'a str,
}

fn timed_out(err: &Error) -> TimedOut<'_> {
    match err {
        Error::Timeout {
            kind,
            name,
            waiting_for,
            after,
            last_seen,
        } => TimedOut {
            kind: *kind,
            name,
            waiting_for,
            after: *after,
            last_seen,
        },
        other => panic!("expected a timeout, got {other}"),
    }
}

async fn protected_stack() -> Stack {
    // PVC protection is always on (admission adds the finalizer to every claim).
    stack_from(FakeCloud::builder()).await
}

/// A pod nothing in kubecloud knows about (a backup job, say) that mounts the claim `claim` of
/// tenant `acme`, scheduled on a node: the claim's protection finalizer stays while it exists.
fn backup_pod(claim: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "backup", "namespace": "acme"},
        "spec": {
            "nodeName": FakeCloud::NODES[0],
            "containers": [{"name": "restic", "image": "restic/restic:0.17"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    })
}

/// Waits (on a watch) until the claim carries the protection finalizer.
async fn until_protected(s: &Stack, claim: &str) {
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(s.kube.client(), "acme");
    let protected =
        kube::runtime::wait::await_condition(claims, claim, |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.metadata.finalizers.as_ref())
                .is_some_and(|f| f.iter().any(|f| f == PVC_PROTECTION))
        });
    bounded("the protection finalizer", protected)
        .await
        .expect("watch of the claim");
}

#[tokio::test]
async fn destroy_ends_by_its_timeout_naming_the_claim_and_the_finalizer_that_kept_it() {
    let s = protected_stack().await;
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = TenantSpec {
        volumes: vec![VolumeSpec::blank("web-root", ByteSize::gib(1))],
        ..TenantSpec::default()
    };
    let plan = acme.plan(&spec).await.unwrap();
    bounded("apply", acme.apply(&plan, options(HUNG)))
        .await
        .unwrap();
    s.kube.cluster().create(backup_pod("web-root")).unwrap();
    until_protected(&s, "web-root").await;

    let started = tokio::time::Instant::now();
    let err = bounded("destroy", acme.destroy(options(SHORT)))
        .await
        .expect_err("the claim cannot go while the pod uses it");
    let took = started.elapsed();
    let t = timed_out(&err);
    assert_eq!(
        (t.kind, t.name),
        (ResourceKind::Volume, "web-root"),
        "{err}"
    );
    assert_eq!(t.waiting_for, "gone", "{err}");
    assert_eq!(t.after, SHORT, "the destroy's own timeout: {err}");
    assert!(
        t.last_seen.contains("PersistentVolumeClaim acme/web-root")
            && t.last_seen.contains("deletionTimestamp set")
            && t.last_seen.contains(PVC_PROTECTION),
        "the last state names the claim and its finalizer: {err}"
    );
    // Loosely: ended by its deadline (plus the time to answer), not a backend's 5 minutes.
    assert!(
        took < SHORT * 4,
        "destroy took {took:?} with a timeout of {SHORT:?}"
    );

    // Once the pod is gone the finalizer goes (as kube-controller-manager's PVC protection
    // controller removes it), and destroying again finishes what was left.
    s.kube
        .cluster()
        .delete("v1", "Pod", Some("acme"), "backup")
        .unwrap();
    bounded("destroy", acme.destroy(options(HUNG)))
        .await
        .unwrap();
    assert!(
        s.kube
            .cluster()
            .get_opt("v1", "PersistentVolumeClaim", Some("acme"), "web-root")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn destroy_of_a_vm_and_its_disk_waits_until_the_launcher_pod_no_longer_holds_the_claim() {
    let s = protected_stack().await;
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new(
            "web",
            "main",
            "10.0.0.0/24".parse().unwrap(),
        )],
        volumes: vec![VolumeSpec::blank("web-root", ByteSize::gib(1))],
        vms: vec![VmSpec {
            name: "web".into(),
            boot_disk: BootDisk::Volume {
                volume: "web-root".into(),
            },
            interfaces: vec![kubecloud::NetworkInterface::on_subnet("eth0", "web")],
            ..VmSpec::default()
        }],
        ..TenantSpec::default()
    };
    let plan = acme.plan(&spec).await.unwrap();
    bounded("apply", acme.apply(&plan, options(HUNG)))
        .await
        .unwrap();
    until_protected(&s, "web-root").await;
    let launchers = s
        .kube
        .cluster()
        .list_selected("v1", "Pod", Some("acme"), "kubevirt.io=virt-launcher")
        .unwrap();
    assert!(
        launchers.iter().any(|p| p["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "web-root")),
        "the launcher pod mounts the claim: {launchers:#?}"
    );
    // The VM (and its launcher pod) goes first, then the claim can.
    bounded("destroy", acme.destroy(options(HUNG)))
        .await
        .unwrap();
    let cluster = s.kube.cluster();
    assert!(
        cluster
            .get_opt("v1", "PersistentVolumeClaim", Some("acme"), "web-root")
            .unwrap()
            .is_none()
    );
    assert!(cluster.list("v1", "Pod", Some("acme")).unwrap().is_empty());
}

#[tokio::test]
async fn an_apply_ends_by_one_deadline_whatever_the_backends_own_timeouts() {
    let s = stack_from(FakeCloud::builder()).await;
    let acme = s.cloud.tenant("acme").unwrap();
    // Kube-OVN never reports the VPC ready; the network backend would wait 60 s for it.
    s.kube.controller("kube-ovn-controller").unwrap().pause();
    let spec = TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new(
            "web",
            "main",
            "10.0.0.0/24".parse().unwrap(),
        )],
        ..TenantSpec::default()
    };
    let plan = acme.plan(&spec).await.unwrap();
    let report = bounded(
        "apply",
        acme.apply_with_progress(&plan, options(SHORT), &|_| {}),
    )
    .await;
    let (_, kind, name, reason) = report.failed.first().expect("a failed step");
    assert_eq!((*kind, name.as_str()), (ResourceKind::Vpc, "main"));
    assert!(
        reason.starts_with("timed out after 2s waiting for vpc \"main\""),
        "{reason}"
    );
    assert!(
        report
            .not_started
            .iter()
            .any(|(_, kind, _)| *kind == ResourceKind::Subnet),
        "{report:?}"
    );
}

#[tokio::test]
async fn an_apply_without_waiting_sends_everything_while_kube_ovn_has_not_set_up_the_network() {
    let s = stack_from(FakeCloud::builder()).await;
    let acme = s.cloud.tenant("acme").unwrap();
    // Kube-OVN never reports the VPC or the subnet ready: an apply that does not wait must not
    // wait for it either (the test above shows the same apply waiting runs into its deadline).
    s.kube.controller("kube-ovn-controller").unwrap().pause();
    let spec = common::stack::tenant_spec(3, 3);
    let plan = acme.plan(&spec).await.unwrap();
    let options = ApplyOptions {
        wait: false,
        ..options(SHORT)
    };
    let report = bounded("apply", acme.apply_with_progress(&plan, options, &|_| {})).await;
    assert!(
        report.failed.is_empty() && report.not_started.is_empty(),
        "{report:?}"
    );
    let objects = common::stack::objects_of(&s.kube, "acme");
    let count = common::stack::count_by_kind(&objects);
    assert_eq!(count.get("Vpc"), Some(&1), "{count:?}");
    assert_eq!(count.get("Subnet"), Some(&1), "{count:?}");
    assert_eq!(count.get("VirtualMachine"), Some(&3), "{count:?}");
    // Sent, not ready: the network lists them as Kube-OVN left them.
    let vpc = acme.network().get_vpc("main").await.unwrap();
    assert!(!vpc.ready, "{vpc:?}");
    let subnet = acme.network().get_subnet("web").await.unwrap();
    assert!(!subnet.ready, "{subnet:?}");

    // Once Kube-OVN runs it takes what was sent in that order: the subnet becomes ready.
    s.kube.controller("kube-ovn-controller").unwrap().resume();
    let ready = kubecloud::wait::until(
        acme.network().watch_subnet("web").await.unwrap(),
        kubecloud::wait::subnet_ready(),
        HUNG,
    )
    .await;
    assert!(ready.is_ok(), "{ready:?}");
}

/// The steps of `plan` that wait even when applied without waiting, sorted.
fn kept(plan: &kubecloud::Plan) -> Vec<(Action, ResourceKind, String)> {
    let mut kept: Vec<_> = plan
        .kept_waits()
        .map(|(step, _)| (step.action, step.kind, step.name.clone()))
        .collect();
    kept.sort();
    kept
}

#[tokio::test]
async fn a_plan_reports_the_steps_that_wait_even_when_the_apply_does_not() {
    let s = stack_from(FakeCloud::builder()).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let mut spec = common::stack::tenant_spec(2, 2);
    spec.ip_reservations
        .push(IpReservationSpec::new("db", "web").with_ip("10.0.200.1".parse().unwrap()));
    let plan = acme.plan(&spec).await.unwrap();
    // Creating, only the reservation waits (for the address and MAC Kube-OVN allocates);
    // the VPC, the subnet, the VMs and the exposures are only sent.
    assert_eq!(
        kept(&plan),
        [(Action::Create, ResourceKind::IpReservation, "db".into())]
    );
    let json = serde_json::to_value(&plan).unwrap();
    let reservation = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "ip-reservation")
        .unwrap();
    assert!(
        reservation["kept_wait"]["until"]
            .as_str()
            .is_some_and(|u| u.contains("address and MAC")),
        "{reservation}"
    );
    bounded("apply", acme.apply(&plan, options(HUNG)))
        .await
        .unwrap();

    // Deleting, the VMs (KubeVirt waits until their disks are gone), the reservation and the
    // subnet (Kube-OVN frees the addresses) wait; the VPC, the pool and the exposures do not.
    let destroy = acme.plan(&TenantSpec::default()).await.unwrap();
    assert_eq!(
        kept(&destroy),
        [
            (Action::Delete, ResourceKind::Vm, "vm-0".into()),
            (Action::Delete, ResourceKind::Vm, "vm-1".into()),
            (Action::Delete, ResourceKind::Subnet, "web".into()),
            (Action::Delete, ResourceKind::IpReservation, "db".into()),
        ]
    );

    // The memory cloud keeps no wait: the same spec plans without any.
    let memory = Cloud::in_memory().tenant("acme").unwrap();
    assert!(kept(&memory.plan(&spec).await.unwrap()).is_empty());
}

#[tokio::test]
async fn a_wait_on_a_vm_ends_with_the_state_last_seen() {
    let s = stack_from(FakeCloud::builder()).await;
    let acme = s.cloud.tenant("acme").unwrap();
    s.kube.controller("virt-controller").unwrap().pause();
    let vm = VmSpec {
        name: "web".into(),
        boot_disk: BootDisk::ContainerImage {
            image: "quay.io/containerdisks/fedora:40".into(),
        },
        ..VmSpec::default()
    };
    bounded("create", acme.vms().apply(&vm)).await.unwrap();
    let err = bounded("wait", acme.vms().wait_running("web", SHORT))
        .await
        .unwrap_err();
    let now = acme
        .vms()
        .get("web")
        .await
        .unwrap()
        .status
        .phase
        .to_string();
    let t = timed_out(&err);
    assert_eq!((t.kind, t.name), (ResourceKind::Vm, "web"));
    assert_eq!((t.waiting_for, t.after), ("vm running", SHORT));
    assert_eq!(t.last_seen, now, "the state the VM is in");
}

#[tokio::test]
async fn a_wait_on_a_volume_ends_with_the_state_last_seen() {
    let s = stack_from(FakeCloud::builder()).await;
    let acme = s.cloud.tenant("acme").unwrap();
    s.kube.controller("linstor-csi").unwrap().pause();
    bounded(
        "create",
        acme.volumes()
            .create(&VolumeSpec::blank("data", ByteSize::gib(1))),
    )
    .await
    .unwrap();
    let err = bounded("wait", acme.volumes().wait_ready("data", SHORT))
        .await
        .unwrap_err();
    let now = acme.volumes().get("data").await.unwrap().status.phase;
    let t = timed_out(&err);
    assert_eq!((t.kind, t.name), (ResourceKind::Volume, "data"));
    assert_eq!(t.waiting_for, "volume ready");
    assert_eq!(t.last_seen, now.to_string(), "the state the volume is in");
}

#[tokio::test]
async fn a_wait_on_an_exposure_ends_with_the_state_last_seen() {
    let s = stack_from(FakeCloud::builder()).await;
    let acme = s.cloud.tenant("acme").unwrap();
    s.kube.controller("metallb-controller").unwrap().pause();
    let lb = acme.load_balancer();
    bounded(
        "pool",
        lb.create_pool(&AddressPoolSpec::l2(
            "public",
            vec![AddressBlock::Cidr("100.64.0.0/28".parse().unwrap())],
        )),
    )
    .await
    .unwrap();
    bounded(
        "expose",
        lb.expose(&ExposureSpec::new(
            "web",
            [("app", "web")],
            vec![ServicePort::tcp(443)],
        )),
    )
    .await
    .unwrap();
    let err = bounded("wait", lb.wait_assigned("web", SHORT))
        .await
        .unwrap_err();
    let t = timed_out(&err);
    assert_eq!((t.kind, t.name), (ResourceKind::Exposure, "web"));
    assert_eq!(t.waiting_for, "external address assigned");
    assert_eq!(t.last_seen, "pending");
    // The state it reported is the one it is in: still no address.
    let states = lb.watch("web").await.unwrap();
    let first = states.boxed().next().await.unwrap().unwrap();
    assert!(first.ip.is_none());
}
