//! [`Absent`]: the stand-in for a part of the cloud whose system is not installed.
//!
//! [`Cloud::connect_with`](crate::Cloud::connect_with) puts one in place of a backend when
//! [`ConnectOptions::allow_missing`](crate::ConnectOptions::allow_missing) allows the system to be
//! missing. Every capability reads `false`, so [`Cloud::capabilities`](crate::Cloud::capabilities)
//! stays honest, and every call is refused with [`Error::Unsupported`] naming the missing system;
//! nothing is sent and nothing panics.

use futures::stream::BoxStream;
use kubecloud_core::{
    AddressPool, AddressPoolSpec, BlockStorage, ByteSize, Compute, ComputeCapabilities, Error,
    Exposure, ExposureSpec, InterfaceAttachment, IpReservation, IpReservationSpec, Labels,
    LoadBalancer, LoadBalancerCapabilities, Migration, MigrationBlocker, MigrationTarget, Network,
    NetworkCapabilities, NetworkInterface, PowerAction, Result, SecurityGroup, SecurityGroupSpec,
    Service, ServiceSpec, Snapshot, StorageCapabilities, StoragePool, Subnet, SubnetSpec, Tenant,
    Vm, VmAttachments, VmSpec, Volume, VolumeAttachment, VolumeSpec, Vpc, VpcSpec, async_trait,
};

/// A backend for a part whose system is not installed: no capabilities, every call refused
/// with [`Error::Unsupported`] naming the system.
///
/// ```
/// use kubecloud::{Absent, Cloud, MemoryCloud, VmSpec};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let memory = MemoryCloud::new();
/// let cloud = Cloud::builder()
///     .compute(Absent::new("compute", "KubeVirt is not installed: API group kubevirt.io not served"))
///     .storage(memory.clone())
///     .network(memory.clone())
///     .load_balancer(memory)
///     .build()
///     .unwrap();
/// assert!(!cloud.capabilities().compute.live_migration);
/// let err = cloud.tenant("acme").unwrap().vms().list(&Default::default()).await.unwrap_err();
/// assert!(err.to_string().contains("KubeVirt is not installed"), "{err}");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Absent {
    name: String,
}

impl Absent {
    /// The stand-in for `part` (`"compute"`, `"storage"`...), missing because of `reason`
    /// (a sentence naming the system, e.g. "KubeVirt is not installed: API group kubevirt.io
    /// not served").
    pub fn new(part: &str, reason: &str) -> Self {
        Self {
            name: format!("no {part} backend ({reason})"),
        }
    }

    fn refuse<T>(&self, operation: &str) -> Result<T> {
        Err(Error::unsupported(
            self.name.clone(),
            operation,
            "installed",
        ))
    }
}

#[async_trait]
impl Compute for Absent {
    fn backend_name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> ComputeCapabilities {
        ComputeCapabilities::default()
    }
    async fn apply_vm(&self, _: &Tenant, _: &VmSpec, _: &VmAttachments) -> Result<Vm> {
        self.refuse("vms.apply")
    }
    async fn get_vm(&self, _: &Tenant, _: &str) -> Result<Vm> {
        self.refuse("vms.get")
    }
    async fn list_vms(&self, _: &Tenant, _: &Labels) -> Result<Vec<Vm>> {
        self.refuse("vms.list")
    }
    async fn power(&self, _: &Tenant, _: &str, _: PowerAction) -> Result<Vm> {
        self.refuse("vms.power")
    }
    async fn migration_blockers(&self, _: &Tenant, _: &str) -> Result<Vec<MigrationBlocker>> {
        self.refuse("vms.migration_blockers")
    }
    async fn migrate(&self, _: &Tenant, _: &str, _: &MigrationTarget) -> Result<Migration> {
        self.refuse("vms.migrate")
    }
    async fn delete_vm(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("vms.delete")
    }
    async fn watch_vm(&self, _: &Tenant, _: &str) -> Result<BoxStream<'static, Result<Vm>>> {
        self.refuse("vms.watch")
    }
}

#[async_trait]
impl BlockStorage for Absent {
    fn backend_name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities::default()
    }
    async fn create_volume(&self, _: &Tenant, _: &VolumeSpec) -> Result<Volume> {
        self.refuse("volumes.create")
    }
    async fn attach_volume(&self, _: &Tenant, _: &str) -> Result<VolumeAttachment> {
        self.refuse("volumes.attach")
    }
    async fn get_volume(&self, _: &Tenant, _: &str) -> Result<Volume> {
        self.refuse("volumes.get")
    }
    async fn list_volumes(&self, _: &Tenant, _: &Labels) -> Result<Vec<Volume>> {
        self.refuse("volumes.list")
    }
    async fn resize_volume(&self, _: &Tenant, _: &str, _: ByteSize) -> Result<Volume> {
        self.refuse("volumes.resize")
    }
    async fn delete_volume(&self, _: &Tenant, _: &str, _: bool) -> Result<()> {
        self.refuse("volumes.delete")
    }
    async fn create_snapshot(&self, _: &Tenant, _: &str, _: &str) -> Result<Snapshot> {
        self.refuse("volumes.snapshot")
    }
    async fn list_snapshots(&self, _: &Tenant, _: Option<&str>) -> Result<Vec<Snapshot>> {
        self.refuse("volumes.snapshots")
    }
    async fn delete_snapshot(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("volumes.delete_snapshot")
    }
    async fn list_pools(&self, _: &Tenant) -> Result<Vec<StoragePool>> {
        self.refuse("volumes.pools")
    }
    async fn watch_volume(
        &self,
        _: &Tenant,
        _: &str,
    ) -> Result<BoxStream<'static, Result<Volume>>> {
        self.refuse("volumes.watch")
    }
}

#[async_trait]
impl Network for Absent {
    fn backend_name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> NetworkCapabilities {
        NetworkCapabilities::default()
    }
    async fn create_vpc(&self, _: &Tenant, _: &VpcSpec) -> Result<Vpc> {
        self.refuse("network.create_vpc")
    }
    async fn get_vpc(&self, _: &Tenant, _: &str) -> Result<Vpc> {
        self.refuse("network.get_vpc")
    }
    async fn list_vpcs(&self, _: &Tenant) -> Result<Vec<Vpc>> {
        self.refuse("network.list_vpcs")
    }
    async fn delete_vpc(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("network.delete_vpc")
    }
    async fn create_subnet(&self, _: &Tenant, _: &SubnetSpec) -> Result<Subnet> {
        self.refuse("network.create_subnet")
    }
    async fn get_subnet(&self, _: &Tenant, _: &str) -> Result<Subnet> {
        self.refuse("network.get_subnet")
    }
    async fn list_subnets(&self, _: &Tenant) -> Result<Vec<Subnet>> {
        self.refuse("network.list_subnets")
    }
    async fn watch_subnet(
        &self,
        _: &Tenant,
        _: &str,
    ) -> Result<BoxStream<'static, Result<Subnet>>> {
        self.refuse("network.watch_subnet")
    }
    async fn delete_subnet(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("network.delete_subnet")
    }
    async fn reserve_ip(&self, _: &Tenant, _: &IpReservationSpec) -> Result<IpReservation> {
        self.refuse("network.reserve_ip")
    }
    async fn get_ip(&self, _: &Tenant, _: &str) -> Result<IpReservation> {
        self.refuse("network.get_ip")
    }
    async fn list_ips(&self, _: &Tenant, _: Option<&str>) -> Result<Vec<IpReservation>> {
        self.refuse("network.list_ips")
    }
    async fn release_ip(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("network.release_ip")
    }
    async fn create_security_group(
        &self,
        _: &Tenant,
        _: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        self.refuse("network.create_security_group")
    }
    async fn update_security_group(
        &self,
        _: &Tenant,
        _: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        self.refuse("network.update_security_group")
    }
    async fn attach_interfaces(
        &self,
        _: &Tenant,
        _: &str,
        _: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>> {
        self.refuse("network.attach_interfaces")
    }
    async fn get_security_group(&self, _: &Tenant, _: &str) -> Result<SecurityGroup> {
        self.refuse("network.get_security_group")
    }
    async fn list_security_groups(&self, _: &Tenant) -> Result<Vec<SecurityGroup>> {
        self.refuse("network.list_security_groups")
    }
    async fn delete_security_group(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("network.delete_security_group")
    }
    async fn create_service(&self, _: &Tenant, _: &ServiceSpec) -> Result<Service> {
        self.refuse("network.create_service")
    }
    async fn get_service(&self, _: &Tenant, _: &str) -> Result<Service> {
        self.refuse("network.get_service")
    }
    async fn list_services(&self, _: &Tenant) -> Result<Vec<Service>> {
        self.refuse("network.list_services")
    }
    async fn delete_service(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("network.delete_service")
    }
}

#[async_trait]
impl LoadBalancer for Absent {
    fn backend_name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> LoadBalancerCapabilities {
        LoadBalancerCapabilities::default()
    }
    async fn create_pool(&self, _: &Tenant, _: &AddressPoolSpec) -> Result<AddressPool> {
        self.refuse("load_balancer.create_pool")
    }
    async fn get_pool(&self, _: &Tenant, _: &str) -> Result<AddressPool> {
        self.refuse("load_balancer.get_pool")
    }
    async fn list_pools(&self, _: &Tenant) -> Result<Vec<AddressPool>> {
        self.refuse("load_balancer.list_pools")
    }
    async fn delete_pool(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("load_balancer.delete_pool")
    }
    async fn expose(&self, _: &Tenant, _: &ExposureSpec) -> Result<Exposure> {
        self.refuse("load_balancer.expose")
    }
    async fn get_exposure(&self, _: &Tenant, _: &str) -> Result<Exposure> {
        self.refuse("load_balancer.get_exposure")
    }
    async fn list_exposures(&self, _: &Tenant) -> Result<Vec<Exposure>> {
        self.refuse("load_balancer.list_exposures")
    }
    async fn release(&self, _: &Tenant, _: &str) -> Result<()> {
        self.refuse("load_balancer.release")
    }
    async fn watch_exposure(
        &self,
        _: &Tenant,
        _: &str,
    ) -> Result<BoxStream<'static, Result<Exposure>>> {
        self.refuse("load_balancer.watch_exposure")
    }
}
