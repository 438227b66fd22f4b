//! Tenant quotas through the facade: on the memory cloud, and on the whole stack of doubles
//! where the tenant's `ResourceQuota` is enforced at admission by the API double.

use kubecloud::{
    ByteSize, Cloud, Error, Quota, QuotaResource, SubnetSpec, TierQuota, VmSpec, VolumeSpec,
    VpcSpec,
};

#[track_caller]
fn exceeded(err: &Error) -> (QuotaResource, u64, u64, u64) {
    match err {
        Error::QuotaExceeded {
            resource,
            limit,
            used,
            requested,
            ..
        } => (resource.clone(), *limit, *used, *requested),
        other => panic!("expected QuotaExceeded, got {other} ({other:?})"),
    }
}

fn named(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        ..VmSpec::default()
    }
}

#[tokio::test]
async fn usage_shows_what_a_tenant_holds_against_its_limits() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    acme.set_quota(
        &Quota::default()
            .with_vcpus(4)
            .with_memory(ByteSize::gib(4))
            .with_storage(ByteSize::gib(10))
            .with_tier(
                "fast",
                TierQuota {
                    volumes: Some(1),
                    storage: None,
                },
            ),
    )
    .await
    .unwrap();
    assert_eq!(acme.quota().await.unwrap().vcpus, Some(4));
    acme.vms().apply(&named("one")).await.unwrap();
    acme.volumes()
        .create(&VolumeSpec::blank("data", ByteSize::gib(3)).with_tier("fast"))
        .await
        .unwrap();
    let usage = acme.usage().await.unwrap();
    let line = |r: QuotaResource| usage.line(&r).unwrap().to_string();
    assert_eq!(line(QuotaResource::Vcpus), "vcpus: 1 of 4");
    assert_eq!(line(QuotaResource::Memory), "memory: 1Gi of 4Gi");
    assert_eq!(line(QuotaResource::Storage), "storage: 3Gi of 10Gi");
    assert_eq!(
        line(QuotaResource::TierVolumes("fast".into())),
        "tiers.fast.volumes: 1 of 1"
    );
    assert_eq!(line(QuotaResource::Subnets), "subnets: 0 of unlimited");

    // The tier limit holds; another tier does not count against it.
    let err = acme
        .volumes()
        .create(&VolumeSpec::blank("more", ByteSize::gib(1)).with_tier("fast"))
        .await
        .unwrap_err();
    assert_eq!(
        exceeded(&err),
        (QuotaResource::TierVolumes("fast".into()), 1, 1, 1)
    );
    acme.volumes()
        .create(&VolumeSpec::blank("more", ByteSize::gib(1)))
        .await
        .unwrap();
    // Growing a volume counts the growth.
    let err = acme
        .volumes()
        .resize("data", ByteSize::gib(10))
        .await
        .unwrap_err();
    assert_eq!(
        exceeded(&err),
        (QuotaResource::Storage, 10 << 30, 4 << 30, 7 << 30)
    );
    // A bigger VM counts only what it adds.
    let bigger = VmSpec {
        resources: kubecloud::VmResources::Custom {
            cpu_cores: 5,
            memory: ByteSize::gib(1),
        },
        ..named("one")
    };
    let err = acme.vms().apply(&bigger).await.unwrap_err();
    assert_eq!(exceeded(&err), (QuotaResource::Vcpus, 4, 1, 4));
    assert_eq!(
        err.to_string(),
        "tenant \"acme\" exceeded its vcpus quota: requested 4, used 1, limited to 4"
    );
}

#[tokio::test]
async fn subnets_and_public_addresses_are_limited() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    acme.set_quota(&Quota::default().with_subnets(1).with_public_addresses(1))
        .await
        .unwrap();
    let net = acme.network();
    net.create_vpc(&VpcSpec::named("main")).await.unwrap();
    net.create_subnet(&SubnetSpec::new(
        "a",
        "main",
        "10.0.0.0/24".parse().unwrap(),
    ))
    .await
    .unwrap();
    let err = net
        .create_subnet(&SubnetSpec::new(
            "b",
            "main",
            "10.0.1.0/24".parse().unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(exceeded(&err), (QuotaResource::Subnets, 1, 1, 1));
    net.create_external_ip(&kubecloud::ExternalIpSpec::new("web"))
        .await
        .unwrap();
    let err = net
        .create_external_ip(&kubecloud::ExternalIpSpec::new("db"))
        .await
        .unwrap_err();
    assert_eq!(exceeded(&err), (QuotaResource::PublicAddresses, 1, 1, 1));
}

#[tokio::test]
async fn a_plan_shows_usage_after_the_change_and_refuses_one_past_the_quota() {
    let acme = Cloud::in_memory().tenant("acme").unwrap();
    let spec = kubecloud::TenantSpec::from_yaml(
        r#"
quota: { vms: 2, vcpus: 4, storage: 10Gi }
volumes: [{ name: data, size: 4Gi }]
vms:
  - { name: a, resources: { custom: { cpuCores: 2, memory: 1Gi } }, bootDisk: { containerImage: { image: "quay.io/containerdisks/fedora:40" } } }
"#,
    )
    .unwrap();
    let plan = acme.plan(&spec).await.unwrap();
    assert_eq!(plan.quota, spec.quota, "the spec's quota is set first");
    let usage = plan.usage.clone().expect("usage after apply");
    let line = |r: QuotaResource| usage.line(&r).unwrap().to_string();
    assert_eq!(line(QuotaResource::Vms), "vms: 1 of 2");
    assert_eq!(line(QuotaResource::Vcpus), "vcpus: 2 of 4");
    assert_eq!(line(QuotaResource::Storage), "storage: 4Gi of 10Gi");
    assert!(
        usage.line(&QuotaResource::Subnets).is_none(),
        "only limited resources"
    );
    let text = plan.to_string();
    assert!(text.contains("  set quota\n"), "{text}");
    assert!(text.contains("    vcpus: 2 of 4\n"), "{text}");
    acme.apply(&plan, Default::default()).await.unwrap();
    assert_eq!(acme.quota().await.unwrap(), spec.quota.clone().unwrap());
    assert!(
        acme.plan(&spec).await.unwrap().is_empty(),
        "applied: nothing left to do"
    );

    // Two more VMs of 2 vCPUs: past both limits; the first in the quota's order is named.
    let mut bigger = spec.clone();
    for name in ["b", "c"] {
        bigger.vms.push(kubecloud::VmSpec {
            name: name.into(),
            resources: kubecloud::VmResources::Custom {
                cpu_cores: 2,
                memory: ByteSize::gib(1),
            },
            ..kubecloud::VmSpec::default()
        });
    }
    let err = acme.plan(&bigger).await.unwrap_err();
    assert_eq!(exceeded(&err), (QuotaResource::Vcpus, 4, 2, 4));
    // Raising the limits in the same spec lets it through.
    bigger.quota = Some(Quota::default().with_vms(3).with_vcpus(6));
    let plan = acme.plan(&bigger).await.unwrap();
    assert_eq!(
        plan.usage
            .unwrap()
            .line(&QuotaResource::Vcpus)
            .unwrap()
            .to_string(),
        "vcpus: 6 of 6"
    );
    // Lowering a limit below what is held is planned (nothing grows); creates then stop.
    let mut lowered = spec.clone();
    lowered.quota = Some(Quota::default().with_vms(1).with_vcpus(1));
    let plan = acme.plan(&lowered).await.unwrap();
    assert_eq!(
        plan.usage
            .unwrap()
            .line(&QuotaResource::Vcpus)
            .unwrap()
            .to_string(),
        "vcpus: 2 of 1"
    );
}

#[tokio::test]
async fn a_spec_naming_a_bad_tier_in_its_quota_is_refused_naming_the_field() {
    let err = kubecloud::TenantSpec::from_yaml("quota: { tiers: { Fast: { volumes: 1 } } }")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("quota.tiers"));
}

#[tokio::test]
async fn a_cloud_without_a_quota_store_refuses_to_set_one_and_limits_nothing() {
    let memory = kubecloud::MemoryCloud::new();
    let cloud = Cloud::builder()
        .compute(memory.clone())
        .storage(memory.clone())
        .network(memory.clone())
        .load_balancer(memory)
        .build()
        .unwrap();
    let acme = cloud.tenant("acme").unwrap();
    let err = acme
        .set_quota(&Quota::default().with_vms(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(acme.quota().await.unwrap(), Quota::default());
}

#[cfg(all(
    feature = "kubevirt",
    feature = "linstor",
    feature = "kubeovn",
    feature = "metallb"
))]
mod common {
    pub mod stack;
}

#[cfg(all(
    feature = "kubevirt",
    feature = "linstor",
    feature = "kubeovn",
    feature = "metallb"
))]
mod on_the_stack {
    use super::common::stack::{cloud_on, stack};
    use super::exceeded;
    use kubecloud::{
        ByteSize, Quota, QuotaResource, SubnetSpec, VmAttachments, VmSpec, VolumeSpec, VpcSpec,
    };
    use kubecloud_testkit::Latency;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_at_its_quota_gets_quota_exceeded_and_nothing_is_sent() {
        let s = stack(Latency::None, 0).await;
        let acme = s.cloud.tenant("acme").unwrap();
        acme.set_quota(&Quota::default().with_vms(1).with_volumes(1).with_subnets(1))
            .await
            .unwrap();
        acme.vms().apply(&super::named("one")).await.unwrap();
        acme.volumes()
            .create(&VolumeSpec::blank("data", ByteSize::gib(1)).with_tier("fast"))
            .await
            .unwrap();
        let net = acme.network();
        net.create_vpc(&VpcSpec::named("main")).await.unwrap();
        net.create_subnet(&SubnetSpec::new(
            "a",
            "main",
            "10.0.0.0/24".parse().unwrap(),
        ))
        .await
        .unwrap();

        let writes = s.kube.requests().writes().len();
        let linstor_writes = || {
            s.linstor
                .requests()
                .into_iter()
                .filter(|r| {
                    r.origin == kubecloud_testkit::linstor::Origin::Client && r.method != "GET"
                })
                .count()
        };
        let linstor = linstor_writes();
        let two = VmSpec {
            name: "two".into(),
            ..VmSpec::default()
        };
        let err = acme.vms().apply(&two).await.unwrap_err();
        assert_eq!(exceeded(&err), (QuotaResource::Vms, 1, 1, 1));
        let err = acme
            .volumes()
            .create(&VolumeSpec::blank("more", ByteSize::gib(1)).with_tier("fast"))
            .await
            .unwrap_err();
        assert_eq!(exceeded(&err), (QuotaResource::Volumes, 1, 1, 1));
        // Subnets are cluster-scoped: kubecloud's own check holds them.
        let err = net
            .create_subnet(&SubnetSpec::new(
                "b",
                "main",
                "10.0.1.0/24".parse().unwrap(),
            ))
            .await
            .unwrap_err();
        assert_eq!(exceeded(&err), (QuotaResource::Subnets, 1, 1, 1));
        let sent: Vec<_> = s
            .kube
            .requests()
            .writes()
            .into_iter()
            .skip(writes)
            .collect();
        assert!(sent.is_empty(), "sent past the quota: {sent:?}");
        assert_eq!(linstor_writes(), linstor, "nothing written to LINSTOR");

        let usage = acme.usage().await.unwrap();
        assert_eq!(
            usage.line(&QuotaResource::Vms).unwrap().to_string(),
            "vms: 1 of 1"
        );
    }

    /// The plan checks the whole change against the quota once: its creates do not read the
    /// quota and list what the tenant holds again each (a 1,000-VM apply would send thousands of
    /// lists). What a quota adds to an apply's requests (the plan's reads of the quota and the
    /// usage) is the same for 2 VMs as for 8; checked per create it grew by six requests or
    /// more per VM.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_apply_under_a_quota_checks_it_once_per_plan_not_per_create() {
        let s = stack(Latency::None, 0).await;
        let requests = s.kube.requests();
        let mut spec = super::common::stack::tenant_spec(2, 2);
        spec.exposures.clear();
        spec.address_pools.clear();
        // The first tenant starts the shared watches of cluster-scoped kinds (VPCs, subnets).
        let warm = s.cloud.tenant("warm").unwrap();
        warm.apply(
            &warm.plan(&spec).await.unwrap(),
            kubecloud::ApplyOptions::default(),
        )
        .await
        .unwrap();
        let mut added = Vec::new();
        for vms in [2, 8] {
            let mut spec = super::common::stack::tenant_spec(vms, vms);
            spec.exposures.clear();
            spec.address_pools.clear();
            let mut sent = Vec::new();
            for quota in [None, Some(Quota::default().with_vms(50))] {
                let name = format!("t{vms}-{}", if quota.is_some() { "q" } else { "free" });
                let t = s.cloud.tenant(&name).unwrap();
                if let Some(quota) = &quota {
                    t.set_quota(quota).await.unwrap();
                }
                let before = requests.total();
                let plan = t.plan(&spec).await.unwrap();
                let report = t
                    .apply(&plan, kubecloud::ApplyOptions::default())
                    .await
                    .unwrap();
                assert_eq!(report.done.len(), spec.len(), "{report:?}");
                sent.push(requests.total() - before);
            }
            added.push(sent[1] as i64 - sent[0] as i64);
        }
        // A request or two may differ (a shared watch answering before or after it listed).
        assert!(
            added[1] <= added[0] + 2,
            "a quota added {} requests to an apply of 2 VMs and {} to one of 8",
            added[0],
            added[1]
        );
        let usage = s.cloud.tenant("t8-q").unwrap().usage().await.unwrap();
        assert_eq!(
            usage.line(&QuotaResource::Vms).unwrap().to_string(),
            "vms: 8 of 50"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_applies_racing_past_the_check_leave_the_quota_respected() {
        let s = stack(Latency::None, 0).await;
        // Two processes: each its own Cloud, nothing shared but the cluster.
        let other = cloud_on(&s.kube, &s.linstor, &s.pki);
        let mine = s.cloud.tenant("acme").unwrap();
        let theirs = other.tenant("acme").unwrap();
        mine.set_quota(&Quota::default().with_vms(1).with_volumes(1))
            .await
            .unwrap();
        // Both have passed kubecloud's check: each sees room for one more.
        for t in [&mine, &theirs] {
            let usage = t.usage().await.unwrap();
            assert_eq!(usage.line(&QuotaResource::Vms).unwrap().used, 0);
            assert_eq!(usage.line(&QuotaResource::Volumes).unwrap().used, 0);
        }
        // ... and now send at once.
        let vm = |name: &str| VmSpec {
            name: name.into(),
            ..VmSpec::default()
        };
        let (a, b) = (vm("a"), vm("b"));
        let (network, storage) = (Some(s.cloud.network()), Some(s.cloud.storage()));
        let att_a = VmAttachments::resolve(mine.name(), &a, network, storage)
            .await
            .unwrap();
        let att_b = VmAttachments::resolve(mine.name(), &b, network, storage)
            .await
            .unwrap();
        let (ra, rb) = tokio::join!(
            s.cloud.compute().apply_vm(mine.name(), &a, &att_a),
            other.compute().apply_vm(theirs.name(), &b, &att_b),
        );
        let (won, lost) = match (ra, rb) {
            (Ok(_), Err(e)) => ("a", e),
            (Err(e), Ok(_)) => ("b", e),
            other => panic!("exactly one apply must win: {other:?}"),
        };
        assert_eq!(exceeded(&lost), (QuotaResource::Vms, 1, 1, 1));
        assert!(
            matches!(&lost, kubecloud::Error::QuotaExceeded { tenant, .. } if tenant == "acme")
        );
        let names: Vec<String> = mine
            .vms()
            .list(&Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.spec.name)
            .collect();
        assert_eq!(names, [won], "nothing of the refused VM exists");

        let fast = |name: &str| VolumeSpec::blank(name, ByteSize::gib(1)).with_tier("fast");
        let (va, vb) = (fast("x"), fast("y"));
        let (ra, rb) = tokio::join!(
            s.cloud.storage().create_volume(mine.name(), &va),
            other.storage().create_volume(theirs.name(), &vb),
        );
        let lost = match (ra, rb) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            other => panic!("exactly one create must win: {other:?}"),
        };
        assert_eq!(exceeded(&lost), (QuotaResource::Volumes, 1, 1, 1));
        assert_eq!(
            mine.volumes()
                .list(&Default::default())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

/// The CLI's `status` shows used against limit for each limited resource.
#[test]
fn the_cli_status_shows_used_against_limit() {
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join(format!("kubecloud{}", std::env::consts::EXE_SUFFIX));
    let acme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/acme.yaml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("acme.yaml");
    std::fs::write(&spec, format!("{acme}\nquota: {{ vms: 3, subnets: 1 }}\n")).unwrap();
    let out = std::process::Command::new(&binary)
        .args([
            "status",
            "-f",
            spec.to_str().unwrap(),
            "--tenant",
            "acme",
            "-o",
            "json",
        ])
        .output()
        .expect("the example runs (cargo test builds it)");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let quota: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "quota")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("name"), s("state"), s("detail"))
        })
        .collect();
    assert_eq!(
        quota,
        [
            ("vms".into(), "Ok".into(), "1 of 3".into()),
            ("subnets".into(), "Full".into(), "1 of 1".into()),
        ],
        "{rows}"
    );
}
