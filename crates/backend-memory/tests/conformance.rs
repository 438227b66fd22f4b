//! The shared conformance suite against the in-memory cloud: every check runs, none is skipped
//! (the memory cloud has every capability).

use std::time::Duration;

use futures::stream::{self, BoxStream};
use kubecloud_core::conformance::{self, Params, PortProbe, Report, Target};
use kubecloud_core::{Packet, Result, Tenant, async_trait};
use kubecloud_memory::MemoryCloud;

/// The memory cloud's ports as the suite probes them. Its state changes within the calls that
/// change it, so there is never a later change to wait for.
#[derive(Debug)]
struct Ports<'a>(&'a MemoryCloud);

#[async_trait]
impl PortProbe for Ports<'_> {
    fn changes(&self) -> BoxStream<'static, ()> {
        Box::pin(stream::pending())
    }
    async fn groups(&self, t: &Tenant, vm: &str, iface: &str) -> Result<Option<Vec<String>>> {
        let mut groups = self.0.port_groups(t, vm, iface)?;
        groups.sort();
        Ok(Some(groups))
    }
    async fn allows(&self, t: &Tenant, vm: &str, iface: &str, p: &Packet) -> Result<Option<bool>> {
        self.0.allows(t, vm, iface, p).map(Some)
    }
}

fn params() -> Params {
    Params {
        second_tier: Some("fast".into()),
        timeout: Duration::from_secs(10),
        nodes: 3,
        ..Params::default()
    }
}

fn passed(group: &str, report: &Report) {
    report.assert_nothing_skipped();
    assert!(!report.passed.is_empty(), "{group}: no check ran");
}

#[tokio::test]
async fn storage_conforms() {
    let cloud = MemoryCloud::new();
    let report = conformance::run_storage(&Target::all(&cloud), "conf", &params()).await;
    passed("storage", &report);
}

#[tokio::test]
async fn network_conforms() {
    let cloud = MemoryCloud::new();
    let report = conformance::run_network(&Target::all(&cloud), "conf", &params()).await;
    passed("network", &report);
}

#[tokio::test]
async fn compute_conforms() {
    let cloud = MemoryCloud::new();
    let ports = Ports(&cloud);
    let target = Target::all(&cloud).with_ports(&ports);
    let report = conformance::run_compute(&target, "conf", &params()).await;
    passed("compute", &report);
}

#[tokio::test]
async fn load_balancer_conforms() {
    let cloud = MemoryCloud::new();
    let report = conformance::run_load_balancer(&Target::all(&cloud), "conf", &params()).await;
    passed("load balancer", &report);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let cloud = MemoryCloud::new();
    let report = conformance::run_isolation(&Target::all(&cloud), "conf", &params()).await;
    passed("isolation", &report);
}

#[tokio::test]
async fn the_whole_suite_runs_on_one_cloud_with_a_shared_pool() {
    // One cloud for every group, as a long-lived test cluster would be, with a cluster-wide pool
    // beside the suite's block: checks must not trip over each other or over it.
    let shared = kubecloud_core::AddressPoolSpec::l2(
        "cluster-public",
        vec![kubecloud_core::AddressBlock::Cidr(
            "203.0.113.0/28".parse().unwrap(),
        )],
    );
    let cloud = MemoryCloud::builder().shared_address_pool(shared).build();
    let ports = Ports(&cloud);
    let target = Target::all(&cloud).with_ports(&ports);
    let report = conformance::run_all(&target, "all", &params()).await;
    passed("all", &report);
}

#[tokio::test]
async fn a_target_without_some_backends_skips_their_checks() {
    let cloud = MemoryCloud::new();
    let target = Target::default().with_network(&cloud);
    let report = conformance::run_all(&target, "partial", &params()).await;
    assert!(
        report
            .passed
            .iter()
            .all(|c| c.starts_with("network::") || c.starts_with("isolation::network")),
        "{report}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|(c, _)| c.starts_with("compute::")),
        "{report}"
    );
}

/// The suite has teeth: a storage (or compute) backend with one fault, delegating the rest to
/// the memory cloud, fails the check that covers the fault.
mod the_suite_catches {
    use kubecloud_core::conformance::{Params, Target, isolation, storage};
    use std::collections::BTreeMap;

    use kubecloud_core::{
        BlockStorage, BoxStream, ByteSize, Compute, ComputeCapabilities, Labels, Migration,
        MigrationBlocker, MigrationTarget, PowerAction, Result, Snapshot, StorageCapabilities,
        StoragePool, Tenant, Vm, VmAttachments, VmSpec, Volume, VolumeSpec, async_trait,
    };
    use kubecloud_memory::MemoryCloud;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Fault {
        ListIgnoresSelector,
        ShrinkIgnored,
        OneTenantForAll,
    }

    #[derive(Debug)]
    struct Faulty {
        cloud: MemoryCloud,
        fault: Fault,
    }

    impl Faulty {
        fn tenant(&self, tenant: &Tenant) -> Tenant {
            if self.fault == Fault::OneTenantForAll {
                Tenant::new("everyone").unwrap()
            } else {
                tenant.clone()
            }
        }
    }

    #[async_trait]
    impl BlockStorage for Faulty {
        fn backend_name(&self) -> &str {
            "faulty"
        }
        fn capabilities(&self) -> StorageCapabilities {
            BlockStorage::capabilities(&self.cloud)
        }
        async fn create_volume(&self, t: &Tenant, spec: &VolumeSpec) -> Result<Volume> {
            self.cloud.create_volume(&self.tenant(t), spec).await
        }
        async fn get_volume(&self, t: &Tenant, name: &str) -> Result<Volume> {
            self.cloud.get_volume(&self.tenant(t), name).await
        }
        async fn attach_volume(
            &self,
            t: &Tenant,
            name: &str,
        ) -> Result<kubecloud_core::VolumeAttachment> {
            self.cloud.attach_volume(&self.tenant(t), name).await
        }
        async fn list_volumes(&self, t: &Tenant, selector: &Labels) -> Result<Vec<Volume>> {
            let selector = match self.fault {
                Fault::ListIgnoresSelector => Labels::new(),
                _ => selector.clone(),
            };
            self.cloud.list_volumes(&self.tenant(t), &selector).await
        }
        async fn resize_volume(&self, t: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
            let current = self.cloud.get_volume(&self.tenant(t), name).await?;
            if self.fault == Fault::ShrinkIgnored && size < current.spec.size {
                return Ok(current);
            }
            self.cloud.resize_volume(&self.tenant(t), name, size).await
        }
        async fn delete_volume(&self, t: &Tenant, name: &str, force: bool) -> Result<()> {
            self.cloud.delete_volume(&self.tenant(t), name, force).await
        }
        async fn create_snapshot(&self, t: &Tenant, v: &str, s: &str) -> Result<Snapshot> {
            self.cloud.create_snapshot(&self.tenant(t), v, s).await
        }
        async fn list_snapshots(&self, t: &Tenant, v: Option<&str>) -> Result<Vec<Snapshot>> {
            self.cloud.list_snapshots(&self.tenant(t), v).await
        }
        async fn delete_snapshot(&self, t: &Tenant, s: &str) -> Result<()> {
            self.cloud.delete_snapshot(&self.tenant(t), s).await
        }
        async fn list_pools(&self, t: &Tenant) -> Result<Vec<StoragePool>> {
            BlockStorage::list_pools(&self.cloud, &self.tenant(t)).await
        }
        async fn watch_volume(
            &self,
            t: &Tenant,
            name: &str,
        ) -> Result<BoxStream<'static, Result<Volume>>> {
            self.cloud.watch_volume(&self.tenant(t), name).await
        }
    }

    fn tenant(name: &str) -> Tenant {
        Tenant::new(name).unwrap()
    }

    #[tokio::test]
    #[should_panic(expected = "list_volumes with selector role=data")]
    async fn a_list_that_ignores_its_selector() {
        let cloud = MemoryCloud::new();
        let faulty = Faulty {
            cloud,
            fault: Fault::ListIgnoresSelector,
        };
        let target = Target::default().with_storage(&faulty);
        let _ = storage::create_get_list_delete(&target, &tenant("t"), &Params::default()).await;
    }

    /// A compute backend that never says which VM uses a volume (delegating the rest to the
    /// memory cloud): deleting a volume in use then goes through.
    #[derive(Debug)]
    struct Blind(MemoryCloud);

    #[async_trait]
    impl Compute for Blind {
        fn backend_name(&self) -> &str {
            "blind"
        }
        fn capabilities(&self) -> ComputeCapabilities {
            Compute::capabilities(&self.0)
        }
        async fn apply_vm(&self, t: &Tenant, spec: &VmSpec, a: &VmAttachments) -> Result<Vm> {
            self.0.apply_vm(t, spec, a).await
        }
        async fn get_vm(&self, t: &Tenant, name: &str) -> Result<Vm> {
            self.0.get_vm(t, name).await
        }
        async fn list_vms(&self, t: &Tenant, selector: &Labels) -> Result<Vec<Vm>> {
            self.0.list_vms(t, selector).await
        }
        async fn volume_users(&self, _: &Tenant) -> Result<BTreeMap<String, Vec<String>>> {
            Ok(BTreeMap::new())
        }
        async fn power(&self, t: &Tenant, name: &str, action: PowerAction) -> Result<Vm> {
            self.0.power(t, name, action).await
        }
        async fn migration_blockers(
            &self,
            t: &Tenant,
            name: &str,
        ) -> Result<Vec<MigrationBlocker>> {
            self.0.migration_blockers(t, name).await
        }
        async fn migrate(&self, t: &Tenant, name: &str, to: &MigrationTarget) -> Result<Migration> {
            self.0.migrate(t, name, to).await
        }
        async fn delete_vm(&self, t: &Tenant, name: &str) -> Result<()> {
            self.0.delete_vm(t, name).await
        }
        async fn watch_vm(&self, t: &Tenant, name: &str) -> Result<BoxStream<'static, Result<Vm>>> {
            self.0.watch_vm(t, name).await
        }
    }

    #[tokio::test]
    #[should_panic(expected = "compute lists a running VM as a user of the volume it boots from")]
    async fn a_compute_backend_blind_to_volume_users() {
        let cloud = MemoryCloud::new();
        let blind = Blind(cloud.clone());
        let target = Target::default().with_storage(&cloud).with_compute(&blind);
        let _ = storage::delete_in_use_needs_force(&target, &tenant("t"), &Params::default()).await;
    }

    #[tokio::test]
    #[should_panic(expected = "shrink of volume \"elastic\"")]
    async fn a_shrink_that_is_silently_ignored() {
        let faulty = Faulty {
            cloud: MemoryCloud::new(),
            fault: Fault::ShrinkIgnored,
        };
        let target = Target::default().with_storage(&faulty);
        let _ = storage::resize_grows_only(&target, &tenant("t"), &Params::default()).await;
    }

    #[tokio::test]
    #[should_panic(expected = "another tenant's get of volume \"secret\": expected a refusal")]
    async fn tenants_that_share_everything() {
        let faulty = Faulty {
            cloud: MemoryCloud::new(),
            fault: Fault::OneTenantForAll,
        };
        let target = Target::default().with_storage(&faulty);
        let _ = isolation::storage(&target, &tenant("a"), &tenant("b"), &Params::default()).await;
    }
}

#[tokio::test]
async fn quotas_conform() {
    let cloud = MemoryCloud::new();
    let report = conformance::run_quotas(&Target::all(&cloud), &cloud, "conf", &params()).await;
    passed("quotas", &report);
    assert_eq!(report.passed.len(), 3, "{report}");
}
