//! Reliability of tenants as one unit on the whole stack (KubeVirt + CDI, LINSTOR, Kube-OVN,
//! MetalLB on the test doubles): an apply under injected faults ends exactly as specified and
//! `destroy` then leaves nothing; an apply interrupted anywhere converges when applied again,
//! with nothing duplicated or leaked; invalid specs are refused naming the field and send
//! nothing; one tenant's handle never touches another's resources.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::collections::BTreeMap;
use std::time::Duration;

use common::stack::{
    Stack, cloud_on, count_by_kind, left_behind, objects_of, stack, tenant_spec, vm_ip,
};
use kubecloud::{ApplyOptions, TenantHandle, TenantSpec};
use kubecloud_testkit::{Fault, Latency, Verb};

/// VMs of the tenant applied under faults. The issue asks for 200; see the report of issue 8
/// for what that takes on the doubles (the test is kept well under a minute).
const VMS_UNDER_FAULTS: usize = 200;
/// VMs of the tenant interrupted at every request.
const VMS_INTERRUPTED: usize = 3;
/// Rounds of plan + apply allowed to converge while faults persist.
const ROUNDS: usize = 12;

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: Duration::from_secs(60),
        concurrency: 16,
        // Destroys here are applies of an empty spec, interrupted and resumed.
        allow_delete_all: true,
        ..ApplyOptions::default()
    }
}

/// 500, 503, 429 with Retry-After, 409 and dropped connections (watches too) on ~20% of the
/// requests, drawn from the server's seeded generator; the first eight watches are cut a second
/// after they start (the watches resume from where they were).
fn inject_faults(s: &Stack) {
    let faults = s.kube.faults();
    faults.inject(Fault::cut_watch(Duration::from_secs(1)).times(8));
    faults.inject(Fault::status(500).rate(0.05));
    faults.inject(Fault::status(503).rate(0.05));
    faults.inject(Fault::too_many_requests(1).rate(0.02));
    faults.inject(Fault::status(409).rate(0.05));
    faults.inject(Fault::drop_connection().rate(0.05));
}

/// Plans and applies until the plan is empty; errors (faults) are tolerated, up to `ROUNDS`.
/// Returns the number of rounds that applied something.
async fn converge(acme: &TenantHandle, spec: &TenantSpec) -> usize {
    let mut last = String::new();
    for round in 0..ROUNDS {
        match acme.plan(spec).await {
            Ok(plan) if plan.is_empty() => return round,
            Ok(plan) => {
                let report = acme.apply_with_progress(&plan, options(), &|_| {}).await;
                if let Some(f) = report.failed.first() {
                    last = format!("{f:?}");
                }
            }
            Err(e) => last = e.to_string(),
        }
    }
    panic!("did not converge in {ROUNDS} rounds; last failure: {last}");
}

/// What the double holds of the tenant, by kind, without Events (their number depends on
/// timing, e.g. a scheduling retry).
fn kinds_of(s: &Stack, tenant: &str) -> BTreeMap<String, usize> {
    let mut kinds = count_by_kind(&objects_of(&s.kube, tenant));
    kinds.remove("Event");
    kinds
}

/// The tenant's objects are exactly what `spec` of `vms` VMs asks for: one VirtualMachine,
/// DataVolume, PVC, PV, instance, launcher pod and Kube-OVN `IP` per VM, one Service per
/// exposure.
fn assert_exact(s: &Stack, vms: usize, exposures: usize) {
    let kinds = kinds_of(s, "acme");
    let expected: BTreeMap<String, usize> = [
        ("DataVolume", vms),
        ("IP", vms),
        ("IPAddressPool", 1),
        ("L2Advertisement", 1),
        ("Namespace", 1),
        ("PersistentVolume", vms),
        ("PersistentVolumeClaim", vms),
        ("Pod", vms),
        ("Service", exposures),
        ("Subnet", 1),
        ("VirtualMachine", vms),
        ("VirtualMachineInstance", vms),
        ("Vpc", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds, expected, "nothing missing, nothing duplicated");
    // Every VM on its fixed address.
    let cluster = s.kube.cluster();
    for i in 0..vms {
        let vmi = cluster
            .get(
                "kubevirt.io/v1",
                "VirtualMachineInstance",
                Some("acme"),
                &format!("vm-{i}"),
            )
            .unwrap();
        assert_eq!(
            vmi["status"]["interfaces"][0]["ipAddress"],
            vm_ip(i).to_string(),
            "vm-{i}'s address"
        );
    }
}

/// Directly after `destroy` (or the apply of an empty spec) returned: nothing of the tenant but
/// its namespace (and Events), no LINSTOR volume.
fn assert_nothing_left(s: &Stack) {
    let left = left_behind(&s.kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        s.linstor.resource_definitions().is_empty(),
        "LINSTOR volumes left behind: {:?}",
        s.linstor.resource_definitions()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_applied_under_faults_ends_exactly_as_specified_and_destroy_leaves_nothing() {
    // `RUST_LOG=kubecloud_kube=debug` shows every retry and resumed watch.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let s = stack(Latency::None, 20).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = tenant_spec(VMS_UNDER_FAULTS, 10);
    inject_faults(&s);

    let started = std::time::Instant::now();
    let rounds = converge(&acme, &spec).await;
    let requests = s.kube.requests();
    let faulted = requests.count_where(|r| r.faulted);
    let total = requests.total();
    // Every kind of fault the issue names was met.
    for (what, count) in [
        ("500", requests.count_status(500)),
        ("503", requests.count_status(503)),
        ("429", requests.count_status(429)),
        (
            "409",
            requests.count_where(|r| r.faulted && r.status == Some(409)),
        ),
        (
            "dropped",
            requests.count_where(|r| r.faulted && r.status.is_none()),
        ),
        (
            "cut watch",
            requests.count_where(|r| r.faulted && r.status == Some(200)),
        ),
    ] {
        assert!(count > 0, "no {what} was injected");
    }
    eprintln!(
        "converged in {rounds} rounds, {:.1?}; {faulted} of {total} requests faulted",
        started.elapsed()
    );
    assert!(
        faulted * 10 > total,
        "faults were injected: {faulted}/{total}"
    );

    s.kube.faults().clear();
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-plan after convergence:\n{again}");
    assert_exact(&s, VMS_UNDER_FAULTS, spec.exposures.len());

    // Destroy while the faults persist, until nothing is left to plan.
    inject_faults(&s);
    let started = std::time::Instant::now();
    converge(&acme, &TenantSpec::default()).await;
    eprintln!("destroyed in {:.1?}", started.elapsed());
    s.kube.faults().clear();
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
    assert_nothing_left(&s);
}

/// How an apply is interrupted.
#[derive(Clone, Copy, Debug)]
enum Interruption {
    /// The apply's future is dropped (a program giving up on it); the same `Cloud` plans and
    /// applies again.
    DropFuture,
    /// The task running the apply is aborted (as when its process ends); a new `Cloud`, with
    /// nothing cached, plans and applies again.
    AbortTask,
}

/// Applies `spec` on `s` and interrupts the apply as soon as the API double has answered its
/// `k`-th request (counted from the start of the apply). Returns whether the apply finished
/// before that.
async fn apply_interrupted(s: &Stack, spec: &TenantSpec, k: usize, how: Interruption) -> bool {
    let acme = s.cloud.tenant("acme").unwrap();
    let plan = acme.plan(spec).await.unwrap();
    let cut = s.kube.requests().reached(s.kube.requests().total() + k);
    match how {
        Interruption::DropFuture => tokio::select! {
            _ = acme.apply_with_progress(&plan, options(), &|_| {}) => true,
            _ = cut => false,
        },
        Interruption::AbortTask => {
            let mut task = tokio::spawn(async move {
                acme.apply_with_progress(&plan, options(), &|_| {}).await;
            });
            tokio::select! {
                _ = &mut task => true,
                _ = cut => {
                    task.abort();
                    // Gone once this returns: nothing of it runs while the next apply does.
                    let _ = task.await;
                    false
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_interrupted_at_every_request_converges_with_nothing_leaked() {
    let spec = tenant_spec(VMS_INTERRUPTED, 2);
    // How many requests an apply that nobody interrupts answers: every one of them is an
    // interruption point below.
    let requests = {
        let s = stack(Latency::None, 0).await;
        let acme = s.cloud.tenant("acme").unwrap();
        let plan = acme.plan(&spec).await.unwrap();
        let before = s.kube.requests().total();
        acme.apply(&plan, options()).await.unwrap();
        s.kube.requests().total() - before
    };
    assert!(requests > spec.len(), "{requests} requests");
    for k in 1..=requests {
        // Both ways at every point would double the time for little: they alternate.
        let how = if k % 2 == 1 {
            Interruption::DropFuture
        } else {
            Interruption::AbortTask
        };
        let s = stack(Latency::None, k as u64).await;
        let finished = apply_interrupted(&s, &spec, k, how).await;
        let cloud = match how {
            Interruption::DropFuture => s.cloud.clone(),
            Interruption::AbortTask => cloud_on(&s.kube, &s.linstor, &s.pki),
        };
        let acme = cloud.tenant("acme").unwrap();
        // Planned once: whatever the interruption left half-made reads as something to
        // complete, never as an error.
        let resumed = acme
            .plan(&spec)
            .await
            .unwrap_or_else(|e| panic!("{how:?} after {k} requests: planning failed: {e}"));
        acme.apply(&resumed, options())
            .await
            .unwrap_or_else(|e| panic!("{how:?} after {k} requests: {e}\n{resumed}"));
        let again = acme.plan(&spec).await.unwrap();
        assert!(again.is_empty(), "{how:?} after {k} requests:\n{again}");
        eprintln!(
            "{how:?} after {k} of {requests} requests (finished first: {finished}): converged"
        );
        assert_exact(&s, VMS_INTERRUPTED, spec.exposures.len());
        acme.destroy(options()).await.unwrap();
        assert_nothing_left(&s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_interrupted_at_every_request_converges_with_nothing_leaked() {
    let spec = tenant_spec(VMS_INTERRUPTED, 2);
    let applied = |s: &Stack| {
        let acme = s.cloud.tenant("acme").unwrap();
        let spec = spec.clone();
        async move {
            acme.apply(&acme.plan(&spec).await.unwrap(), options())
                .await
                .unwrap();
        }
    };
    let requests = {
        let s = stack(Latency::None, 0).await;
        applied(&s).await;
        let before = s.kube.requests().total();
        s.cloud
            .tenant("acme")
            .unwrap()
            .destroy(options())
            .await
            .unwrap();
        s.kube.requests().total() - before
    };
    // Every other point (a destroy is mostly the same few deletes per kind).
    for k in (1..=requests).step_by(2) {
        let s = stack(Latency::None, k as u64).await;
        applied(&s).await;
        let empty = TenantSpec::default();
        apply_interrupted(&s, &empty, k, Interruption::AbortTask).await;
        let acme = cloud_on(&s.kube, &s.linstor, &s.pki)
            .tenant("acme")
            .unwrap();
        // Planned once, from a new process: what is half-deleted reads as something to delete.
        let resumed = acme
            .plan(&TenantSpec::default())
            .await
            .unwrap_or_else(|e| panic!("after {k} requests: planning failed: {e}"));
        acme.apply(&resumed, options())
            .await
            .unwrap_or_else(|e| panic!("after {k} requests: {e}\n{resumed}"));
        assert_nothing_left(&s);
        eprintln!("destroy interrupted after {k} of {requests} requests: converged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_naming_the_field_and_send_nothing() {
    let s = stack(Latency::None, 3).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let base = tenant_spec(4, 2);
    type Mutation = Box<dyn Fn(&mut TenantSpec)>;
    // Refused by validation alone: not one request.
    let offline: Vec<(Mutation, &str)> = vec![
        (Box::new(|s| s.vms[1].name = "Vm_1".into()), "vms[1].name"),
        (
            Box::new(|s| s.vms[2].interfaces[0].fixed_ip = Some("10.9.0.1".parse().unwrap())),
            "vms[2].interfaces[0].fixedIp",
        ),
        (
            Box::new(|s| s.vms[3].interfaces[0].fixed_ip = Some(vm_ip(0))),
            "vms[3].interfaces[0].fixedIp",
        ),
        (
            Box::new(|s| s.exposures[1].ports.clear()),
            "exposures[1].ports",
        ),
        (Box::new(|s| s.vms.push(s.vms[0].clone())), "vms[4].name"),
    ];
    for (mutate, field) in offline {
        let mut spec = base.clone();
        mutate(&mut spec);
        let before = s.kube.requests().total();
        let err = acme.plan(&spec).await.unwrap_err();
        assert_eq!(err.invalid_field(), Some(field), "{err}");
        assert_eq!(
            s.kube.requests().total(),
            before,
            "nothing sent for {field}"
        );
    }
    // Refused once the cloud was asked (references to what exists nowhere): reads only.
    let online: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|s| s.subnets[0].vpc = "elsewhere".into()),
            "subnets[0].vpc",
        ),
        (
            Box::new(|s| {
                s.vms[0].interfaces[0] = kubecloud::NetworkInterface::on_subnet("eth0", "nowhere")
            }),
            "vms[0].interfaces[0].subnet",
        ),
        (
            Box::new(|s| s.vms[1].data_volumes = vec!["missing".into()]),
            "vms[1].dataVolumes[0]",
        ),
    ];
    for (mutate, field) in online {
        let mut spec = base.clone();
        mutate(&mut spec);
        let err = acme.plan(&spec).await.unwrap_err();
        assert_eq!(err.invalid_field(), Some(field), "{err}");
    }
    assert!(
        s.kube.requests().writes().is_empty(),
        "{:?}",
        s.kube.requests().writes()
    );
    assert_eq!(s.kube.requests().count_verb(Verb::Watch), 0);
    assert!(kinds_of(&s, "acme").is_empty());
}

/// One generated way to break the stack's tenant spec: what is broken, at which index, with
/// which junk; returns the field the refusal must name and whether the spec alone shows it
/// (nothing may be sent) or only the cloud can (reads only: a reference to what exists nowhere).
fn break_spec(spec: &mut TenantSpec, which: usize, i: usize, junk: &str) -> (String, bool) {
    let vms = spec.vms.len();
    let (v, e) = (i % vms, i % spec.exposures.len());
    match which {
        0 => {
            spec.vms[v].name = junk.to_string();
            (format!("vms[{v}].name"), true)
        }
        1 => {
            spec.vms[v].interfaces[0].fixed_ip =
                Some(std::net::IpAddr::from([192, 168, 7, (i % 250) as u8]));
            (format!("vms[{v}].interfaces[0].fixedIp"), true)
        }
        2 => {
            // Another VM's address (the later of the two is named).
            let w = (v + 1 + i % (vms - 1)) % vms;
            spec.vms[v].interfaces[0].fixed_ip = Some(vm_ip(w));
            (format!("vms[{}].interfaces[0].fixedIp", v.max(w)), true)
        }
        3 => {
            spec.exposures[e].ports.clear();
            (format!("exposures[{e}].ports"), true)
        }
        4 => {
            let key = format!("{junk}!");
            spec.vms[v].labels.insert(key.clone(), "x".into());
            (format!("vms[{v}].labels.{key}"), true)
        }
        5 => {
            spec.vms.push(spec.vms[v].clone());
            (format!("vms[{vms}].name"), true)
        }
        6 => {
            spec.subnets[0].vpc = format!("x{}", junk.len());
            ("subnets[0].vpc".into(), false)
        }
        7 => {
            spec.vms[v].interfaces[0] =
                kubecloud::NetworkInterface::on_subnet("eth0", format!("n{}", junk.len()));
            (format!("vms[{v}].interfaces[0].subnet"), false)
        }
        _ => {
            spec.vms[v].data_volumes = vec![format!("missing-{}", junk.len())];
            (format!("vms[{v}].dataVolumes[0]"), false)
        }
    }
}

/// Generated invalid specs on the whole stack: each is refused with a typed error naming the
/// field; the double's counters show that nothing at all was sent for what the spec alone
/// shows, and no write (and no watch) ever.
#[test]
fn generated_invalid_specs_are_refused_naming_the_field_and_the_double_sees_nothing_sent() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let s = rt.block_on(stack(Latency::None, 5));
    let acme = s.cloud.tenant("acme").unwrap();
    let base = tenant_spec(5, 2);
    let mut runner = TestRunner::new(Config {
        cases: 64,
        // Seeds of failures are printed; there is no source file to keep them beside.
        failure_persistence: None,
        ..Config::default()
    });
    let cases = (0usize..9, 0usize..64, "[A-Z_ .]{1,8}");
    runner
        .run(&cases, |(which, i, junk)| {
            let mut spec = base.clone();
            let (field, offline) = break_spec(&mut spec, which, i, &junk);
            let before = s.kube.requests().total();
            let err = rt.block_on(acme.plan(&spec)).unwrap_err();
            prop_assert_eq!(err.invalid_field(), Some(field.as_str()), "{}", err);
            if offline {
                prop_assert_eq!(
                    s.kube.requests().total(),
                    before,
                    "nothing sent for {}",
                    field
                );
            }
            Ok(())
        })
        .unwrap();
    assert!(
        s.kube.requests().writes().is_empty(),
        "{:?}",
        s.kube.requests().writes()
    );
    assert_eq!(s.kube.requests().count_verb(Verb::Watch), 0);
    assert!(kinds_of(&s, "acme").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_handle_never_plans_applies_or_destroys_another_tenants_resources() {
    let s = stack(Latency::None, 4).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let globex = s.cloud.tenant("globex").unwrap();
    let spec = tenant_spec(3, 1);
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let plan = globex.plan(&TenantSpec::default()).await.unwrap();
    assert!(plan.is_empty(), "globex sees nothing of acme's:\n{plan}");
    s.kube.requests().reset();
    globex.destroy(options()).await.unwrap();
    assert!(
        s.kube.requests().writes().is_empty(),
        "globex's destroy wrote: {:?}",
        s.kube.requests().writes()
    );
    // The same names in globex are globex's own (on its own external addresses): applying and
    // destroying them leaves acme's alone.
    let mut theirs = spec.clone();
    theirs.address_pools[0].addresses = vec![kubecloud::AddressBlock::Cidr(
        "100.64.16.0/20".parse().unwrap(),
    )];
    globex
        .apply(&globex.plan(&theirs).await.unwrap(), options())
        .await
        .unwrap();
    globex.destroy(options()).await.unwrap();
    assert!(acme.plan(&spec).await.unwrap().is_empty());
    assert_exact(&s, 3, spec.exposures.len());
}

/// Steps start as soon as what they depend on is done, not level by level: the exposure of a VM
/// that runs goes ahead while another VM of the same tenant is still provisioning (its boot
/// image cannot be imported until the exposure is ready; a level-by-level apply would wait for
/// that VM before any exposure and time out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposure_starts_once_its_vm_runs_without_waiting_for_the_other_vms() {
    use kubecloud::{ApplyEvent, BootDisk, Progress, ResourceKind};
    let s = stack(Latency::None, 0).await;
    // vm-0 and vm-1, each booting from an import; vm-0 exposed.
    let mut spec = tenant_spec(2, 2);
    assert_eq!(spec.exposures.len(), 1);
    // vm-0 boots from a container image: nothing to import.
    spec.vms[0].boot_disk = BootDisk::ContainerImage {
        image: "quay.io/containerdisks/fedora:latest".into(),
    };
    let cdi = s
        .kube
        .controller("cdi-deployment")
        .expect("the CDI controller");
    cdi.pause();
    let acme = s.cloud.tenant("acme").unwrap();
    let plan = acme.plan(&spec).await.unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let on_event = |e: ApplyEvent| {
        if e.kind == ResourceKind::Exposure && e.progress == Progress::Ready {
            // Only now can vm-1's image be imported.
            cdi.resume();
        }
        events.lock().unwrap().push(e);
    };
    let options = ApplyOptions {
        timeout: Duration::from_secs(30),
        ..options()
    };
    let report = acme.apply_with_progress(&plan, options, &on_event).await;
    assert!(report.is_complete(), "{report:?}");
    let events = events.into_inner().unwrap();
    let at = |kind: ResourceKind, name: &str, progress: Progress| {
        events
            .iter()
            .position(|e| e.kind == kind && e.name == name && e.progress == progress)
            .unwrap_or_else(|| panic!("no {progress:?} event of {kind} {name}"))
    };
    assert!(
        at(ResourceKind::Exposure, "vm-0", Progress::Applying)
            > at(ResourceKind::Vm, "vm-0", Progress::Ready),
        "the exposure waits for the VM it selects"
    );
    assert!(
        at(ResourceKind::Exposure, "vm-0", Progress::Ready)
            < at(ResourceKind::Vm, "vm-1", Progress::Ready),
        "the exposure of vm-0 was held back by vm-1"
    );
}

/// A secondary subnet cut off between its two objects (its Subnet and its attachment
/// definition, whichever is written second fails): the next plan completes it; when the spec no
/// longer names it, destroy leaves nothing of it behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_subnet_cut_off_half_way_is_completed_or_destroyed_without_leaks() {
    use kubecloud::{Action, ResourceKind, SubnetSpec, VpcSpec};
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let mut storage = SubnetSpec::new("storage", "main", "10.9.0.0/24".parse().unwrap());
    storage.secondary = true;
    let spec = TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![storage],
        ..TenantSpec::default()
    };
    for refused in ["subnets", "network-attachment-definitions"] {
        // A refusal is not retried: the create stops at that write.
        let cut = || {
            s.kube.faults().inject(
                Fault::status(403)
                    .on_verb(Verb::Apply)
                    .on_resource(refused)
                    .times(1),
            );
        };
        cut();
        let plan = acme.plan(&spec).await.unwrap();
        acme.apply(&plan, options())
            .await
            .expect_err("a write is refused");
        // Planned again as a creation (whatever of it is there), which completes it.
        let plan = acme.plan(&spec).await.unwrap();
        let steps: Vec<_> = plan.steps.iter().map(|st| (st.action, st.kind)).collect();
        assert_eq!(
            steps,
            [(Action::Create, ResourceKind::Subnet)],
            "{refused}: {plan}"
        );
        acme.apply(&plan, options()).await.unwrap();
        assert!(acme.plan(&spec).await.unwrap().is_empty(), "{refused}");
        acme.destroy(options()).await.unwrap();
        assert_nothing_left(&s);
        // Cut off again, then destroyed without completing: nothing is left either.
        cut();
        let plan = acme.plan(&spec).await.unwrap();
        acme.apply(&plan, options()).await.unwrap_err();
        acme.destroy(options()).await.unwrap();
        assert_nothing_left(&s);
    }
}
