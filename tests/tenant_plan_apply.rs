//! Tenants as one unit on the in-memory cloud: plan, apply, change, re-apply as a no-op, drift,
//! failure and resumption, interruption, destroy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubecloud::*;

const SPEC: &str = r#"
vpcs: [{ name: main }]
subnets:
  - { name: web, vpc: main, cidr: 10.1.0.0/24 }
  - { name: db, vpc: main, cidr: 10.2.0.0/24 }
securityGroups:
  - name: web
    ingress: [{ protocol: tcp, ports: { first: 443, last: 443 } }]
ipReservations: [{ name: db-eth0, subnet: db, ip: 10.2.0.10 }]
volumes:
  - { name: web-root, size: 10Gi, replicas: 2, access: readWriteMany }
  - { name: db-data, size: 20Gi, replicas: 2 }
vms:
  - name: web
    resources: { custom: { cpuCores: 2, memory: 4Gi } }
    bootDisk: { volume: { volume: web-root } }
    interfaces: [{ name: eth0, attachment: { subnet: { subnet: web } }, fixedIp: 10.1.0.10, securityGroups: [web] }]
    labels: { app: web }
  - name: db
    resources: { custom: { cpuCores: 4, memory: 8Gi } }
    bootDisk: { import: { url: "https://images.example.com/db.qcow2", size: 20Gi } }
    dataVolumes: [db-data]
    interfaces: [{ name: eth0, attachment: { subnet: { subnet: db } }, fixedIp: 10.2.0.10 }]
    labels: { app: db }
services: [{ name: db, selector: { app: db }, ports: [{ port: 5432 }] }]
addressPools:
  - { name: public, addresses: [{ cidr: 203.0.113.0/28 }], avoidBuggyIps: true, advertisement: { l2: {} } }
exposures: [{ name: web, selector: { app: web }, ports: [{ port: 443 }] }]
"#;

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: Duration::from_secs(20),
        ..ApplyOptions::default()
    }
}

async fn counts(t: &TenantHandle) -> (usize, usize, usize, usize) {
    let none = Labels::new();
    (
        t.vms().list(&none).await.unwrap().len(),
        t.volumes().list(&none).await.unwrap().len(),
        t.network().list_subnets().await.unwrap().len(),
        t.load_balancer().list_exposures().await.unwrap().len(),
    )
}

#[tokio::test]
async fn a_tenant_is_planned_applied_reapplied_as_a_noop_changed_and_destroyed() {
    let cloud = Cloud::in_memory();
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(SPEC).unwrap();

    let plan = acme.plan(&spec).await.unwrap();
    assert_eq!(plan.count(Action::Create), spec.len());
    assert_eq!(
        counts(&acme).await,
        (0, 0, 0, 0),
        "planning changes nothing"
    );
    // Dependencies come first: the VPC before subnets, volumes before VMs, VMs before exposures.
    let position = |kind: ResourceKind, name: &str| {
        plan.steps
            .iter()
            .position(|s| s.kind == kind && s.name == name)
            .unwrap()
    };
    assert!(position(ResourceKind::Vpc, "main") < position(ResourceKind::Subnet, "web"));
    assert!(position(ResourceKind::Volume, "web-root") < position(ResourceKind::Vm, "web"));
    assert!(position(ResourceKind::Vm, "web") < position(ResourceKind::Exposure, "web"));
    assert!(plan.to_string().contains("+ vm web"), "{plan}");

    let report = acme.apply(&plan, options()).await.unwrap();
    assert!(report.is_complete());
    assert_eq!(report.done.len(), spec.len());
    let web = acme.vms().get("web").await.unwrap();
    assert_eq!(web.status.phase, VmPhase::Running);
    assert_eq!(
        web.status.interfaces[0].ip,
        Some("10.1.0.10".parse().unwrap())
    );
    assert!(
        acme.load_balancer()
            .get_exposure("web")
            .await
            .unwrap()
            .ip
            .is_some()
    );
    // The imported boot volume is the VM's own: present, but never planned on its own.
    assert!(acme.volumes().get("db-boot").await.is_ok());

    let again = acme.plan(&spec).await.unwrap();
    assert!(
        again.is_empty(),
        "re-planning an applied spec is a no-op:\n{again}"
    );

    let mut changed = spec.clone();
    changed.vms[0].resources = VmResources::Custom {
        cpu_cores: 4,
        memory: ByteSize::gib(4),
    };
    changed.volumes[1].size = ByteSize::gib(30);
    changed.services.clear();
    let plan = acme.plan(&changed).await.unwrap();
    let summary: Vec<(Action, ResourceKind, &str)> = plan
        .steps
        .iter()
        .map(|s| (s.action, s.kind, s.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Action::Delete, ResourceKind::Service, "db"),
            (Action::Update, ResourceKind::Volume, "db-data"),
            (Action::Update, ResourceKind::Vm, "web"),
        ]
    );
    let cpu = &plan.steps[2].changes;
    assert_eq!(cpu.len(), 1, "{cpu:?}");
    assert_eq!(cpu[0].field, "resources.custom.cpuCores");
    assert_eq!(
        (cpu[0].from.clone(), cpu[0].to.clone()),
        (serde_json::json!(2), serde_json::json!(4))
    );
    acme.apply(&plan, options()).await.unwrap();
    assert_eq!(
        acme.volumes().get("db-data").await.unwrap().spec.size,
        ByteSize::gib(30)
    );
    assert!(acme.plan(&changed).await.unwrap().is_empty());

    let report = acme.destroy(options()).await.unwrap();
    assert!(report.is_complete());
    assert_eq!(counts(&acme).await, (0, 0, 0, 0));
    assert!(acme.network().list_vpcs().await.unwrap().is_empty());
    assert!(acme.load_balancer().list_pools().await.unwrap().is_empty());
}

#[tokio::test]
async fn drift_made_by_hand_shows_exactly() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(SPEC).unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    // Someone changes a VM's labels and deletes a security group... by hand.
    let mut web = acme.vms().get("web").await.unwrap().spec;
    web.labels.insert("owner".into(), "someone".into());
    acme.vms().apply(&web).await.unwrap();
    acme.network().delete_service("db").await.unwrap();
    let plan = acme.plan(&spec).await.unwrap();
    let summary: Vec<(Action, ResourceKind, &str)> = plan
        .steps
        .iter()
        .map(|s| (s.action, s.kind, s.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Action::Update, ResourceKind::Vm, "web"),
            (Action::Create, ResourceKind::Service, "db")
        ]
    );
    assert_eq!(plan.steps[0].changes[0].field, "labels.owner");
}

#[tokio::test]
async fn invalid_specs_are_refused_naming_the_field_and_create_nothing() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    let base = TenantSpec::from_yaml(SPEC).unwrap();
    type Mutation = Box<dyn Fn(&mut TenantSpec)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|s| s.vms[1].name = "Bad_Name".into()),
            "vms[1].name",
        ),
        (
            Box::new(|s| s.volumes[0].size = ByteSize(0)),
            "volumes[0].size",
        ),
        (
            Box::new(|s| s.subnets[1].cidr = "10.1.0.128/25".parse().unwrap()),
            "subnets[1].cidr",
        ),
        (
            Box::new(|s| s.subnets[0].vpc = "nowhere".into()),
            "subnets[0].vpc",
        ),
        (
            Box::new(|s| s.vms[0].interfaces[0].fixed_ip = Some("10.9.9.9".parse().unwrap())),
            "vms[0].interfaces[0].fixedIp",
        ),
        (
            Box::new(|s| s.vms[0].interfaces[0].fixed_ip = Some("10.2.0.10".parse().unwrap())),
            "vms[0].interfaces[0].fixedIp",
        ),
        (
            Box::new(|s| s.vms[0].data_volumes = vec!["missing".into()]),
            "vms[0].dataVolumes[0]",
        ),
        (
            Box::new(|s| s.volumes.push(s.volumes[0].clone())),
            "volumes[2].name",
        ),
    ];
    for (mutate, field) in cases {
        let mut spec = base.clone();
        mutate(&mut spec);
        let err = acme.plan(&spec).await.unwrap_err();
        assert_eq!(err.invalid_field(), Some(field), "{err}");
    }
    assert_eq!(counts(&acme).await, (0, 0, 0, 0));
    assert!(
        TenantSpec::from_yaml("vms: [{ name: a, resourcez: {} }]").is_err(),
        "unknown fields are refused"
    );
}

#[tokio::test]
async fn a_failure_stops_new_work_reports_exactly_and_the_next_apply_converges() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    let mut spec = TenantSpec::from_yaml(SPEC).unwrap();
    let good_url = match &spec.vms[1].boot_disk {
        BootDisk::Import { url, .. } => url.clone(),
        _ => unreachable!(),
    };
    if let BootDisk::Import { url, .. } = &mut spec.vms[1].boot_disk {
        *url = "https://images.broken.invalid/db.qcow2".into();
    }
    let plan = acme.plan(&spec).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let report = acme
        .apply_with_progress(&plan, options(), &move |e| sink.lock().unwrap().push(e))
        .await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].2, "db");
    assert!(
        report.failed[0].3.contains("import failed"),
        "{}",
        report.failed[0].3
    );
    // The service selecting the failed VM comes after it: not started, nothing sent.
    assert!(
        report
            .not_started
            .iter()
            .any(|(_, kind, name)| *kind == ResourceKind::Service && name == "db"),
        "{report:?}"
    );
    assert!(acme.network().list_services().await.unwrap().is_empty());
    // Every step is reported exactly once; what exists is what the report says was done (the
    // exposure of `web` depends only on `web`, so it may have gone ahead before `db` failed).
    assert_eq!(
        report.done.len() + report.failed.len() + report.not_started.len(),
        plan.steps.len(),
        "{report:?}"
    );
    let exposed = acme.load_balancer().list_exposures().await.unwrap().len();
    let done = |kind: ResourceKind| report.done.iter().filter(|d| d.1 == kind).count();
    assert_eq!(exposed, done(ResourceKind::Exposure), "{report:?}");
    let events = events.lock().unwrap().clone();
    let web: Vec<&Progress> = events
        .iter()
        .filter(|e| e.kind == ResourceKind::Vm && e.name == "web")
        .map(|e| &e.progress)
        .collect();
    assert_eq!(
        web,
        vec![
            &Progress::Pending,
            &Progress::Applying,
            &Progress::Waiting,
            &Progress::Ready
        ]
    );

    // Fix the spec and apply again: it converges, nothing duplicated.
    if let BootDisk::Import { url, .. } = &mut spec.vms[1].boot_disk {
        *url = good_url;
    }
    // The failed VM must be replaced: delete it, then apply the fixed spec.
    acme.vms().delete("db").await.unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    assert!(acme.plan(&spec).await.unwrap().is_empty());
    assert_eq!(counts(&acme).await, (2, 3, 2, 1));
}

#[tokio::test]
async fn rollback_deletes_what_the_failed_apply_created() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    let mut spec = TenantSpec::from_yaml(SPEC).unwrap();
    if let BootDisk::Import { url, .. } = &mut spec.vms[1].boot_disk {
        *url = "https://images.broken.invalid/db.qcow2".into();
    }
    let plan = acme.plan(&spec).await.unwrap();
    let report = acme
        .apply_with_progress(
            &plan,
            ApplyOptions {
                rollback_on_failure: true,
                ..options()
            },
            &|_| {},
        )
        .await;
    assert!(!report.failed.is_empty());
    assert!(
        report
            .rolled_back
            .iter()
            .any(|(k, n)| *k == ResourceKind::Vm && n == "web")
    );
    assert!(
        report
            .rolled_back
            .iter()
            .any(|(k, n)| *k == ResourceKind::Vm && n == "db"),
        "the failed VM was created by this apply too"
    );
    assert_eq!(
        counts(&acme).await,
        (0, 0, 0, 0),
        "nothing this apply created is left"
    );
    assert!(acme.network().list_vpcs().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_apply_interrupted_anywhere_converges_when_applied_again() {
    let spec = TenantSpec::from_yaml(SPEC).unwrap();
    // Interrupt after the k-th progress event, for every k the full apply produces.
    let total_events = spec.len() * 4;
    for k in (1..total_events).step_by(3) {
        let cloud = Cloud::in_memory();
        let acme = cloud.tenant("acme").unwrap();
        let plan = acme.plan(&spec).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Mutex::new(Some(tx));
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let on_event = move |_e: ApplyEvent| {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == k
                && let Some(tx) = tx.lock().unwrap().take()
            {
                let _ = tx.send(());
            }
        };
        tokio::select! {
            _ = acme.apply_with_progress(&plan, options(), &on_event) => {}
            _ = rx => {}
        }
        let resumed = acme.plan(&spec).await.unwrap();
        acme.apply(&resumed, options())
            .await
            .unwrap_or_else(|e| panic!("interrupted after {k} events: {e}"));
        assert!(
            acme.plan(&spec).await.unwrap().is_empty(),
            "converged after an interruption at {k}"
        );
        assert_eq!(
            counts(&acme).await,
            (2, 3, 2, 1),
            "nothing duplicated or leaked (interrupted at {k})"
        );
    }
}

#[tokio::test]
async fn one_tenants_destroy_leaves_another_and_shared_pools_alone() {
    let shared = AddressPoolSpec::l2(
        "cluster",
        vec![AddressBlock::Cidr("198.51.100.0/28".parse().unwrap())],
    );
    let cloud = Cloud::from_memory(MemoryCloud::builder().shared_address_pool(shared).build());
    let acme = cloud.tenant("acme").unwrap();
    let globex = cloud.tenant("globex").unwrap();
    let spec = TenantSpec::from_yaml(SPEC).unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let plan = globex.plan(&TenantSpec::default()).await.unwrap();
    assert!(
        plan.is_empty(),
        "globex sees nothing of acme's and does not own the shared pool:\n{plan}"
    );
    globex.destroy(options()).await.unwrap();
    assert_eq!(counts(&acme).await, (2, 3, 2, 1));
    acme.destroy(options()).await.unwrap();
    let pools = acme.load_balancer().list_pools().await.unwrap();
    assert_eq!(
        pools
            .iter()
            .map(|p| (p.spec.name.as_str(), p.shared))
            .collect::<Vec<_>>(),
        vec![("cluster", true)]
    );
}

#[test]
fn a_serialized_plan_carries_no_secrets() {
    let step_yaml = r#"
vms:
  - name: web
    resources: { custom: { cpuCores: 1, memory: 1Gi } }
    bootDisk: { containerImage: { image: quay.io/containerdisks/fedora:40 } }
    cloudInit: { userData: "password: hunter2" }
"#;
    let spec = TenantSpec::from_yaml(step_yaml).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let acme = Cloud::in_memory().tenant("acme").unwrap();
        let plan = acme.plan(&spec).await.unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            !json.contains("hunter2") && !plan.to_string().contains("hunter2"),
            "{json}"
        );
        acme.apply(&plan, options()).await.unwrap();
        let mut changed = spec.clone();
        changed.vms[0].cloud_init = Some(CloudInit {
            user_data: Some("password: s3cret".into()),
            ..CloudInit::default()
        });
        let plan = acme.plan(&changed).await.unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            json.contains("[redacted ") && !json.contains("s3cret") && !json.contains("hunter2"),
            "{json}"
        );
    });
}

/// Rotating a BGP password and changing a hold time are an ordinary update: the plan shows the
/// change as two fingerprints, the apply makes it, and no output carries either password. A
/// change of the pool's addresses is refused naming the field, without the peers' passwords.
#[tokio::test]
async fn bgp_peers_change_in_place_and_plans_show_fingerprints_not_passwords() {
    let pool = |hold: u32, password: &str, cidr: &str| {
        format!(
            "addressPools:\n  - name: routed\n    addresses: [{{ cidr: {cidr} }}]\n    advertisement:\n      bgp:\n        peers: [{{ name: tor, myAsn: 64500, peerAsn: 64501, address: 192.0.2.1, holdTimeSecs: {hold}, password: {password} }}]\n"
        )
    };
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    let first = TenantSpec::from_yaml(&pool(90, "first-pass", "203.0.113.0/28")).unwrap();
    let plan = acme.plan(&first).await.unwrap();
    acme.apply(&plan, options()).await.unwrap();

    let second = TenantSpec::from_yaml(&pool(30, "second-pass", "203.0.113.0/28")).unwrap();
    let plan = acme.plan(&second).await.unwrap();
    assert_eq!(plan.count(Action::Update), 1, "{plan}");
    let shown = format!("{plan} {} {plan:?}", serde_json::to_string(&plan).unwrap());
    assert!(
        !shown.contains("first-pass") && !shown.contains("second-pass"),
        "{shown}"
    );
    let password = plan.steps[0]
        .changes
        .iter()
        .find(|c| c.field.ends_with("password"))
        .unwrap_or_else(|| panic!("the rotation is a change: {plan}"));
    assert_ne!(password.from, password.to, "a rotation shows as a change");
    assert!(password.to.as_str().unwrap().starts_with("[redacted "));
    acme.apply(&plan, options()).await.unwrap();
    let live = acme.load_balancer().get_pool("routed").await.unwrap();
    let Advertisement::Bgp(bgp) = &live.spec.advertisement else {
        panic!("a BGP pool: {live:?}")
    };
    assert_eq!(bgp.peers[0].hold_time_secs, Some(30));
    assert_eq!(
        bgp.peers[0].password.as_ref().map(|p| p.expose()),
        Some("second-pass")
    );
    assert!(acme.plan(&second).await.unwrap().is_empty());

    let moved = TenantSpec::from_yaml(&pool(30, "second-pass", "198.51.100.0/28")).unwrap();
    let err = acme.plan(&moved).await.unwrap_err();
    assert!(
        err.invalid_field()
            .is_some_and(|f| f.starts_with("addressPools[0].addresses")),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("second-pass"), "{err:?}");
}

mod generated_invalid_specs {
    use super::*;
    use proptest::prelude::*;

    /// One way to break a valid spec, and the field the refusal must name.
    fn breakage() -> impl Strategy<Value = (usize, String)> {
        (0usize..10, "[A-Z_ ]{1,8}")
    }

    fn break_spec(spec: &mut TenantSpec, which: usize, junk: &str) -> String {
        match which {
            0 => {
                spec.vms[0].name = junk.to_string();
                "vms[0].name".into()
            }
            1 => {
                spec.volumes[1].name = junk.to_string();
                "volumes[1].name".into()
            }
            2 => {
                spec.volumes[0].size = ByteSize(0);
                "volumes[0].size".into()
            }
            3 => {
                spec.volumes[0].replicas = 0;
                "volumes[0].replicas".into()
            }
            4 => {
                spec.subnets[0].vpc = format!("x{}", junk.len());
                "subnets[0].vpc".into()
            }
            5 => {
                spec.vms[1].interfaces[0].fixed_ip = Some("192.168.77.1".parse().unwrap());
                "vms[1].interfaces[0].fixedIp".into()
            }
            6 => {
                spec.exposures[0].ports.clear();
                "exposures[0].ports".into()
            }
            7 => {
                let key = format!("{junk}!");
                spec.vms[0].labels.insert(key.clone(), "x".into());
                format!("vms[0].labels.{key}")
            }
            8 => {
                spec.services[0].selector.clear();
                "services[0].selector".into()
            }
            _ => {
                spec.security_groups[0].ingress[0].priority = 0;
                "securityGroups[0].ingress[0].priority".into()
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn are_refused_naming_the_field_and_nothing_is_created((which, junk) in breakage()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let acme = Cloud::in_memory().tenant("acme").unwrap();
                let mut spec = TenantSpec::from_yaml(SPEC).unwrap();
                let field = break_spec(&mut spec, which, &junk);
                let err = acme.plan(&spec).await.unwrap_err();
                assert_eq!(err.invalid_field(), Some(field.as_str()), "{err}");
                assert_eq!(counts(&acme).await, (0, 0, 0, 0));
            });
        }
    }
}
