//! The facade refuses bad input and missing capabilities before calling a backend, and scopes
//! every call to its tenant. Backends are `mockall` mocks: a refused call must never reach them.

use std::sync::Arc;

use async_trait::async_trait;
use kubecloud::*;
use mockall::mock;
use mockall::predicate::*;

mock! {
    #[derive(Debug)]
    Compute {}
    #[async_trait]
    impl Compute for Compute {
        fn backend_name(&self) -> &str;
        fn capabilities(&self) -> ComputeCapabilities;
        async fn apply_vm(&self, tenant: &Tenant, spec: &VmSpec, attachments: &VmAttachments) -> Result<Vm>;
        async fn get_vm(&self, tenant: &Tenant, name: &str) -> Result<Vm>;
        async fn list_vms(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Vm>>;
        async fn power(&self, tenant: &Tenant, name: &str, action: PowerAction) -> Result<Vm>;
        async fn migration_blockers(&self, tenant: &Tenant, name: &str) -> Result<Vec<MigrationBlocker>>;
        async fn migrate(&self, tenant: &Tenant, name: &str, target: &MigrationTarget) -> Result<Migration>;
        async fn delete_vm(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn watch_vm(&self, tenant: &Tenant, name: &str) -> Result<BoxStream<'static, Result<Vm>>>;
    }
}

/// `mockall` cannot mock `Option<&str>` arguments of async methods, so the storage and network
/// mocks mock a twin trait with owned arguments, and a thin wrapper forwards the real trait to it.
#[async_trait]
trait StorageTwin: Send + Sync + std::fmt::Debug {
    fn backend_name(&self) -> &str;
    fn capabilities(&self) -> StorageCapabilities;
    async fn create_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume>;
    async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume>;
    async fn attach_volume(&self, tenant: &Tenant, name: &str) -> Result<VolumeAttachment>;
    async fn list_volumes(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Volume>>;
    async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume>;
    async fn delete_volume(&self, tenant: &Tenant, name: &str, force: bool) -> Result<()>;
    async fn create_snapshot(
        &self,
        tenant: &Tenant,
        volume: &str,
        snapshot: &str,
    ) -> Result<Snapshot>;
    async fn list_snapshots(
        &self,
        tenant: &Tenant,
        volume: Option<String>,
    ) -> Result<Vec<Snapshot>>;
    async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()>;
    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<StoragePool>>;
    async fn watch_volume(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Volume>>>;
}

#[derive(Debug)]
struct StorageWrapper(MockStorage);

#[async_trait]
impl BlockStorage for StorageWrapper {
    fn backend_name(&self) -> &str {
        self.0.backend_name()
    }
    fn capabilities(&self) -> StorageCapabilities {
        self.0.capabilities()
    }
    async fn create_volume(&self, t: &Tenant, spec: &VolumeSpec) -> Result<Volume> {
        self.0.create_volume(t, spec).await
    }
    async fn get_volume(&self, t: &Tenant, name: &str) -> Result<Volume> {
        self.0.get_volume(t, name).await
    }
    async fn attach_volume(&self, t: &Tenant, name: &str) -> Result<VolumeAttachment> {
        self.0.attach_volume(t, name).await
    }
    async fn list_volumes(&self, t: &Tenant, sel: &Labels) -> Result<Vec<Volume>> {
        self.0.list_volumes(t, sel).await
    }
    async fn resize_volume(&self, t: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
        self.0.resize_volume(t, name, size).await
    }
    async fn delete_volume(&self, t: &Tenant, name: &str, force: bool) -> Result<()> {
        self.0.delete_volume(t, name, force).await
    }
    async fn create_snapshot(&self, t: &Tenant, v: &str, s: &str) -> Result<Snapshot> {
        self.0.create_snapshot(t, v, s).await
    }
    async fn list_snapshots(&self, t: &Tenant, v: Option<&str>) -> Result<Vec<Snapshot>> {
        self.0.list_snapshots(t, v.map(str::to_string)).await
    }
    async fn delete_snapshot(&self, t: &Tenant, s: &str) -> Result<()> {
        self.0.delete_snapshot(t, s).await
    }
    async fn list_pools(&self, t: &Tenant) -> Result<Vec<StoragePool>> {
        self.0.list_pools(t).await
    }
    async fn watch_volume(
        &self,
        t: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Volume>>> {
        self.0.watch_volume(t, name).await
    }
}

mock! {
    #[derive(Debug)]
    Storage {}
    #[async_trait]
    impl StorageTwin for Storage {
        fn backend_name(&self) -> &str;
        fn capabilities(&self) -> StorageCapabilities;
        async fn create_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume>;
        async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume>;
        async fn attach_volume(&self, tenant: &Tenant, name: &str) -> Result<VolumeAttachment>;
        async fn list_volumes(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Volume>>;
        async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume>;
        async fn delete_volume(&self, tenant: &Tenant, name: &str, force: bool) -> Result<()>;
        async fn create_snapshot(&self, tenant: &Tenant, volume: &str, snapshot: &str) -> Result<Snapshot>;
        async fn list_snapshots(&self, tenant: &Tenant, volume: Option<String>) -> Result<Vec<Snapshot>>;
        async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()>;
        async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<StoragePool>>;
        async fn watch_volume(&self, tenant: &Tenant, name: &str) -> Result<BoxStream<'static, Result<Volume>>>;
    }
}

#[async_trait]
trait NetTwin: Send + Sync + std::fmt::Debug {
    fn backend_name(&self) -> &str;
    fn capabilities(&self) -> NetworkCapabilities;
    async fn create_vpc(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc>;
    async fn get_vpc(&self, tenant: &Tenant, name: &str) -> Result<Vpc>;
    async fn list_vpcs(&self, tenant: &Tenant) -> Result<Vec<Vpc>>;
    async fn delete_vpc(&self, tenant: &Tenant, name: &str) -> Result<()>;
    async fn create_subnet(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet>;
    async fn get_subnet(&self, tenant: &Tenant, name: &str) -> Result<Subnet>;
    async fn list_subnets(&self, tenant: &Tenant) -> Result<Vec<Subnet>>;
    async fn delete_subnet(&self, tenant: &Tenant, name: &str) -> Result<()>;
    async fn reserve_ip(&self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation>;
    async fn get_ip(&self, tenant: &Tenant, name: &str) -> Result<IpReservation>;
    async fn list_ips(&self, tenant: &Tenant, subnet: Option<String>)
    -> Result<Vec<IpReservation>>;
    async fn release_ip(&self, tenant: &Tenant, name: &str) -> Result<()>;
    async fn create_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup>;
    async fn update_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup>;
    async fn attach_interfaces(
        &self,
        tenant: &Tenant,
        vm: &str,
        interfaces: Vec<NetworkInterface>,
    ) -> Result<Vec<InterfaceAttachment>>;
    async fn get_security_group(&self, tenant: &Tenant, name: &str) -> Result<SecurityGroup>;
    async fn list_security_groups(&self, tenant: &Tenant) -> Result<Vec<SecurityGroup>>;
    async fn delete_security_group(&self, tenant: &Tenant, name: &str) -> Result<()>;
    async fn create_service(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service>;
    async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service>;
    async fn list_services(&self, tenant: &Tenant) -> Result<Vec<Service>>;
    async fn delete_service(&self, tenant: &Tenant, name: &str) -> Result<()>;
}

#[derive(Debug)]
struct NetWrapper(MockNet);

#[async_trait]
impl Network for NetWrapper {
    fn backend_name(&self) -> &str {
        self.0.backend_name()
    }
    fn capabilities(&self) -> NetworkCapabilities {
        self.0.capabilities()
    }
    async fn create_vpc(&self, t: &Tenant, s: &VpcSpec) -> Result<Vpc> {
        self.0.create_vpc(t, s).await
    }
    async fn get_vpc(&self, t: &Tenant, n: &str) -> Result<Vpc> {
        self.0.get_vpc(t, n).await
    }
    async fn list_vpcs(&self, t: &Tenant) -> Result<Vec<Vpc>> {
        self.0.list_vpcs(t).await
    }
    async fn delete_vpc(&self, t: &Tenant, n: &str) -> Result<()> {
        self.0.delete_vpc(t, n).await
    }
    async fn create_subnet(&self, t: &Tenant, s: &SubnetSpec) -> Result<Subnet> {
        self.0.create_subnet(t, s).await
    }
    async fn get_subnet(&self, t: &Tenant, n: &str) -> Result<Subnet> {
        self.0.get_subnet(t, n).await
    }
    async fn list_subnets(&self, t: &Tenant) -> Result<Vec<Subnet>> {
        self.0.list_subnets(t).await
    }
    async fn delete_subnet(&self, t: &Tenant, n: &str) -> Result<()> {
        self.0.delete_subnet(t, n).await
    }
    async fn reserve_ip(&self, t: &Tenant, s: &IpReservationSpec) -> Result<IpReservation> {
        self.0.reserve_ip(t, s).await
    }
    async fn get_ip(&self, t: &Tenant, n: &str) -> Result<IpReservation> {
        self.0.get_ip(t, n).await
    }
    async fn list_ips(&self, t: &Tenant, s: Option<&str>) -> Result<Vec<IpReservation>> {
        self.0.list_ips(t, s.map(str::to_string)).await
    }
    async fn release_ip(&self, t: &Tenant, n: &str) -> Result<()> {
        self.0.release_ip(t, n).await
    }
    async fn create_security_group(
        &self,
        t: &Tenant,
        s: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        self.0.create_security_group(t, s).await
    }
    async fn update_security_group(
        &self,
        t: &Tenant,
        s: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        self.0.update_security_group(t, s).await
    }
    async fn attach_interfaces(
        &self,
        t: &Tenant,
        vm: &str,
        i: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>> {
        self.0.attach_interfaces(t, vm, i.to_vec()).await
    }
    async fn get_security_group(&self, t: &Tenant, n: &str) -> Result<SecurityGroup> {
        self.0.get_security_group(t, n).await
    }
    async fn list_security_groups(&self, t: &Tenant) -> Result<Vec<SecurityGroup>> {
        self.0.list_security_groups(t).await
    }
    async fn delete_security_group(&self, t: &Tenant, n: &str) -> Result<()> {
        self.0.delete_security_group(t, n).await
    }
    async fn create_service(&self, t: &Tenant, s: &ServiceSpec) -> Result<Service> {
        self.0.create_service(t, s).await
    }
    async fn get_service(&self, t: &Tenant, n: &str) -> Result<Service> {
        self.0.get_service(t, n).await
    }
    async fn list_services(&self, t: &Tenant) -> Result<Vec<Service>> {
        self.0.list_services(t).await
    }
    async fn delete_service(&self, t: &Tenant, n: &str) -> Result<()> {
        self.0.delete_service(t, n).await
    }
    // External access: no expectations are ever set, so reaching the backend is a failure.
    async fn create_external_ip(&self, _: &Tenant, _: &ExternalIpSpec) -> Result<ExternalIp> {
        panic!("create_external_ip reached the backend")
    }
    async fn get_external_ip(&self, _: &Tenant, _: &str) -> Result<ExternalIp> {
        panic!("get_external_ip reached the backend")
    }
    async fn list_external_ips(&self, _: &Tenant) -> Result<Vec<ExternalIp>> {
        panic!("list_external_ips reached the backend")
    }
    async fn delete_external_ip(&self, _: &Tenant, _: &str) -> Result<()> {
        panic!("delete_external_ip reached the backend")
    }
    async fn create_floating_ip(&self, _: &Tenant, _: &FloatingIpSpec) -> Result<FloatingIp> {
        panic!("create_floating_ip reached the backend")
    }
    async fn list_floating_ips(&self, _: &Tenant) -> Result<Vec<FloatingIp>> {
        panic!("list_floating_ips reached the backend")
    }
    async fn delete_floating_ip(&self, _: &Tenant, _: &str) -> Result<()> {
        panic!("delete_floating_ip reached the backend")
    }
    async fn create_snat_rule(&self, _: &Tenant, _: &SnatRuleSpec) -> Result<SnatRule> {
        panic!("create_snat_rule reached the backend")
    }
    async fn list_snat_rules(&self, _: &Tenant) -> Result<Vec<SnatRule>> {
        panic!("list_snat_rules reached the backend")
    }
    async fn delete_snat_rule(&self, _: &Tenant, _: &str) -> Result<()> {
        panic!("delete_snat_rule reached the backend")
    }
}

mock! {
    #[derive(Debug)]
    Net {}
    #[async_trait]
    impl NetTwin for Net {
        fn backend_name(&self) -> &str;
        fn capabilities(&self) -> NetworkCapabilities;
        async fn create_vpc(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc>;
        async fn get_vpc(&self, tenant: &Tenant, name: &str) -> Result<Vpc>;
        async fn list_vpcs(&self, tenant: &Tenant) -> Result<Vec<Vpc>>;
        async fn delete_vpc(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn create_subnet(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet>;
        async fn get_subnet(&self, tenant: &Tenant, name: &str) -> Result<Subnet>;
        async fn list_subnets(&self, tenant: &Tenant) -> Result<Vec<Subnet>>;
        async fn delete_subnet(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn reserve_ip(&self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation>;
        async fn get_ip(&self, tenant: &Tenant, name: &str) -> Result<IpReservation>;
        async fn list_ips(&self, tenant: &Tenant, subnet: Option<String>) -> Result<Vec<IpReservation>>;
        async fn release_ip(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn create_security_group(&self, tenant: &Tenant, spec: &SecurityGroupSpec) -> Result<SecurityGroup>;
        async fn update_security_group(&self, tenant: &Tenant, spec: &SecurityGroupSpec) -> Result<SecurityGroup>;
        async fn attach_interfaces(&self, tenant: &Tenant, vm: &str, interfaces: Vec<NetworkInterface>) -> Result<Vec<InterfaceAttachment>>;
        async fn get_security_group(&self, tenant: &Tenant, name: &str) -> Result<SecurityGroup>;
        async fn list_security_groups(&self, tenant: &Tenant) -> Result<Vec<SecurityGroup>>;
        async fn delete_security_group(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn create_service(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service>;
        async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service>;
        async fn list_services(&self, tenant: &Tenant) -> Result<Vec<Service>>;
        async fn delete_service(&self, tenant: &Tenant, name: &str) -> Result<()>;
    }
}

mock! {
    #[derive(Debug)]
    Lb {}
    #[async_trait]
    impl LoadBalancer for Lb {
        fn backend_name(&self) -> &str;
        fn capabilities(&self) -> LoadBalancerCapabilities;
        async fn create_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool>;
        async fn get_pool(&self, tenant: &Tenant, name: &str) -> Result<AddressPool>;
        async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<AddressPool>>;
        async fn delete_pool(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn expose(&self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Exposure>;
        async fn get_exposure(&self, tenant: &Tenant, name: &str) -> Result<Exposure>;
        async fn list_exposures(&self, tenant: &Tenant) -> Result<Vec<Exposure>>;
        async fn release(&self, tenant: &Tenant, name: &str) -> Result<()>;
        async fn watch_exposure(&self, tenant: &Tenant, name: &str) -> Result<BoxStream<'static, Result<Exposure>>>;
    }
}

/// Mocks that only answer names and (empty) capabilities: any dispatched call panics.
struct Mocks {
    compute: MockCompute,
    storage: MockStorage,
    network: MockNet,
    lb: MockLb,
}

impl Mocks {
    fn new() -> Self {
        let mut compute = MockCompute::new();
        compute
            .expect_backend_name()
            .return_const("mock-compute".to_string());
        let mut storage = MockStorage::new();
        storage
            .expect_backend_name()
            .return_const("mock-storage".to_string());
        let mut network = MockNet::new();
        network
            .expect_backend_name()
            .return_const("mock-network".to_string());
        let mut lb = MockLb::new();
        lb.expect_backend_name().return_const("mock-lb".to_string());
        Self {
            compute,
            storage,
            network,
            lb,
        }
    }

    fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.compute
            .expect_capabilities()
            .return_const(caps.compute);
        self.storage
            .expect_capabilities()
            .return_const(caps.storage);
        self.network
            .expect_capabilities()
            .return_const(caps.network);
        self.lb
            .expect_capabilities()
            .return_const(caps.load_balancer);
        self
    }

    fn cloud(self) -> Cloud {
        Cloud::builder()
            .compute_arc(Arc::new(self.compute))
            .storage_arc(Arc::new(StorageWrapper(self.storage)))
            .network_arc(Arc::new(NetWrapper(self.network)))
            .load_balancer_arc(Arc::new(self.lb))
            .build()
            .expect("all four backends given")
    }
}

fn vm_spec(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        ..VmSpec::default()
    }
}

fn unsupported_capability(err: &Error) -> (&str, &str, &str) {
    match err {
        Error::Unsupported {
            backend,
            operation,
            capability,
        } => (backend, operation, capability),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn migration_without_the_capability_is_refused_before_dispatch() {
    // No expect_migrate: a dispatched call would panic the mock.
    let cloud = Mocks::new()
        .with_capabilities(Capabilities::default())
        .cloud();
    let acme = cloud.tenant("acme").unwrap();
    let err = acme
        .vms()
        .migrate("web", &MigrationTarget::AnyNode)
        .await
        .unwrap_err();
    assert_eq!(
        unsupported_capability(&err),
        ("mock-compute", "vms.migrate", "live_migration")
    );
    assert!(err.to_string().contains("mock-compute"), "{err}");
}

#[tokio::test]
async fn migration_to_a_named_node_needs_its_own_capability() {
    let caps = Capabilities {
        compute: ComputeCapabilities {
            live_migration: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut mocks = Mocks::new().with_capabilities(caps);
    mocks
        .compute
        .expect_migrate()
        .times(1)
        .returning(|_, name, _| {
            Ok(Migration {
                vm: name.to_string(),
                source_node: "n1".into(),
                target_node: None,
            })
        });
    let acme = mocks.cloud().tenant("acme").unwrap();
    let err = acme
        .vms()
        .migrate("web", &MigrationTarget::Node("n2".into()))
        .await
        .unwrap_err();
    assert_eq!(unsupported_capability(&err).2, "migrate_to_node");
    // Any node is allowed and reaches the backend exactly once.
    acme.vms()
        .migrate("web", &MigrationTarget::AnyNode)
        .await
        .unwrap();
}

#[tokio::test]
async fn each_capability_guards_its_operation() {
    let cloud = Mocks::new()
        .with_capabilities(Capabilities::default())
        .cloud();
    let acme = cloud.tenant("acme").unwrap();
    let import = VmSpec {
        boot_disk: BootDisk::Import {
            url: "https://images.example/disk.qcow2".into(),
            size: ByteSize::gib(10),
            tier: None,
            replicas: 1,
            access: AccessMode::ReadWriteOnce,
            mode: VolumeMode::Block,
        },
        ..vm_spec("web")
    };
    let cases: Vec<(Result<()>, &str)> = vec![
        (
            acme.vms().apply(&vm_spec("web")).await.map(drop),
            "container_disks",
        ),
        (acme.vms().apply(&import).await.map(drop), "http_import"),
        (
            acme.volumes()
                .create(
                    &VolumeSpec::blank("v", ByteSize::gib(1))
                        .with_access(AccessMode::ReadWriteMany),
                )
                .await
                .map(drop),
            "rwx_block",
        ),
        (
            acme.volumes().snapshot("v", "s").await.map(drop),
            "snapshots",
        ),
        (
            acme.volumes().resize("v", ByteSize::gib(2)).await.map(drop),
            "resize",
        ),
        (
            acme.network()
                .reserve_ip(&IpReservationSpec::new("r", "s"))
                .await
                .map(drop),
            "fixed_ips",
        ),
        (
            acme.network()
                .create_security_group(&SecurityGroupSpec {
                    name: "sg".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "security_groups",
        ),
        (
            acme.load_balancer()
                .create_pool(&AddressPoolSpec::l2(
                    "p",
                    vec![AddressBlock::Cidr("192.0.2.0/28".parse().unwrap())],
                ))
                .await
                .map(drop),
            "l2",
        ),
        (
            acme.load_balancer()
                .expose(&ExposureSpec {
                    address: AddressRequest::Ip("192.0.2.1".parse().unwrap()),
                    ..ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(80)])
                })
                .await
                .map(drop),
            "requested_ip",
        ),
        (
            acme.network()
                .create_external_ip(&ExternalIpSpec::new("e"))
                .await
                .map(drop),
            "external_access",
        ),
        (
            acme.network()
                .create_floating_ip(&FloatingIpSpec::new("f", "e", "r"))
                .await
                .map(drop),
            "external_access",
        ),
        (
            acme.network()
                .create_snat_rule(&SnatRuleSpec::new("s", "e", "front"))
                .await
                .map(drop),
            "external_access",
        ),
        (
            acme.network().list_external_ips().await.map(drop),
            "external_access",
        ),
        (
            acme.network().delete_external_ip("e").await.map(drop),
            "external_access",
        ),
    ];
    for (result, capability) in cases {
        let err = result.expect_err(capability);
        assert_eq!(unsupported_capability(&err).2, capability);
    }
}

#[tokio::test]
async fn bad_input_never_reaches_the_backend() {
    // No capability or dispatch expectations at all: the facade must stop first.
    let cloud = Mocks::new().cloud();
    let acme = cloud.tenant("acme").unwrap();
    let err = acme.vms().apply(&vm_spec("Not_A_Name")).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    let err = acme
        .volumes()
        .create(&VolumeSpec::blank("v", ByteSize(0)))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("size"));
    let err = acme.volumes().get("../other-tenant/v").await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    let bad_cidr = SubnetSpec::new("s", "main", "10.0.0.7/24".parse().unwrap());
    let err = acme.network().create_subnet(&bad_cidr).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("cidr"));
    let err = acme
        .load_balancer()
        .expose(&ExposureSpec::new("web", [], vec![ServicePort::tcp(80)]))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("selector"));
    let err = acme
        .network()
        .create_external_ip(&ExternalIpSpec::new("Bad_Name"))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    let err = acme
        .network()
        .create_floating_ip(&FloatingIpSpec::new("f", "e", ""))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("reservation"));
    let err = acme
        .network()
        .create_snat_rule(&SnatRuleSpec::new("s", "e", "Not/A/Subnet"))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("subnet"));
}

#[tokio::test]
async fn every_call_carries_the_handles_tenant() {
    let caps = Capabilities {
        compute: ComputeCapabilities {
            container_disks: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut mocks = Mocks::new().with_capabilities(caps);
    mocks
        .compute
        .expect_apply_vm()
        .withf(|tenant, spec, _| tenant.as_str() == "acme" && spec.name == "web")
        .times(1)
        .returning(|_, spec, _| {
            Ok(Vm {
                spec: spec.clone(),
                status: VmStatus::default(),
            })
        });
    mocks
        .compute
        .expect_get_vm()
        .with(eq(Tenant::new("globex").unwrap()), eq("web"))
        .times(1)
        .returning(|_, name| Err(Error::not_found(ResourceKind::Vm, name)));
    let cloud = mocks.cloud();
    cloud
        .tenant("acme")
        .unwrap()
        .vms()
        .apply(&vm_spec("web"))
        .await
        .unwrap();
    let err = cloud
        .tenant("globex")
        .unwrap()
        .vms()
        .get("web")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[test]
fn invalid_tenant_names_are_refused() {
    let cloud = Mocks::new().cloud();
    for bad in ["", "Acme", "kube-system", "default", "a/b", &"x".repeat(64)] {
        let err = cloud.tenant(bad).unwrap_err();
        assert_eq!(err.invalid_field(), Some("tenant"), "{bad:?}");
    }
}

#[tokio::test]
async fn replicas_beyond_the_backend_maximum_are_refused_naming_the_field() {
    let caps = Capabilities {
        storage: StorageCapabilities {
            max_replicas: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let cloud = Mocks::new().with_capabilities(caps).cloud();
    let err = cloud
        .tenant("acme")
        .unwrap()
        .volumes()
        .create(&VolumeSpec::blank("v", ByteSize::gib(1)).with_replicas(3))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("replicas"));
}
