//! A stand-in for kube-ovn-controller: VPC and subnet status, IPAM for `IP` objects and pods.
//!
//! Addresses come from `kubeovn_ipam` (beside this module), a model of Kube-OVN's own IPAM written from its
//! source (kubeovn/kube-ovn at commit `1533681d7a6b3dbdd7e8870fa70f0dc6aa49a82a`; the files are
//! cited there and below). Nothing here calls kubecloud code.
//!
//! What it does, through the API as the real controller does:
//!
//! - **Vpc**: `status.conditions` `Ready=True`, `standby: true`, `router`, and `subnets` (the
//!   subnets whose `spec.vpc` names it).
//! - **Subnet**: `Validated` and `Ready` conditions (`Validated=False`, reason
//!   `ValidateLogicalSwitchFailed`, when its CIDR overlaps an older subnet of the same VPC), and
//!   the eight address fields `calcSubnetStatusIP` writes (`pkg/controller/subnet_status.go`):
//!   `v4availableIPs`, `v4usingIPs`, `v4availableIPrange`, `v4usingIPrange` and their `v6…`
//!   twins (0 and `""` for the family the subnet does not have). The gateway is excluded as
//!   `formatExcludeIPs` would add it (the double does not write the formatted spec back).
//! - **IP** objects made ahead of a workload (`pkg/controller/ip.go` `handleAddReservedIP`): an
//!   `IP` without finalizers whose name is the port name of its `podName` and `namespace`
//!   (`<podName>.<namespace>`, `<podName>.<namespace>.<provider>` on a subnet of another
//!   provider: `pkg/ovs/util.go` `PodNameToPortName`) gets the fixed
//!   `v4IpAddress`/`v6IpAddress` **without a conflict check** (`acquireStaticAddress` with
//!   `liveMigration` true: an address held by another NIC is shared, as Kube-OVN does), or the
//!   lowest free address with a **random MAC** (a `macAddress` is ignored when no address is
//!   fixed, as `acquireIPAddress` passes no MAC). It then carries the finalizer
//!   `kube-ovn-controller`, the labels `ovn.kubernetes.io/subnet`, `<subnet>: ""` and
//!   `ovn.kubernetes.io/ip_reserved: "true"`. Any other `IP` is left alone, as Kube-OVN leaves it
//!   (no event: Kube-OVN only logs). A refused or pending `IP` is tried again when an address of
//!   its subnet is released or the subnet appears (Kube-OVN retries with backoff). When an `IP`
//!   is deleted its address is released (to the released list: see the IPAM) before the
//!   finalizer goes.
//! - **Pods** asking for a subnet with `ovn.kubernetes.io/logical_switch` (or, for a Multus
//!   attachment, `<nad>.<ns>.ovn.kubernetes.io/logical_switch`, or just the attachment in
//!   `k8s.v1.cni.cncf.io/networks` with a subnet of that provider): an address (fixed by
//!   `…/ip_address`, else the lowest free) and MAC (fixed by `…/mac_address`, else random), an
//!   `IP` object `<pod>.<ns>` (`<pod>.<ns>.<provider>` for attachments, labelled
//!   `ovn.kubernetes.io/ip_reserved: "false"`) and the annotations `…/ip_address`,
//!   `mac_address`, `cidr`, `gateway`, `logical_switch` and `allocated: "true"`. A refusal is a
//!   Warning event `AcquireAddressFailed` with Kube-OVN's message
//!   `stage=acquireAddress error=AddressConflict` (`AddressOutOfRange`, `NoAvailableAddress`)
//!   (`pkg/controller/pod.go` `reconcileAllocateSubnets`): a fixed address held by another NIC,
//!   the gateway, a MAC held by another NIC, an address outside the subnet, a full subnet.
//! - **KubeVirt VM pods** (label `vm.kubevirt.io/name`) are keyed by the VM: the `IP` is
//!   `<vm>.<ns>` with `podType: VirtualMachine`, so the next pod of the VM (after a live
//!   migration) gets the same address and MAC. The `IP` goes when the VirtualMachine is deleted;
//!   a plain pod's goes with the pod. `IP`s labelled `ip_reserved: "true"` stay.
//! - **OvnEip** (external access): an address from the external subnet the EIP names (the
//!   `Subnet` of that name if there is one, else a simulated external network
//!   [`SIMULATED_EXTERNAL_CIDR`]): the requested `v4Ip`/`v6Ip` or the next free one; status
//!   `v4Ip`/`v6Ip`, `macAddress`, `type`, `ready: true` and `Ready=True`. A taken or outside
//!   address is refused: `ready: false` with `Ready=False` (reason `AllocateEipFailed`) and a
//!   `Warning` event. (Not revisited against upstream `pkg/controller/ovn_eip.go` yet, which
//!   needs the `Subnet` and only logs a refusal.)
//! - **OvnFip** / **OvnSnatRule**: `ready: true` with `v4Eip` (and the FIP's `v4Ip` from its
//!   `IP`, the SNAT rule's `v4IpCidr` from its subnet, and `vpc`) while their `ovnEip` exists
//!   and is ready; `ready: false` otherwise (re-checked when the EIP changes or goes).
//! - **Vip** (an address reserved ahead of any pod) and pods taking one through the
//!   `ovn.kubernetes.io/vip` annotation: see [`vip`]. An `IP` not named as its pod's port is
//!   never allocated, whatever its labels (above): a reservation made that way would never get
//!   an address on a real cluster.
//!
//! **Counts** are written *after* the `IP` (or `Vip`) change that causes them, as Kube-OVN
//! writes them from its `updateSubnetStatusQueue`: a client reading a subnet's counts right
//! after seeing an address change may read the old ones, and must wait for them.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::kubeovn_ipam::{IpamError, SubnetIpam, SubnetShape};

pub mod vip;
use super::kubeovn_security::Northbound;
use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;
use crate::store::EventType;
pub use vip::VIP_ANNOTATION;

const API: &str = "kubeovn.io/v1";
const FINALIZER: &str = "kube-ovn-controller";
const SUBNET_LABEL: &str = "ovn.kubernetes.io/subnet";
const NODE_LABEL: &str = "ovn.kubernetes.io/node_name";
const RESERVED_LABEL: &str = "ovn.kubernetes.io/ip_reserved";
const VM_LABEL: &str = "vm.kubevirt.io/name";
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const VM_POD_TYPE: &str = "VirtualMachine";

/// The CIDR of the simulated external network `OvnEip`s take addresses from when the external
/// subnet they name has no `Subnet` object.
pub const SIMULATED_EXTERNAL_CIDR: &str = "172.31.0.0/16";

/// The simulated kube-ovn-controller. Not registered by default: add it with
/// [`TestServerBuilder::controller`](crate::TestServerBuilder::controller).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kubecloud_testkit::{KubeOvnController, TestServer};
/// let server = TestServer::builder().controller(KubeOvnController::default()).start().await?;
/// assert!(server.controller("kube-ovn-controller").is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct KubeOvnController {
    northbound: Northbound,
    ipam: Arc<Mutex<BTreeMap<String, SubnetIpam>>>,
}

impl KubeOvnController {
    /// The security-group state this controller keeps (ports, port groups, ACLs), for tests to
    /// ask what is in force on a port (see [`super::kubeovn_security`]). Take it before the
    /// controller is handed to the server.
    pub fn northbound(&self) -> Northbound {
        self.northbound.clone()
    }

    /// Puts every port of the live `pod` (one per provider it is allocated on) in step with the
    /// pod's security-group and port-security annotations. An allocation made just now is
    /// patched onto the pod and comes back as its next event.
    fn sync_pod_ports(&self, pod: &Value) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = name_of(pod);
        let key = pod["metadata"]["labels"][VM_LABEL]
            .as_str()
            .unwrap_or(name)
            .to_string();
        let annotations = &pod["metadata"]["annotations"];
        for (k, v) in annotations.as_object().into_iter().flatten() {
            let Some(provider) = k.strip_suffix(".kubernetes.io/allocated") else {
                continue;
            };
            if v != "true" {
                continue;
            }
            let port = if provider == "ovn" {
                format!("{key}.{ns}")
            } else {
                format!("{key}.{ns}.{provider}")
            };
            self.northbound.sync_port(&port, annotations, provider);
        }
    }
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn terminating(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

/// The address an `IP` object holds, if any.
fn ip_of(o: &Value) -> Option<IpAddr> {
    ["v4IpAddress", "v6IpAddress", "ipAddress"]
        .iter()
        .filter_map(|f| o["spec"][f].as_str())
        .filter_map(|s| s.split(',').next())
        .find_map(|s| s.split('/').next()?.parse().ok())
}

fn mac_of(o: &Value) -> Option<String> {
    o["spec"]["macAddress"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// A subnet's provider (`ovn` unless it is an attachment's).
fn provider_of(subnet: &Value) -> &str {
    subnet["spec"]["provider"]
        .as_str()
        .filter(|p| !p.is_empty())
        .unwrap_or("ovn")
}

/// `ovs.PodNameToPortName` (`pkg/ovs/util.go`): the port, and `IP` object, name of a pod's NIC.
fn port_name(pod: &str, namespace: &str, provider: &str) -> String {
    if provider == "ovn" {
        format!("{pod}.{namespace}")
    } else {
        format!("{pod}.{namespace}.{provider}")
    }
}

fn has_finalizer(o: &Value) -> bool {
    o["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// The address an `OvnEip` holds.
fn eip_address(o: &Value) -> Option<IpAddr> {
    ["v4Ip", "v6Ip"]
        .iter()
        .filter_map(|f| o["status"][f].as_str())
        .find_map(|s| s.parse().ok())
}

/// Whether two CIDRs share an address.
fn cidrs_overlap(a: &ipnet::IpNet, b: &ipnet::IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": type_, "status": if ok { "True" } else { "False" }, "reason": reason,
        "message": message, "lastUpdateTime": now, "lastTransitionTime": now,
    })
}

fn now() -> String {
    crate::meta::now()
}

/// Whether the stored conditions already say the same (ignoring timestamps).
fn same_conditions(current: &Value, desired: &Value) -> bool {
    let key = |c: &Value| {
        c.as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["type"].clone(), c["status"].clone(), c["reason"].clone()))
            .collect::<Vec<_>>()
    };
    key(current) == key(desired)
}

/// What makes an event's name unique: the next revision in process (as before), the time in
/// nanoseconds (hex) on a remote server, as client-go's event recorder names events.
fn event_suffix(api: &ControllerApi) -> String {
    match api.in_process() {
        Ok(cluster) => (cluster.resource_version() + 1).to_string(),
        Err(_) => format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ),
    }
}

/// Records a Warning event about an object, as the real controller's event recorder does.
pub(super) async fn warn(
    api: &ControllerApi,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    message: &str,
) {
    let ns = namespace.unwrap_or("default");
    let now = now();
    let mut involved =
        json!({"apiVersion": if kind == "Pod" { "v1" } else { API }, "kind": kind, "name": name});
    if let Some(n) = namespace {
        involved["namespace"] = json!(n);
    }
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{}", event_suffix(api)), "namespace": ns},
        "involvedObject": involved,
        "reason": "AcquireAddressFailed", "message": message, "type": "Warning",
        "source": {"component": "kube-ovn-controller"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    tracing::debug!(
        kind,
        name,
        message,
        "kube-ovn-controller refused an allocation"
    );
    if let Err(e) = api.create(event).await {
        tracing::debug!(error = %e, "could not record the event");
    }
}

impl KubeOvnController {
    /// Runs `f` on the IPAM of the `Subnet` object `subnet`, loading it from the `IP`s and
    /// `OvnEip`s that hold addresses in it when it is first seen or its spec changed (as
    /// kube-ovn-controller's `InitIPAM` does at start: every held address assigned again without
    /// a conflict check, nothing released).
    async fn with_ipam<R>(
        &self,
        api: &ControllerApi,
        subnet: &Value,
        f: impl FnOnce(&mut SubnetIpam) -> R,
    ) -> Result<Option<R>, ControllerError> {
        let Some(shape) = SubnetShape::of(subnet) else {
            return Ok(None);
        };
        let name = name_of(subnet).to_string();
        let lock = || self.ipam.lock().unwrap_or_else(|e| e.into_inner());
        // Reconciles of one controller run one at a time, so nothing loads the subnet between
        // this check and the insert below (the lock is not held across the reads).
        let stale = lock().get(&name).is_none_or(|s| s.shape != shape);
        if stale {
            let mut fresh = SubnetIpam::new(shape);
            let mut held: Vec<(String, IpAddr, Option<String>)> = Vec::new();
            api.for_each(API, "IP", None, |ip| {
                if ip["spec"]["subnet"] == name.as_str()
                    && let Some(addr) = ip_of(ip)
                {
                    held.push((name_of(ip).to_string(), addr, mac_of(ip)));
                }
            })
            .await?;
            api.for_each(API, "OvnEip", None, |eip| {
                if eip["spec"]["externalSubnet"] == name.as_str()
                    && let Some(addr) = eip_address(eip)
                {
                    let mac = eip["status"]["macAddress"].as_str().map(str::to_string);
                    held.push((name_of(eip).to_string(), addr, mac));
                }
            })
            .await?;
            api.for_each(API, "Vip", None, |vip| {
                if vip["spec"]["subnet"] == name.as_str()
                    && let Some(addr) = vip::vip_address(vip)
                {
                    let ns = vip["spec"]["namespace"].as_str().unwrap_or_default();
                    let mac = vip["status"]["mac"].as_str().map(str::to_string);
                    held.push((port_name(name_of(vip), ns, provider_of(subnet)), addr, mac));
                }
            })
            .await?;
            for (nic, addr, mac) in held {
                let _ = fresh.assign(&nic, addr, mac.as_deref(), false);
            }
            lock().insert(name.clone(), fresh);
        }
        Ok(lock().get_mut(&name).map(f))
    }

    /// Writes the subnet's conditions and address fields if they changed.
    async fn write_subnet_status(
        api: &ControllerApi,
        subnet: &Value,
        fields: Value,
    ) -> Result<(), ControllerError> {
        let name = name_of(subnet);
        let conflict = Self::overlapping(api, subnet).await?;
        let now = now();
        let conditions = match &conflict {
            Some(other) => json!([
                condition(
                    "Validated",
                    false,
                    "ValidateLogicalSwitchFailed",
                    &format!(
                        "{} conflicts with subnet {other}",
                        subnet["spec"]["cidrBlock"].as_str().unwrap_or_default()
                    ),
                    &now
                ),
                condition("Ready", false, "ValidateLogicalSwitchFailed", "", &now),
            ]),
            None => json!([
                condition("Validated", true, "ValidateLogicalSwitchSuccess", "", &now),
                condition("Ready", true, "ResourceReady", "", &now),
            ]),
        };
        let status = &subnet["status"];
        let same_fields = fields
            .as_object()
            .is_some_and(|f| f.iter().all(|(k, v)| &status[k] == v));
        if same_conditions(&status["conditions"], &conditions) && same_fields {
            return Ok(());
        }
        let keep = if same_conditions(&status["conditions"], &conditions) {
            status["conditions"].clone()
        } else {
            conditions
        };
        let mut patch = fields;
        patch["conditions"] = keep;
        api.merge_patch_status(API, "Subnet", None, name, &json!({ "status": patch }))
            .await?;
        Ok(())
    }

    /// The name of an older subnet of the same VPC whose CIDR overlaps this one's.
    async fn overlapping(
        api: &ControllerApi,
        subnet: &Value,
    ) -> Result<Option<String>, ControllerError> {
        let Some(mine) = SubnetShape::of(subnet) else {
            return Ok(None);
        };
        let created = |o: &Value| {
            (
                o["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse::<u64>().ok())
                    .unwrap_or(0),
            )
        };
        for other in api.list(API, "Subnet", None).await? {
            if name_of(&other) == name_of(subnet)
                || terminating(&other)
                || other["spec"]["vpc"] != subnet["spec"]["vpc"]
                || created(&other) > created(subnet)
            {
                continue;
            }
            if let Some(theirs) = SubnetShape::of(&other)
                && cidrs_overlap(&theirs.cidr, &mine.cidr)
            {
                return Ok(Some(name_of(&other).to_string()));
            }
        }
        Ok(None)
    }

    /// Writes a subnet's status from its IPAM and its `IP` objects (terminating ones included,
    /// as Kube-OVN's lister has them) and labelled `OvnEip`s.
    async fn recount(&self, api: &ControllerApi, subnet: &str) -> Result<(), ControllerError> {
        let Some(object) = api.get_opt(API, "Subnet", None, subnet).await? else {
            return Ok(());
        };
        if terminating(&object) {
            return Ok(());
        }
        let ips = api
            .list_where(API, "IP", None, |ip| ip["spec"]["subnet"] == subnet)
            .await?;
        let eips = api
            .list_where(API, "OvnEip", None, |e| {
                e["metadata"]["labels"][SUBNET_LABEL] == subnet
            })
            .await?
            .len()
            + Self::unbound_vips(api, subnet).await?;
        let refs: Vec<&Value> = ips.iter().collect();
        let Some(fields) = self
            .with_ipam(api, &object, |ipam| ipam.status(&refs, eips))
            .await?
        else {
            return Ok(());
        };
        Self::write_subnet_status(api, &object, fields).await
    }

    async fn reconcile_vpc(api: &ControllerApi, name: &str) -> Result<(), ControllerError> {
        let Some(vpc) = api.get_opt(API, "Vpc", None, name).await? else {
            return Ok(());
        };
        if terminating(&vpc) {
            return Ok(());
        }
        let mut subnets: Vec<String> = api
            .list(API, "Subnet", None)
            .await?
            .iter()
            .filter(|s| s["spec"]["vpc"] == name && !terminating(s))
            .map(|s| name_of(s).to_string())
            .collect();
        subnets.sort();
        let now = now();
        let conditions = json!([condition("Ready", true, "ResourceReady", "", &now)]);
        let status = &vpc["status"];
        if same_conditions(&status["conditions"], &conditions)
            && status["subnets"] == json!(subnets)
            && status["standby"] == true
        {
            return Ok(());
        }
        let conditions = if same_conditions(&status["conditions"], &conditions) {
            status["conditions"].clone()
        } else {
            conditions
        };
        api.merge_patch_status(
            API,
            "Vpc",
            None,
            name,
            &json!({"status": {"conditions": conditions, "standby": true, "default": false,
                               "router": name, "subnets": subnets}}),
        )
        .await?;
        Ok(())
    }

    async fn reconcile_subnet(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let vpc = ev.object["spec"]["vpc"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ev.kind == EventType::Deleted {
            self.ipam
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ev.name);
        } else {
            self.recount(api, &ev.name).await?;
            self.retry_pending(api, &ev.name).await?;
        }
        if !vpc.is_empty() {
            Self::reconcile_vpc(api, &vpc).await?;
        }
        Ok(())
    }

    /// Tries again the `IP`s of `subnet` waiting for an address (Kube-OVN requeues a refused
    /// one with backoff; an address released or a subnet appearing is what can change the
    /// answer).
    async fn retry_pending(
        &self,
        api: &ControllerApi,
        subnet: &str,
    ) -> Result<(), ControllerError> {
        let pending = api
            .list_where(API, "IP", None, |ip| {
                ip["spec"]["subnet"] == subnet && !has_finalizer(ip) && !terminating(ip)
            })
            .await?;
        for ip in pending {
            self.allocate_ip(api, name_of(&ip)).await?;
        }
        let pending = api
            .list_where(API, "Vip", None, |v| {
                v["spec"]["subnet"] == subnet
                    && v["status"]["mac"].as_str().is_none_or(str::is_empty)
            })
            .await?;
        for vip in pending {
            self.allocate_vip(api, name_of(&vip)).await?;
        }
        Ok(())
    }

    /// An `IP` object: release on deletion (`handleUpdateIP`), allocate one made ahead of a
    /// workload (`handleAddReservedIP`).
    async fn reconcile_ip(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let subnet_name = ev.object["spec"]["subnet"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let release = async |this: &Self| -> Result<(), ControllerError> {
            if let Some(subnet) = api.get_opt(API, "Subnet", None, &subnet_name).await? {
                this.with_ipam(api, &subnet, |ipam| {
                    if ipam.held(&ev.name).is_some() {
                        ipam.release(&ev.name);
                    }
                })
                .await?;
            }
            Ok(())
        };
        if ev.kind == EventType::Deleted {
            release(self).await?;
            self.recount(api, &subnet_name).await?;
            return self.retry_pending(api, &subnet_name).await;
        }
        let Some(ip) = api.get_opt(API, "IP", None, &ev.name).await? else {
            return Ok(());
        };
        if terminating(&ip) {
            if has_finalizer(&ip) {
                release(self).await?;
                let mut released = ip.clone();
                if let Some(f) = released["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|f| f != FINALIZER);
                }
                match api.replace(released).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
                self.recount(api, &subnet_name).await?;
                self.retry_pending(api, &subnet_name).await?;
            }
            return Ok(());
        }
        if has_finalizer(&ip) {
            // Handled already (Kube-OVN: "finalizer already added, no need to handle it again").
            return self.recount(api, &subnet_name).await;
        }
        self.allocate_ip(api, &ev.name).await
    }

    /// `handleAddReservedIP`: allocates an `IP` without finalizers named as its pod's port.
    async fn allocate_ip(&self, api: &ControllerApi, name: &str) -> Result<(), ControllerError> {
        let Some(ip) = api.get_opt(API, "IP", None, name).await? else {
            return Ok(());
        };
        if terminating(&ip) || has_finalizer(&ip) {
            return Ok(());
        }
        let subnet_name = ip["spec"]["subnet"].as_str().unwrap_or_default();
        let Some(subnet) = api.get_opt(API, "Subnet", None, subnet_name).await? else {
            tracing::debug!(ip = name, subnet = subnet_name, "failed to get subnet");
            return Ok(());
        };
        let pod = ip["spec"]["podName"].as_str().unwrap_or_default();
        let ns = ip["spec"]["namespace"].as_str().unwrap_or_default();
        if port_name(pod, ns, provider_of(&subnet)) != name {
            tracing::debug!(ip = name, "port name is not the ip name: not handled");
            return Ok(());
        }
        let fixed = ip_of(&ip);
        let mac = mac_of(&ip);
        let got = self
            .with_ipam(api, &subnet, |ipam| match fixed {
                // `acquireStaticAddress(..., liveMigration=true)`: no conflict check.
                Some(addr) => ipam
                    .assign(name, addr, mac.as_deref(), false)
                    .map(|m| (addr, m)),
                // `acquireIPAddress`: no MAC is passed, a random one is made.
                None => ipam.allocate(name, None),
            })
            .await?;
        let (addr, mac) = match got {
            Some(Ok(got)) => got,
            Some(Err(e)) => {
                tracing::debug!(ip = name, error = %e, "failed to acquire ip address");
                return Ok(());
            }
            None => return Ok(()),
        };
        let family = if addr.is_ipv4() {
            "v4IpAddress"
        } else {
            "v6IpAddress"
        };
        let node = ip["spec"]["nodeName"].as_str().unwrap_or_default();
        let reserved = if ip["metadata"]["labels"][RESERVED_LABEL] == "false" {
            "false"
        } else {
            "true"
        };
        api.merge_patch(
            API,
            "IP",
            None,
            name,
            &json!({
                "metadata": {
                    "finalizers": [FINALIZER],
                    "labels": {SUBNET_LABEL: subnet_name, NODE_LABEL: node, subnet_name: "",
                               RESERVED_LABEL: reserved},
                },
                "spec": {family: addr.to_string(), "ipAddress": addr.to_string(),
                         "macAddress": mac},
            }),
        )
        .await?;
        self.recount(api, subnet_name).await
    }

    /// The providers a pod asks addresses for, with the subnet named for each (if named).
    async fn requests(
        api: &ControllerApi,
        pod: &Value,
    ) -> Result<Vec<(String, String)>, ControllerError> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let annotations = pod["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        for (key, value) in &annotations {
            if let (Some(provider), Some(subnet)) = (
                key.strip_suffix(".kubernetes.io/logical_switch"),
                value.as_str(),
            ) {
                out.push((provider.to_string(), subnet.to_string()));
            }
        }
        let networks = annotations
            .get(NETWORKS)
            .and_then(Value::as_str)
            .unwrap_or_default();
        for network in networks.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let network = network.split('@').next().unwrap_or(network);
            let (nad_ns, nad) = network.split_once('/').unwrap_or((ns, network));
            let provider = format!("{nad}.{nad_ns}.ovn");
            if out.iter().any(|(p, _)| *p == provider) {
                continue;
            }
            if let Some(subnet) = api
                .list(API, "Subnet", None)
                .await?
                .iter()
                .find(|s| s["spec"]["provider"] == provider.as_str() && !terminating(s))
            {
                out.push((provider, name_of(subnet).to_string()));
            }
        }
        Ok(out)
    }

    /// Allocates for the pod of `ev` (or frees what a gone pod held); the live pod as read,
    /// when it is there and not terminating.
    async fn reconcile_pod(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<Option<Value>, ControllerError> {
        let ns = ev.namespace.clone().unwrap_or_default();
        let vm = ev.object["metadata"]["labels"][VM_LABEL]
            .as_str()
            .map(str::to_string);
        let pod = match api.get_opt("v1", "Pod", Some(&ns), &ev.name).await? {
            Some(p) if !terminating(&p) && ev.kind != EventType::Deleted => p,
            _ => {
                // Gone: a plain pod's addresses go with it; a VM's stay for its next pod.
                if vm.is_none() {
                    self.release_workload(api, &ns, &ev.name, false).await?;
                } else if let Some(vm) = vm
                    && api
                        .get_opt("kubevirt.io/v1", "VirtualMachine", Some(&ns), &vm)
                        .await
                        .ok()
                        .flatten()
                        .is_none()
                    && api
                        .list_selected("v1", "Pod", Some(&ns), &format!("{VM_LABEL}={vm}"))
                        .await?
                        .iter()
                        .all(terminating)
                {
                    self.release_workload(api, &ns, &vm, true).await?;
                }
                return Ok(None);
            }
        };
        self.allocate_pod(api, &pod).await?;
        Ok(Some(pod))
    }

    /// Allocates for every Kube-OVN network the live `pod` asks for.
    async fn allocate_pod(&self, api: &ControllerApi, pod: &Value) -> Result<(), ControllerError> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let vm = pod["metadata"]["labels"][VM_LABEL].as_str();
        let key = vm.unwrap_or(name_of(pod));
        for (provider, subnet) in Self::requests(api, pod).await? {
            self.allocate_for_pod(api, pod, ns, key, vm.is_some(), &provider, &subnet)
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn allocate_for_pod(
        &self,
        api: &ControllerApi,
        pod: &Value,
        ns: &str,
        key: &str,
        is_vm: bool,
        provider: &str,
        subnet_name: &str,
    ) -> Result<(), ControllerError> {
        let prefix = format!("{provider}.kubernetes.io/");
        let annotations = &pod["metadata"]["annotations"];
        let pod_name = name_of(pod).to_string();
        if annotations[format!("{prefix}allocated")] == "true" {
            return Ok(());
        }
        let refuse = async |message: &str| {
            warn(
                api,
                "Pod",
                Some(ns),
                &pod_name,
                &format!("stage=acquireAddress error={message}"),
            )
            .await;
        };
        let Some(subnet) = api.get_opt(API, "Subnet", None, subnet_name).await? else {
            refuse(&format!("subnet {subnet_name} not found")).await;
            return Ok(());
        };
        let Some(shape) = SubnetShape::of(&subnet) else {
            return Ok(());
        };
        let ip_name = port_name(key, ns, provider);
        let fixed_ip: Option<IpAddr> = annotations[format!("{prefix}ip_address")]
            .as_str()
            .and_then(|s| s.split(['/', ',']).next()?.trim().parse().ok());
        let fixed_mac: Option<String> = annotations[format!("{prefix}mac_address")]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        let pod_type = if is_vm { VM_POD_TYPE } else { "" };
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();

        let vip = annotations[VIP_ANNOTATION]
            .as_str()
            .filter(|v| !v.is_empty());
        let (addr, mac) = if let Some(vip) = vip {
            // `acquireAddress`: the `Vip`'s address, whatever the network (see [`vip`]).
            match self.take_vip(api, vip, &ip_name, is_vm, &subnet).await? {
                vip::Taken::Address(addr, mac) => (addr, mac),
                vip::Taken::Refused(message) => {
                    refuse(&message).await;
                    return Ok(());
                }
            }
        } else {
            let got = self
                .with_ipam(api, &subnet, |ipam| match fixed_ip {
                    Some(ip) => ipam
                        .assign(&ip_name, ip, fixed_mac.as_deref(), true)
                        .map(|mac| (ip, mac)),
                    None => ipam.allocate(&ip_name, fixed_mac.as_deref()),
                })
                .await?;
            match got {
                Some(Ok(got)) => got,
                Some(Err(e)) => {
                    refuse(&e.to_string()).await;
                    return Ok(());
                }
                None => return Ok(()),
            }
        };
        // `createOrUpdateIPCR`: the `IP` of the pod's port, made or brought up to date.
        let family = if addr.is_ipv4() {
            "v4IpAddress"
        } else {
            "v6IpAddress"
        };
        let mut ip_spec = json!({
            "podName": key, "namespace": ns, "subnet": subnet_name, "podType": pod_type,
            "nodeName": node, "ipAddress": addr.to_string(), "macAddress": mac,
            "attachIps": [], "attachMacs": [], "attachSubnets": [],
        });
        ip_spec[family] = json!(addr.to_string());
        match api.get_opt(API, "IP", None, &ip_name).await? {
            None => {
                api.create(json!({
                    "apiVersion": API, "kind": "IP",
                    "metadata": {"name": ip_name, "finalizers": [FINALIZER],
                                 "labels": {SUBNET_LABEL: subnet_name, NODE_LABEL: node,
                                            subnet_name: "", RESERVED_LABEL: "false"}},
                    "spec": ip_spec,
                }))
                .await?;
            }
            Some(existing) if !terminating(&existing) => {
                let same = ip_spec
                    .as_object()
                    .is_some_and(|m| m.iter().all(|(k, v)| &existing["spec"][k] == v));
                if !same || !has_finalizer(&existing) {
                    let mut labels =
                        json!({SUBNET_LABEL: subnet_name, NODE_LABEL: node, subnet_name: ""});
                    if existing["metadata"]["labels"][RESERVED_LABEL].is_null() {
                        labels[RESERVED_LABEL] = json!("false");
                    }
                    api.merge_patch(
                        API,
                        "IP",
                        None,
                        &ip_name,
                        &json!({"metadata": {"labels": labels, "finalizers": [FINALIZER]},
                                "spec": ip_spec}),
                    )
                    .await?;
                }
            }
            Some(_) => return Ok(()),
        }
        Self::annotate(api, ns, &pod_name, &prefix, &shape, subnet_name, addr, &mac).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn annotate(
        api: &ControllerApi,
        ns: &str,
        pod: &str,
        prefix: &str,
        shape: &SubnetShape,
        subnet: &str,
        addr: IpAddr,
        mac: &str,
    ) -> Result<(), ControllerError> {
        let mut a = serde_json::Map::new();
        a.insert(format!("{prefix}ip_address"), json!(addr.to_string()));
        a.insert(format!("{prefix}mac_address"), json!(mac));
        a.insert(format!("{prefix}cidr"), json!(shape.cidr.to_string()));
        a.insert(
            format!("{prefix}gateway"),
            json!(shape.gateway().to_string()),
        );
        a.insert(format!("{prefix}logical_switch"), json!(subnet));
        a.insert(format!("{prefix}allocated"), json!("true"));
        match api
            .merge_patch(
                "v1",
                "Pod",
                Some(ns),
                pod,
                &json!({"metadata": {"annotations": a}}),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `handleDeletePod` for workload `key` of `ns` whose addresses go: the `Vip`s it took are
    /// released, then the `IP` objects Kube-OVN made for it are deleted.
    async fn release_workload(
        &self,
        api: &ControllerApi,
        ns: &str,
        key: &str,
        vm: bool,
    ) -> Result<(), ControllerError> {
        self.release_vips_of(api, ns, key).await?;
        Self::delete_ips_of(api, ns, key, vm).await
    }

    /// Deletes the `IP` objects Kube-OVN made for workload `key` of `ns` (never reservations).
    async fn delete_ips_of(
        api: &ControllerApi,
        ns: &str,
        key: &str,
        vm: bool,
    ) -> Result<(), ControllerError> {
        let of_workload = |ip: &Value| {
            let is_vm = ip["spec"]["podType"] == VM_POD_TYPE;
            ip["spec"]["namespace"] == ns
                && ip["spec"]["podName"] == key
                && is_vm == vm
                && ip["metadata"]["labels"][RESERVED_LABEL] != "true"
                && !terminating(ip)
        };
        for ip in api.list_where(API, "IP", None, of_workload).await? {
            match api.delete(API, "IP", None, name_of(&ip)).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// External access: `OvnEip` allocation and `OvnFip`/`OvnSnatRule` readiness.
impl KubeOvnController {
    /// The external network an `OvnEip` takes its address from: its `Subnet`, or the simulated
    /// one (as a `Subnet`-shaped value).
    async fn external_network(
        api: &ControllerApi,
        name: &str,
    ) -> Result<(Value, bool), ControllerError> {
        if let Some(subnet) = api.get_opt(API, "Subnet", None, name).await?
            && SubnetShape::of(&subnet).is_some()
        {
            return Ok((subnet, true));
        }
        Ok((
            json!({"metadata": {"name": name}, "spec": {"cidrBlock": SIMULATED_EXTERNAL_CIDR}}),
            false,
        ))
    }

    async fn reconcile_eip(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        if ev.kind == EventType::Deleted {
            let subnet = ev.object["spec"]["externalSubnet"]
                .as_str()
                .unwrap_or("ovn-vpc-external-network");
            let (network, real) = Self::external_network(api, subnet).await?;
            self.with_ipam(api, &network, |ipam| {
                if ipam.held(&ev.name).is_some() {
                    ipam.release(&ev.name);
                }
            })
            .await?;
            if real {
                self.recount(api, subnet).await?;
            }
        } else {
            self.allocate_eip(api, &ev.name).await?;
        }
        for kind in ["OvnFip", "OvnSnatRule"] {
            for o in api.list(API, kind, None).await? {
                if o["spec"]["ovnEip"] == ev.name.as_str() {
                    Self::reconcile_nat(api, kind, name_of(&o)).await?;
                }
            }
        }
        Ok(())
    }

    async fn allocate_eip(&self, api: &ControllerApi, name: &str) -> Result<(), ControllerError> {
        let Some(eip) = api.get_opt(API, "OvnEip", None, name).await? else {
            return Ok(());
        };
        if terminating(&eip) || (eip["status"]["ready"] == true && eip_address(&eip).is_some()) {
            return Ok(());
        }
        let subnet = eip["spec"]["externalSubnet"]
            .as_str()
            .unwrap_or("ovn-vpc-external-network")
            .to_string();
        let (network, real) = Self::external_network(api, &subnet).await?;
        let requested = ["v4Ip", "v6Ip"]
            .iter()
            .filter_map(|f| eip["spec"][f].as_str())
            .find_map(|s| s.parse::<IpAddr>().ok());
        let allocated = self
            .with_ipam(api, &network, |ipam| match requested {
                Some(addr) => ipam.assign(name, addr, None, true).map(|mac| (addr, mac)),
                None => ipam.allocate(name, None),
            })
            .await?
            .unwrap_or(Err(IpamError::NoAvailable));
        let now = now();
        let status = match allocated {
            Ok((addr, mac)) => {
                let family = if addr.is_ipv4() { "v4Ip" } else { "v6Ip" };
                api.merge_patch(
                    API,
                    "OvnEip",
                    None,
                    name,
                    &json!({"metadata": {"labels": {SUBNET_LABEL: subnet}}}),
                )
                .await?;
                json!({"status": {
                    family: addr.to_string(),
                    "macAddress": mac,
                    "type": eip["spec"]["type"].as_str().unwrap_or("nat"),
                    "ready": true,
                    "conditions": [condition("Ready", true, "ResourceReady", "", &now)],
                }})
            }
            Err(e) => {
                warn(api, "OvnEip", None, name, &e.to_string()).await;
                let refused = json!([condition(
                    "Ready",
                    false,
                    "AllocateEipFailed",
                    &e.to_string(),
                    &now
                )]);
                if eip["status"]["ready"] == false
                    && same_conditions(&eip["status"]["conditions"], &refused)
                {
                    return Ok(());
                }
                json!({"status": {"ready": false, "conditions": refused}})
            }
        };
        api.merge_patch_status(API, "OvnEip", None, name, &status)
            .await?;
        if real {
            self.recount(api, &subnet).await?;
        }
        Ok(())
    }

    /// An `OvnFip` or `OvnSnatRule`: ready while its EIP is.
    async fn reconcile_nat(
        api: &ControllerApi,
        kind: &str,
        name: &str,
    ) -> Result<(), ControllerError> {
        let Some(nat) = api.get_opt(API, kind, None, name).await? else {
            return Ok(());
        };
        if terminating(&nat) {
            return Ok(());
        }
        let eip_name = nat["spec"]["ovnEip"].as_str().unwrap_or_default();
        let eip = api
            .get_opt(API, "OvnEip", None, eip_name)
            .await?
            .filter(|e| !terminating(e) && e["status"]["ready"] == true);
        let mut status = serde_json::Map::new();
        let ready = match eip.as_ref().and_then(eip_address) {
            Some(addr) => {
                status.insert("v4Eip".into(), json!(addr.to_string()));
                if kind == "OvnFip" {
                    // `ovn_fip.go`: `ipType: vip` names a `Vip`, anything else an `IP`.
                    let ip_name = nat["spec"]["ipName"].as_str().unwrap_or_default();
                    let internal = if nat["spec"]["ipType"] == "vip" {
                        api.get_opt(API, "Vip", None, ip_name)
                            .await?
                            .as_ref()
                            .and_then(vip::vip_address)
                    } else {
                        api.get_opt(API, "IP", None, ip_name)
                            .await?
                            .as_ref()
                            .and_then(ip_of)
                    };
                    if let Some(addr) = internal {
                        status.insert("v4Ip".into(), json!(addr.to_string()));
                    }
                } else {
                    let subnet = nat["spec"]["vpcSubnet"].as_str().unwrap_or_default();
                    if let Some(subnet) = api.get_opt(API, "Subnet", None, subnet).await? {
                        status.insert("v4IpCidr".into(), subnet["spec"]["cidrBlock"].clone());
                        status.insert("vpc".into(), subnet["spec"]["vpc"].clone());
                    }
                }
                true
            }
            None => false,
        };
        status.insert("ready".into(), json!(ready));
        let current = &nat["status"];
        if status.iter().all(|(k, v)| &current[k] == v) {
            return Ok(());
        }
        api.merge_patch_status(API, kind, None, name, &json!({"status": status}))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Controller for KubeOvnController {
    fn name(&self) -> &str {
        "kube-ovn-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("kubeovn.io", "vpcs"),
            Watched::new("kubeovn.io", "subnets"),
            Watched::new("kubeovn.io", "ips"),
            Watched::new("kubeovn.io", "vips"),
            Watched::new("", "pods"),
            Watched::new("kubevirt.io", "virtualmachines"),
            Watched::new("kubeovn.io", "ovn-eips"),
            Watched::new("kubeovn.io", "ovn-fips"),
            Watched::new("kubeovn.io", "ovn-snat-rules"),
            Watched::new("kubeovn.io", "security-groups"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        match ev.resource.as_str() {
            "vpcs" if ev.kind != EventType::Deleted => Self::reconcile_vpc(api, &ev.name).await,
            "subnets" => self.reconcile_subnet(api, ev).await,
            "ips" => {
                if ev.kind == EventType::Deleted {
                    self.northbound.remove_port(&ev.name);
                }
                self.reconcile_ip(api, ev).await
            }
            "vips" => self.reconcile_vip(api, ev).await,
            "pods" => {
                if let Some(pod) = self.reconcile_pod(api, ev).await? {
                    self.sync_pod_ports(&pod);
                }
                Ok(())
            }
            "security-groups" => {
                let current = api.get_opt(API, "SecurityGroup", None, &ev.name).await?;
                let live = current.as_ref().filter(|sg| !terminating(sg));
                self.northbound.sync_group(api, &ev.name, live).await
            }
            "ovn-eips" => self.reconcile_eip(api, ev).await,
            "ovn-fips" if ev.kind != EventType::Deleted => {
                Self::reconcile_nat(api, "OvnFip", &ev.name).await
            }
            "ovn-snat-rules" if ev.kind != EventType::Deleted => {
                Self::reconcile_nat(api, "OvnSnatRule", &ev.name).await
            }
            "virtualmachines" if ev.kind == EventType::Deleted => {
                let ns = ev.namespace.clone().unwrap_or_default();
                self.release_workload(api, &ns, &ev.name, true).await
            }
            _ => Ok(()),
        }
    }
}
