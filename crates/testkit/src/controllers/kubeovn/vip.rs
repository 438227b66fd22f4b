//! Kube-OVN `Vip`s: an address reserved in a subnet ahead of any pod, and the pods that take it
//! through the `ovn.kubernetes.io/vip` annotation. Written from kubeovn/kube-ovn at commit
//! `1533681d7a6b3dbdd7e8870fa70f0dc6aa49a82a`:
//!
//! - `pkg/controller/vip.go` `handleAddVirtualIP`, `createOrUpdateVipCR`: a `Vip` (cluster
//!   scoped, `spec.subnet` required) whose `status.mac` is empty gets the fixed
//!   `spec.v4ip`/`v6ip` (with `spec.macAddress`, if any) **with** a conflict check
//!   (`acquireStaticIPAddress`), else the lowest free address and a random MAC
//!   (`acquireIPAddress`). Its IPAM NIC is its port name (`<vip>.<spec.namespace>`,
//!   `PodNameToPortName`). One update then writes `spec.v4ip`/`v6ip`/`macAddress`,
//!   `status.v4ip`/`v6ip`/`mac`/`type`, the finalizer `kube-ovn-controller` and the labels
//!   `ovn.kubernetes.io/subnet: <subnet>` and `ovn.kubernetes.io/ip_reserved: ""`. A refusal is
//!   only logged (Kube-OVN requeues it): the double tries again when an address of the subnet is
//!   released or the subnet appears.
//! - `handleUpdateVirtualIP`: a deleted `Vip` releases its address, then loses its finalizer.
//! - `pkg/controller/pod.go` `acquireAddress`: a pod annotated `ovn.kubernetes.io/vip: <vip>`
//!   gets the `Vip`'s address and MAC on **every** Kube-OVN network it asks for (the annotation
//!   is not per provider). `podReuseVip` labels the `Vip` `ip_reserved: <port name>` and refuses
//!   any other port with `vip '<vip>' is in use by pod <port>` (so a second Kube-OVN network of
//!   the same pod is refused); the next pod of the same KubeVirt VM has the same port name and
//!   reuses it (keep-vm-ip). A missing `Vip` is refused with the lister's error.
//! - `handleDeletePod` → `releaseVip`: when the pod's addresses are released (a plain pod
//!   deleted; a VM's once the VM is gone) the label goes back to `""` and the `Vip` holds its
//!   address again (`GetStaticAddress` without a conflict check).
//! - `pkg/controller/subnet_status.go` `calculateUsingIPs`: `Vip`s labelled with the subnet and
//!   `ip_reserved: ""` (unbound) count as used addresses.
//! - `pkg/controller/ovn_fip.go`: an `OvnFip` with `ipType: vip` takes its internal address from
//!   the `Vip` named by `ipName` (see the parent module's `reconcile_nat`).
//!
//! Stricter than Kube-OVN, on purpose: Kube-OVN drops the `Vip`'s IPAM hold when a pod takes
//! it and holds the address for the pod only once its IPAM is rebuilt from the `IP` objects;
//! the double holds it for the pod's port at once, so no other NIC can be given it meanwhile. A
//! pod whose `Vip` has no address yet, or lies in another subnet than the one the pod asks for,
//! is refused (Kube-OVN would hand out an empty or foreign address) and tried again when the
//! `Vip` changes.

use serde_json::{Value, json};
use std::net::IpAddr;

use super::{
    API, FINALIZER, KubeOvnController, RESERVED_LABEL, SUBNET_LABEL, has_finalizer, name_of,
    port_name, provider_of, terminating,
};
use crate::cluster::ObjectEvent;
use crate::controllers::ControllerApi;
use crate::controllers::ControllerError;
use crate::store::EventType;

/// The pod annotation naming the `Vip` a pod takes (`util.VipAnnotation`).
pub const VIP_ANNOTATION: &str = "ovn.kubernetes.io/vip";

/// The address a `Vip` was given, if any.
pub(super) fn vip_address(vip: &Value) -> Option<IpAddr> {
    ["v4ip", "v6ip"]
        .iter()
        .filter_map(|f| vip["status"][f].as_str())
        .find_map(|s| s.parse().ok())
}

fn vip_mac(vip: &Value) -> Option<String> {
    vip["status"]["mac"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// The port a `Vip` is bound to (`ip_reserved` label), if any.
fn bound_port(vip: &Value) -> &str {
    vip["metadata"]["labels"][RESERVED_LABEL]
        .as_str()
        .unwrap_or_default()
}

/// The IPAM NIC of a `Vip` in `subnet`.
fn vip_nic(vip: &Value, subnet: &Value) -> String {
    let ns = vip["spec"]["namespace"].as_str().unwrap_or_default();
    port_name(name_of(vip), ns, provider_of(subnet))
}

/// What a pod gets from its `Vip`: the address and MAC, or a refusal message.
pub(super) enum Taken {
    /// The pod's port now holds the `Vip`'s address and MAC.
    Address(IpAddr, String),
    /// Refused, with Kube-OVN's message.
    Refused(String),
}

impl KubeOvnController {
    /// A `Vip` event: allocation, release on deletion, and the subnet's counts.
    pub(super) async fn reconcile_vip(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let subnet_name = ev.object["spec"]["subnet"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ev.kind == EventType::Deleted {
            // `handleDelVirtualIP`: the subnet's status is brought up to date.
            self.recount(api, &subnet_name).await?;
            return self.retry_pending(api, &subnet_name).await;
        }
        let Some(vip) = api.get_opt(API, "Vip", None, &ev.name).await? else {
            return Ok(());
        };
        if terminating(&vip) {
            if has_finalizer(&vip) {
                if let Some(subnet) = api.get_opt(API, "Subnet", None, &subnet_name).await? {
                    let nic = vip_nic(&vip, &subnet);
                    self.with_ipam(api, &subnet, |ipam| ipam.release(&nic))
                        .await?;
                }
                let mut released = vip.clone();
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
        if vip_mac(&vip).is_some() {
            return self.recount(api, &subnet_name).await;
        }
        self.allocate_vip(api, &ev.name).await
    }

    /// `handleAddVirtualIP`: the `Vip`'s address and MAC, written back in one update.
    pub(super) async fn allocate_vip(
        &self,
        api: &ControllerApi,
        name: &str,
    ) -> Result<(), ControllerError> {
        let Some(vip) = api.get_opt(API, "Vip", None, name).await? else {
            return Ok(());
        };
        if terminating(&vip) || vip_mac(&vip).is_some() {
            return Ok(());
        }
        let subnet_name = vip["spec"]["subnet"].as_str().unwrap_or_default();
        if subnet_name.is_empty() {
            tracing::debug!(vip = name, "failed to create vip, subnet should be set");
            return Ok(());
        }
        let Some(subnet) = api.get_opt(API, "Subnet", None, subnet_name).await? else {
            tracing::debug!(vip = name, subnet = subnet_name, "failed to get subnet");
            return Ok(());
        };
        let nic = vip_nic(&vip, &subnet);
        let fixed: Option<IpAddr> = ["v4ip", "v6ip"]
            .iter()
            .filter_map(|f| vip["spec"][f].as_str())
            .find_map(|s| s.parse().ok());
        let mac = vip["spec"]["macAddress"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        let got = self
            .with_ipam(api, &subnet, |ipam| match (fixed, &mac) {
                (Some(addr), _) => ipam
                    .assign(&nic, addr, mac.as_deref(), true)
                    .map(|m| (addr, m)),
                // A MAC alone is `acquireStaticIPAddress` with no address: refused by its parse.
                (None, Some(_)) => Err(super::IpamError::OutOfRange),
                (None, None) => ipam.allocate(&nic, None),
            })
            .await?;
        let (addr, mac) = match got {
            Some(Ok(got)) => got,
            Some(Err(e)) => {
                tracing::debug!(vip = name, error = %e, "failed to acquire vip address");
                return Ok(());
            }
            None => return Ok(()),
        };
        let (spec_family, status_family) = if addr.is_ipv4() {
            ("v4ip", "v4ip")
        } else {
            ("v6ip", "v6ip")
        };
        let mut updated = vip.clone();
        updated["spec"][spec_family] = json!(addr.to_string());
        updated["spec"]["macAddress"] = json!(mac);
        updated["status"] = json!({
            status_family: addr.to_string(), "mac": mac,
            "type": vip["spec"]["type"].as_str().unwrap_or_default(),
        });
        let meta = &mut updated["metadata"];
        if !meta["labels"].is_object() {
            meta["labels"] = json!({});
        }
        meta["labels"][SUBNET_LABEL] = json!(subnet_name);
        meta["labels"][RESERVED_LABEL] = json!("");
        let mut finalizers = meta["finalizers"].as_array().cloned().unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(json!(FINALIZER));
        }
        meta["finalizers"] = json!(finalizers);
        match api.replace(updated).await {
            Ok(_) => {}
            // Changed meanwhile: its next event brings it back here.
            Err(e) if e.is_conflict() || e.is_not_found() => {
                self.with_ipam(api, &subnet, |ipam| ipam.release(&nic))
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.recount(api, subnet_name).await?;
        self.retry_pods_of_vip(api, &vip).await
    }

    /// `podReuseVip` for the pod port `port` asking for `vip_name` on `subnet`.
    pub(super) async fn take_vip(
        &self,
        api: &ControllerApi,
        vip_name: &str,
        port: &str,
        keep: bool,
        subnet: &Value,
    ) -> Result<Taken, ControllerError> {
        let Some(vip) = api.get_opt(API, "Vip", None, vip_name).await? else {
            return Ok(Taken::Refused(format!(
                "vips.kubeovn.io \"{vip_name}\" not found"
            )));
        };
        let (Some(addr), Some(mac)) = (vip_address(&vip), vip_mac(&vip)) else {
            return Ok(Taken::Refused(format!(
                "vip '{vip_name}' has no address yet"
            )));
        };
        let bound = bound_port(&vip);
        let reusable = bound.is_empty() || (keep && bound == port);
        if !reusable {
            return Ok(Taken::Refused(format!(
                "vip '{vip_name}' is in use by pod {bound}"
            )));
        }
        if vip["spec"]["subnet"] != name_of(subnet) {
            return Ok(Taken::Refused(format!(
                "vip '{vip_name}' is in subnet {}, not {}",
                vip["spec"]["subnet"].as_str().unwrap_or_default(),
                name_of(subnet)
            )));
        }
        if bound.is_empty() {
            api.merge_patch(
                API,
                "Vip",
                None,
                vip_name,
                &json!({"metadata": {"labels": {RESERVED_LABEL: port}}}),
            )
            .await?;
        }
        let nic = vip_nic(&vip, subnet);
        let taken = self
            .with_ipam(api, subnet, |ipam| {
                ipam.release(&nic);
                ipam.assign(port, addr, Some(&mac), false)
            })
            .await?;
        match taken {
            Some(Ok(mac)) => Ok(Taken::Address(addr, mac)),
            Some(Err(e)) => Ok(Taken::Refused(e.to_string())),
            None => Ok(Taken::Refused(format!(
                "subnet {} has no usable CIDR",
                name_of(subnet)
            ))),
        }
    }

    /// `releaseVip`: every `Vip` bound to a port of workload `key` in `ns` is unbound and holds
    /// its address again (the port's hold is dropped first).
    pub(super) async fn release_vips_of(
        &self,
        api: &ControllerApi,
        ns: &str,
        key: &str,
    ) -> Result<(), ControllerError> {
        let primary = format!("{key}.{ns}");
        let secondary = format!("{key}.{ns}.");
        let bound = api
            .list_where(API, "Vip", None, |v| {
                let port = bound_port(v);
                port == primary || port.starts_with(&secondary)
            })
            .await?;
        for vip in bound {
            let port = bound_port(&vip).to_string();
            let subnet_name = vip["spec"]["subnet"].as_str().unwrap_or_default();
            match api
                .merge_patch(
                    API,
                    "Vip",
                    None,
                    name_of(&vip),
                    &json!({"metadata": {"labels": {RESERVED_LABEL: ""}}}),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
            if let Some(subnet) = api.get_opt(API, "Subnet", None, subnet_name).await?
                && let (Some(addr), Some(mac)) = (vip_address(&vip), vip_mac(&vip))
            {
                let nic = vip_nic(&vip, &subnet);
                self.with_ipam(api, &subnet, |ipam| {
                    ipam.release(&port);
                    let _ = ipam.assign(&nic, addr, Some(&mac), false);
                })
                .await?;
            }
            self.recount(api, subnet_name).await?;
        }
        Ok(())
    }

    /// Pods of the `Vip`'s namespace that ask for it and have no address yet are tried again
    /// (Kube-OVN requeues a refused pod with backoff).
    async fn retry_pods_of_vip(
        &self,
        api: &ControllerApi,
        vip: &Value,
    ) -> Result<(), ControllerError> {
        let ns = vip["spec"]["namespace"].as_str().unwrap_or_default();
        if ns.is_empty() {
            return Ok(());
        }
        let name = name_of(vip);
        let waiting = api
            .list_where("v1", "Pod", Some(ns), |p| {
                p["metadata"]["annotations"][VIP_ANNOTATION] == name && !terminating(p)
            })
            .await?;
        for pod in waiting {
            self.allocate_pod(api, &pod).await?;
            self.sync_pod_ports(&pod);
        }
        Ok(())
    }

    /// The number of unbound `Vip`s of `subnet` (`calculateUsingIPs`).
    pub(super) async fn unbound_vips(
        api: &ControllerApi,
        subnet: &str,
    ) -> Result<usize, ControllerError> {
        Ok(api
            .list_where(API, "Vip", None, |v| {
                v["metadata"]["labels"][SUBNET_LABEL] == subnet
                    && v["metadata"]["labels"][RESERVED_LABEL] == ""
            })
            .await?
            .len())
    }
}
