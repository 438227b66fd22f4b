//! A stand-in for kube-ovn-controller: VPC and subnet status, IPAM for `IP` objects and pods.
//!
//! What it does, through the API as the real controller does:
//!
//! - **Vpc**: `status.conditions` `Ready=True`, `standby: true`, `router`, and `subnets` (the
//!   subnets whose `spec.vpc` names it).
//! - **Subnet**: `Validated` and `Ready` conditions (`Validated=False`, reason
//!   `ValidateLogicalSwitchFailed`, when its CIDR overlaps an older subnet of the same VPC), and
//!   exact `v4availableIPs`/`v4usingIPs` (`v6…` for IPv6) counted from the live `IP` objects with
//!   [`kubecloud_core::ipam::AddressSpace::for_subnet`] (network, broadcast, gateway and
//!   `excludeIps` never handed out).
//! - **IP** objects labelled `ovn.kubernetes.io/ip_reserved: "true"` (reservations made ahead of a
//!   workload): the fixed `v4IpAddress`/`v6IpAddress` is taken, or the next free one; a missing
//!   `macAddress` is generated. The subnet's counts are written first, then the `IP` with its
//!   address, MAC and the `kube-ovn-controller` finalizer. A taken address, an address outside
//!   the subnet, a taken MAC or a full subnet is refused the way Kube-OVN does: nothing is
//!   allocated and a `Warning` event (reason `AcquireAddressFailed`) is recorded.
//!   When an `IP` is deleted, its address is freed (counts updated) before the finalizer goes.
//! - **Pods** asking for a subnet with `ovn.kubernetes.io/logical_switch` (or, for a Multus
//!   attachment, `<nad>.<ns>.ovn.kubernetes.io/logical_switch`, or just the attachment in
//!   `k8s.v1.cni.cncf.io/networks` with a subnet of that provider): an address (fixed by
//!   `…/ip_address`, else the next free) and MAC (fixed by `…/mac_address`, else generated), an
//!   `IP` object `<pod>.<ns>` (`<pod>.<ns>.<provider>` for attachments) and the annotations
//!   `…/ip_address`, `mac_address`, `cidr`, `gateway`, `logical_switch` and `allocated: "true"`.
//!   A fixed address held by a reservation of the pod's namespace that is free or bound to the
//!   same workload binds the reservation (`podName`, `podType`) instead of making a new `IP`.
//! - **KubeVirt VM pods** (label `vm.kubevirt.io/name`) are keyed by the VM: the `IP` is
//!   `<vm>.<ns>` with `podType: VirtualMachine`, so the next pod of the VM (after a live
//!   migration) gets the same address and MAC. The `IP` goes when the VirtualMachine is deleted;
//!   a plain pod's goes with the pod.
//! - **OvnEip** (external access): an address from the external subnet the EIP names (the
//!   `Subnet` of that name if there is one, else a simulated external network
//!   [`SIMULATED_EXTERNAL_CIDR`]): the requested `v4Ip`/`v6Ip` or the next free one; status
//!   `v4Ip`/`v6Ip`, `macAddress`, `type`, `ready: true` and `Ready=True`. A taken or outside
//!   address is refused: `ready: false` with `Ready=False` (reason `AllocateEipFailed`) and a
//!   `Warning` event.
//! - **OvnFip** / **OvnSnatRule**: `ready: true` with `v4Eip` (and the FIP's `v4Ip` from its
//!   `IP`, the SNAT rule's `v4IpCidr` from its subnet, and `vpc`) while their `ovnEip` exists
//!   and is ready; `ready: false` otherwise (re-checked when the EIP changes or goes).

use async_trait::async_trait;
use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{IpRange, MacAddress, SubnetSpec};
use serde_json::{Value, json};
use std::net::IpAddr;

use super::kubeovn_security::Northbound;
use super::{Controller, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::store::EventType;

const API: &str = "kubeovn.io/v1";
const FINALIZER: &str = "kube-ovn-controller";
const SUBNET_LABEL: &str = "ovn.kubernetes.io/subnet";
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

fn mac_of(o: &Value) -> Option<MacAddress> {
    o["spec"]["macAddress"].as_str()?.parse().ok()
}

/// A locally administered unicast MAC derived from the address (unique per address).
fn generated_mac(ip: IpAddr) -> MacAddress {
    let tail: [u8; 4] = match ip {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(v) => {
            let o = v.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    MacAddress([0x0e, 0x00, tail[0], tail[1], tail[2], tail[3]])
}

/// A `Subnet` object as a core spec (name = the object's name), for address arithmetic.
fn subnet_spec(o: &Value) -> Option<SubnetSpec> {
    let cidr = o["spec"]["cidrBlock"]
        .as_str()?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    let mut spec = SubnetSpec::new(
        name_of(o),
        o["spec"]["vpc"].as_str().unwrap_or("ovn-cluster"),
        cidr,
    );
    spec.gateway = o["spec"]["gateway"]
        .as_str()
        .and_then(|g| g.split(',').next()?.parse().ok());
    spec.exclude = o["spec"]["excludeIps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.parse::<IpRange>().ok())
        .collect();
    Some(spec)
}

fn list_ips(api: &Cluster, subnet: &str) -> Result<Vec<Value>, ControllerError> {
    Ok(api.list_where(API, "IP", None, |ip| {
        ip["spec"]["subnet"] == subnet && !terminating(ip)
    })?)
}

/// The subnet's address space with every live `IP` but `except` holding its address.
fn space(spec: &SubnetSpec, ips: &[Value], except: Option<&str>) -> AddressSpace {
    let mut space = AddressSpace::for_subnet(spec);
    for ip in ips.iter().filter(|ip| Some(name_of(ip)) != except) {
        if let Some(addr) = ip_of(ip) {
            let _ = space.reserve(addr, name_of(ip));
        }
    }
    space
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

/// Records a Warning event about an object, as the real controller's event recorder does.
pub(super) fn warn(api: &Cluster, kind: &str, namespace: Option<&str>, name: &str, message: &str) {
    let ns = namespace.unwrap_or("default");
    let now = now();
    let mut involved =
        json!({"apiVersion": if kind == "Pod" { "v1" } else { API }, "kind": kind, "name": name});
    if let Some(n) = namespace {
        involved["namespace"] = json!(n);
    }
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{}", api.resource_version() + 1), "namespace": ns},
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
    if let Err(e) = api.create(event) {
        tracing::debug!(error = %e, "could not record the event");
    }
}

impl KubeOvnController {
    /// Writes the subnet's conditions and counts if they changed; `space` is its address space as
    /// it is now.
    fn write_subnet_status(
        api: &Cluster,
        subnet: &Value,
        space: &AddressSpace,
    ) -> Result<(), ControllerError> {
        let name = name_of(subnet);
        let conflict = Self::overlapping(api, subnet)?;
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
        let v6 = subnet["spec"]["protocol"] == "IPv6";
        let (available, using) = if v6 {
            ("v6availableIPs", "v6usingIPs")
        } else {
            ("v4availableIPs", "v4usingIPs")
        };
        let status = &subnet["status"];
        let same = same_conditions(&status["conditions"], &conditions)
            && status[available].as_f64() == Some(space.available() as f64)
            && status[using].as_f64() == Some(space.used() as f64);
        if same {
            return Ok(());
        }
        let keep = if same_conditions(&status["conditions"], &conditions) {
            status["conditions"].clone()
        } else {
            conditions
        };
        api.merge_patch_status(
            API,
            "Subnet",
            None,
            name,
            &json!({"status": {"conditions": keep, available: space.available() as f64, using: space.used() as f64}}),
        )?;
        Ok(())
    }

    /// The name of an older subnet of the same VPC whose CIDR overlaps this one's.
    fn overlapping(api: &Cluster, subnet: &Value) -> Result<Option<String>, ControllerError> {
        let Some(mine) = subnet_spec(subnet) else {
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
        for other in api.list(API, "Subnet", None)? {
            if name_of(&other) == mine.name
                || terminating(&other)
                || other["spec"]["vpc"] != subnet["spec"]["vpc"]
                || created(&other) > created(subnet)
            {
                continue;
            }
            if let Some(theirs) = subnet_spec(&other)
                && kubecloud_core::cidrs_overlap(theirs.cidr, mine.cidr)
            {
                return Ok(Some(theirs.name));
            }
        }
        Ok(None)
    }

    /// Recounts a subnet from its live `IP` objects.
    fn recount(api: &Cluster, subnet: &str) -> Result<(), ControllerError> {
        let Some(object) = api.get_opt(API, "Subnet", None, subnet)? else {
            return Ok(());
        };
        if terminating(&object) {
            return Ok(());
        }
        let Some(spec) = subnet_spec(&object) else {
            return Ok(());
        };
        // Counted on the stored IPs in place (a copy of every IP of the subnet per IP event made
        // a subnet of N addresses quadratic).
        let mut counted = AddressSpace::for_subnet(&spec);
        api.for_each(API, "IP", None, |ip| {
            if ip["spec"]["subnet"] == subnet
                && !terminating(ip)
                && let Some(addr) = ip_of(ip)
            {
                let _ = counted.reserve(addr, name_of(ip));
            }
        })?;
        Self::write_subnet_status(api, &object, &counted)
    }

    fn reconcile_vpc(api: &Cluster, name: &str) -> Result<(), ControllerError> {
        let Some(vpc) = api.get_opt(API, "Vpc", None, name)? else {
            return Ok(());
        };
        if terminating(&vpc) {
            return Ok(());
        }
        let mut subnets: Vec<String> = api
            .list(API, "Subnet", None)?
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
        )?;
        Ok(())
    }

    fn reconcile_subnet(api: &Cluster, ev: &ObjectEvent) -> Result<(), ControllerError> {
        let vpc = ev.object["spec"]["vpc"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ev.kind != EventType::Deleted {
            Self::recount(api, &ev.name)?;
        }
        if !vpc.is_empty() {
            Self::reconcile_vpc(api, &vpc)?;
        }
        Ok(())
    }

    /// An `IP` object: release on deletion, allocate a reservation.
    fn reconcile_ip(api: &Cluster, ev: &ObjectEvent) -> Result<(), ControllerError> {
        let subnet_name = ev.object["spec"]["subnet"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ev.kind == EventType::Deleted {
            return Self::recount(api, &subnet_name);
        }
        let Some(ip) = api.get_opt(API, "IP", None, &ev.name)? else {
            return Ok(());
        };
        let has_finalizer = ip["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
        if terminating(&ip) {
            if has_finalizer {
                Self::recount(api, &subnet_name)?;
                let mut released = ip.clone();
                if let Some(f) = released["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|f| f != FINALIZER);
                }
                match api.replace(released) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(());
        }
        if has_finalizer && ip_of(&ip).is_some() && mac_of(&ip).is_some() {
            return Ok(());
        }
        if ip["metadata"]["labels"][RESERVED_LABEL] != "true" {
            return Ok(());
        }
        let Some(subnet) = api.get_opt(API, "Subnet", None, &subnet_name)? else {
            warn(
                api,
                "IP",
                None,
                &ev.name,
                &format!("subnet {subnet_name} not found"),
            );
            return Ok(());
        };
        let Some(spec) = subnet_spec(&subnet) else {
            return Ok(());
        };
        let others = list_ips(api, &subnet_name)?;
        let mut space = space(&spec, &others, Some(&ev.name));
        let addr = match ip_of(&ip) {
            Some(addr) => space.reserve(addr, &ev.name).map(|()| addr),
            None => space.allocate(&ev.name),
        };
        let addr = match addr {
            Ok(addr) => addr,
            Err(e) => {
                warn(api, "IP", None, &ev.name, &e.to_string());
                return Ok(());
            }
        };
        let mac = mac_of(&ip).unwrap_or_else(|| generated_mac(addr));
        if let Some(holder) = others
            .iter()
            .find(|o| name_of(o) != ev.name && mac_of(o) == Some(mac))
        {
            warn(
                api,
                "IP",
                None,
                &ev.name,
                &format!("mac {mac} is used by {}", name_of(holder)),
            );
            return Ok(());
        }
        Self::write_subnet_status(api, &subnet, &space)?;
        let family = if addr.is_ipv4() {
            "v4IpAddress"
        } else {
            "v6IpAddress"
        };
        let mut finalizers: Vec<Value> = ip["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !has_finalizer {
            finalizers.push(json!(FINALIZER));
        }
        api.merge_patch(
            API,
            "IP",
            None,
            &ev.name,
            &json!({
                "metadata": {"finalizers": finalizers, "labels": {SUBNET_LABEL: subnet_name}},
                "spec": {family: addr.to_string(), "ipAddress": addr.to_string(), "macAddress": mac.to_string()},
            }),
        )?;
        Ok(())
    }

    /// The providers a pod asks addresses for, with the subnet named for each (if named).
    fn requests(api: &Cluster, pod: &Value) -> Result<Vec<(String, String)>, ControllerError> {
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
                .list(API, "Subnet", None)?
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
    fn reconcile_pod(api: &Cluster, ev: &ObjectEvent) -> Result<Option<Value>, ControllerError> {
        let ns = ev.namespace.clone().unwrap_or_default();
        let vm = ev.object["metadata"]["labels"][VM_LABEL]
            .as_str()
            .map(str::to_string);
        let pod = match api.get_opt("v1", "Pod", Some(&ns), &ev.name)? {
            Some(p) if !terminating(&p) && ev.kind != EventType::Deleted => p,
            _ => {
                // Gone: a plain pod's addresses go with it; a VM's stay for its next pod.
                if vm.is_none() {
                    Self::delete_ips_of(api, &ns, &ev.name, false)?;
                } else if let Some(vm) = vm
                    && api
                        .get_opt("kubevirt.io/v1", "VirtualMachine", Some(&ns), &vm)
                        .ok()
                        .flatten()
                        .is_none()
                    && api
                        .list_selected("v1", "Pod", Some(&ns), &format!("{VM_LABEL}={vm}"))?
                        .iter()
                        .all(terminating)
                {
                    Self::delete_ips_of(api, &ns, &vm, true)?;
                }
                return Ok(None);
            }
        };
        let key = vm.clone().unwrap_or_else(|| ev.name.clone());
        for (provider, subnet) in Self::requests(api, &pod)? {
            Self::allocate_for_pod(api, &pod, &ns, &key, vm.is_some(), &provider, &subnet)?;
        }
        Ok(Some(pod))
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_for_pod(
        api: &Cluster,
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
        let Some(subnet) = api.get_opt(API, "Subnet", None, subnet_name)? else {
            warn(
                api,
                "Pod",
                Some(ns),
                &pod_name,
                &format!("subnet {subnet_name} not found"),
            );
            return Ok(());
        };
        let Some(spec) = subnet_spec(&subnet) else {
            return Ok(());
        };
        let ip_name = if provider == "ovn" {
            format!("{key}.{ns}")
        } else {
            format!("{key}.{ns}.{provider}")
        };
        let ips = list_ips(api, subnet_name)?;
        let fixed_ip: Option<IpAddr> = annotations[format!("{prefix}ip_address")]
            .as_str()
            .and_then(|s| s.split(['/', ',']).next()?.parse().ok());
        let fixed_mac: Option<MacAddress> = annotations[format!("{prefix}mac_address")]
            .as_str()
            .and_then(|s| s.parse().ok());
        let pod_type = if is_vm { VM_POD_TYPE } else { "" };
        let reserved_for = |o: &Value| {
            o["metadata"]["labels"][RESERVED_LABEL] == "true" && o["spec"]["namespace"] == ns
        };
        // Kept across pods of one VM; a reservation already bound to the workload; or new.
        let existing = ips.iter().find(|o| name_of(o) == ip_name).or_else(|| {
            ips.iter()
                .find(|o| reserved_for(o) && o["spec"]["podName"] == key)
        });
        let (addr, mac) = if let Some(held) = existing {
            let (Some(addr), Some(mac)) = (ip_of(held), mac_of(held)) else {
                return Ok(());
            };
            (addr, mac)
        } else {
            let mut space = space(&spec, &ips, None);
            let taken_by = fixed_ip.and_then(|ip| ips.iter().find(|o| ip_of(o) == Some(ip)));
            match (fixed_ip, taken_by) {
                (Some(ip), Some(reservation))
                    if reserved_for(reservation)
                        && reservation["spec"]["podName"]
                            .as_str()
                            .is_none_or(|p| p.is_empty() || p == key) =>
                {
                    let mac = mac_of(reservation).unwrap_or_else(|| generated_mac(ip));
                    api.merge_patch(
                        API,
                        "IP",
                        None,
                        name_of(reservation),
                        &json!({"spec": {
                            "podName": key, "podType": pod_type,
                            "nodeName": pod["spec"]["nodeName"].as_str().unwrap_or_default(),
                        }}),
                    )?;
                    Self::annotate(api, ns, &pod_name, &prefix, &spec, subnet_name, ip, mac)?;
                    return Ok(());
                }
                (Some(ip), Some(holder)) => {
                    warn(
                        api,
                        "Pod",
                        Some(ns),
                        &pod_name,
                        &format!("{ip} is already taken by {}", name_of(holder)),
                    );
                    return Ok(());
                }
                _ => {}
            }
            let addr = match fixed_ip {
                Some(ip) => space.reserve(ip, &ip_name).map(|()| ip),
                None => space.allocate(&ip_name),
            };
            let addr = match addr {
                Ok(a) => a,
                Err(e) => {
                    warn(api, "Pod", Some(ns), &pod_name, &e.to_string());
                    return Ok(());
                }
            };
            let mac = fixed_mac.unwrap_or_else(|| generated_mac(addr));
            if let Some(holder) = ips.iter().find(|o| mac_of(o) == Some(mac)) {
                warn(
                    api,
                    "Pod",
                    Some(ns),
                    &pod_name,
                    &format!("mac {mac} is used by {}", name_of(holder)),
                );
                return Ok(());
            }
            Self::write_subnet_status(api, &subnet, &space)?;
            let family = if addr.is_ipv4() {
                "v4IpAddress"
            } else {
                "v6IpAddress"
            };
            let mut ip_spec = json!({
                "podName": key, "namespace": ns, "subnet": subnet_name, "podType": pod_type,
                "ipAddress": addr.to_string(), "macAddress": mac.to_string(),
            });
            ip_spec[family] = json!(addr.to_string());
            if let Some(node) = pod["spec"]["nodeName"].as_str() {
                ip_spec["nodeName"] = json!(node);
            }
            api.create(json!({
                "apiVersion": API, "kind": "IP",
                "metadata": {"name": ip_name, "labels": {SUBNET_LABEL: subnet_name}, "finalizers": [FINALIZER]},
                "spec": ip_spec,
            }))?;
            (addr, mac)
        };
        Self::annotate(api, ns, &pod_name, &prefix, &spec, subnet_name, addr, mac)
    }

    #[allow(clippy::too_many_arguments)]
    fn annotate(
        api: &Cluster,
        ns: &str,
        pod: &str,
        prefix: &str,
        spec: &SubnetSpec,
        subnet: &str,
        addr: IpAddr,
        mac: MacAddress,
    ) -> Result<(), ControllerError> {
        let mut a = serde_json::Map::new();
        a.insert(format!("{prefix}ip_address"), json!(addr.to_string()));
        a.insert(format!("{prefix}mac_address"), json!(mac.to_string()));
        a.insert(format!("{prefix}cidr"), json!(spec.cidr.to_string()));
        a.insert(
            format!("{prefix}gateway"),
            json!(spec.gateway_ip().to_string()),
        );
        a.insert(format!("{prefix}logical_switch"), json!(subnet));
        a.insert(format!("{prefix}allocated"), json!("true"));
        match api.merge_patch(
            "v1",
            "Pod",
            Some(ns),
            pod,
            &json!({"metadata": {"annotations": a}}),
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the `IP` objects Kube-OVN made for workload `key` of `ns` (never reservations).
    fn delete_ips_of(api: &Cluster, ns: &str, key: &str, vm: bool) -> Result<(), ControllerError> {
        let of_workload = |ip: &Value| {
            let is_vm = ip["spec"]["podType"] == VM_POD_TYPE;
            ip["spec"]["namespace"] == ns
                && ip["spec"]["podName"] == key
                && is_vm == vm
                && ip["metadata"]["labels"][RESERVED_LABEL] != "true"
                && !terminating(ip)
        };
        for ip in api.list_where(API, "IP", None, of_workload)? {
            match api.delete(API, "IP", None, name_of(&ip)) {
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
    /// The external network an `OvnEip` takes its address from.
    fn external_network(api: &Cluster, name: &str) -> Result<SubnetSpec, ControllerError> {
        if let Some(subnet) = api.get_opt(API, "Subnet", None, name)?
            && let Some(spec) = subnet_spec(&subnet)
        {
            return Ok(spec);
        }
        let cidr = SIMULATED_EXTERNAL_CIDR
            .parse()
            .unwrap_or_else(|_| unreachable!("constant CIDR"));
        Ok(SubnetSpec::new(name, "external", cidr))
    }

    fn eip_address(o: &Value) -> Option<IpAddr> {
        ["v4Ip", "v6Ip"]
            .iter()
            .filter_map(|f| o["status"][f].as_str())
            .find_map(|s| s.parse().ok())
    }

    fn reconcile_eip(api: &Cluster, ev: &ObjectEvent) -> Result<(), ControllerError> {
        if ev.kind != EventType::Deleted {
            Self::allocate_eip(api, &ev.name)?;
        }
        for kind in ["OvnFip", "OvnSnatRule"] {
            for o in api.list(API, kind, None)? {
                if o["spec"]["ovnEip"] == ev.name.as_str() {
                    Self::reconcile_nat(api, kind, name_of(&o))?;
                }
            }
        }
        Ok(())
    }

    fn allocate_eip(api: &Cluster, name: &str) -> Result<(), ControllerError> {
        let Some(eip) = api.get_opt(API, "OvnEip", None, name)? else {
            return Ok(());
        };
        if terminating(&eip)
            || (eip["status"]["ready"] == true && Self::eip_address(&eip).is_some())
        {
            return Ok(());
        }
        let subnet = eip["spec"]["externalSubnet"]
            .as_str()
            .unwrap_or("ovn-vpc-external-network")
            .to_string();
        let network = Self::external_network(api, &subnet)?;
        let mut space = AddressSpace::for_subnet(&network);
        for other in api.list(API, "OvnEip", None)? {
            if name_of(&other) != name
                && !terminating(&other)
                && other["spec"]["externalSubnet"] == subnet.as_str()
                && let Some(addr) = Self::eip_address(&other)
            {
                let _ = space.reserve(addr, name_of(&other));
            }
        }
        let requested = ["v4Ip", "v6Ip"]
            .iter()
            .filter_map(|f| eip["spec"][f].as_str())
            .find_map(|s| s.parse::<IpAddr>().ok());
        let allocated = match requested {
            Some(addr) => space.reserve(addr, name).map(|()| addr),
            None => space.allocate(name),
        };
        let now = now();
        let status = match allocated {
            Ok(addr) => {
                let family = if addr.is_ipv4() { "v4Ip" } else { "v6Ip" };
                json!({"status": {
                    family: addr.to_string(),
                    "macAddress": generated_mac(addr).to_string(),
                    "type": eip["spec"]["type"].as_str().unwrap_or("nat"),
                    "ready": true,
                    "conditions": [condition("Ready", true, "ResourceReady", "", &now)],
                }})
            }
            Err(e) => {
                warn(api, "OvnEip", None, name, &e.to_string());
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
        api.merge_patch_status(API, "OvnEip", None, name, &status)?;
        Ok(())
    }

    /// An `OvnFip` or `OvnSnatRule`: ready while its EIP is.
    fn reconcile_nat(api: &Cluster, kind: &str, name: &str) -> Result<(), ControllerError> {
        let Some(nat) = api.get_opt(API, kind, None, name)? else {
            return Ok(());
        };
        if terminating(&nat) {
            return Ok(());
        }
        let eip_name = nat["spec"]["ovnEip"].as_str().unwrap_or_default();
        let eip = api
            .get_opt(API, "OvnEip", None, eip_name)?
            .filter(|e| !terminating(e) && e["status"]["ready"] == true);
        let mut status = serde_json::Map::new();
        let ready = match eip.as_ref().and_then(Self::eip_address) {
            Some(addr) => {
                status.insert("v4Eip".into(), json!(addr.to_string()));
                if kind == "OvnFip" {
                    let ip_name = nat["spec"]["ipName"].as_str().unwrap_or_default();
                    if let Some(ip) = api.get_opt(API, "IP", None, ip_name)?
                        && let Some(addr) = ip_of(&ip)
                    {
                        status.insert("v4Ip".into(), json!(addr.to_string()));
                    }
                } else {
                    let subnet = nat["spec"]["vpcSubnet"].as_str().unwrap_or_default();
                    if let Some(subnet) = api.get_opt(API, "Subnet", None, subnet)? {
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
        api.merge_patch_status(API, kind, None, name, &json!({"status": status}))?;
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
            Watched::new("", "pods"),
            Watched::new("kubevirt.io", "virtualmachines"),
            Watched::new("kubeovn.io", "ovn-eips"),
            Watched::new("kubeovn.io", "ovn-fips"),
            Watched::new("kubeovn.io", "ovn-snat-rules"),
            Watched::new("kubeovn.io", "security-groups"),
        ]
    }

    async fn reconcile(&self, api: &Cluster, ev: &ObjectEvent) -> Result<(), ControllerError> {
        match ev.resource.as_str() {
            "vpcs" if ev.kind != EventType::Deleted => Self::reconcile_vpc(api, &ev.name),
            "subnets" => Self::reconcile_subnet(api, ev),
            "ips" => {
                if ev.kind == EventType::Deleted {
                    self.northbound.remove_port(&ev.name);
                }
                Self::reconcile_ip(api, ev)
            }
            "pods" => {
                if let Some(pod) = Self::reconcile_pod(api, ev)? {
                    self.sync_pod_ports(&pod);
                }
                Ok(())
            }
            "security-groups" => {
                let current = api.get_opt(API, "SecurityGroup", None, &ev.name)?;
                let live = current.as_ref().filter(|sg| !terminating(sg));
                self.northbound.sync_group(api, &ev.name, live)
            }
            "ovn-eips" => Self::reconcile_eip(api, ev),
            "ovn-fips" if ev.kind != EventType::Deleted => {
                Self::reconcile_nat(api, "OvnFip", &ev.name)
            }
            "ovn-snat-rules" if ev.kind != EventType::Deleted => {
                Self::reconcile_nat(api, "OvnSnatRule", &ev.name)
            }
            "virtualmachines" if ev.kind == EventType::Deleted => {
                let ns = ev.namespace.clone().unwrap_or_default();
                Self::delete_ips_of(api, &ns, &ev.name, true)
            }
            _ => Ok(()),
        }
    }
}
