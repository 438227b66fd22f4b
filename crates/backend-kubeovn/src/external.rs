//! External access to Kube-OVN's OVN-native NAT objects, and back. Pure: no I/O, golden-tested.
//!
//! | domain | object (`kubeovn.io/v1`, cluster-scoped) |
//! |---|---|
//! | external IP `e` of tenant `t` | `OvnEip` [`names::cluster_scoped`]`(t, e)`: `externalSubnet`, `type: nat`, a requested address in `v4Ip`/`v6Ip` |
//! | floating IP `f` (external IP `e`, reservation `r`) | `OvnFip` `cluster_scoped(t, f)`: `ovnEip: cluster_scoped(t, e)`, `ipName` = the reservation's `Vip`, `ipType: vip` |
//! | SNAT rule `s` (external IP `e`, subnet `n`) | `OvnSnatRule` `cluster_scoped(t, s)`: `ovnEip: cluster_scoped(t, e)`, `vpcSubnet: cluster_scoped(t, n)` |
//!
//! Every object carries [`ownership_labels`]; the FIP and SNAT rule also carry the domain names
//! they refer to as labels ([`EXTERNAL_IP_LABEL`], [`RESERVATION_LABEL`], [`SUBNET_NAME_LABEL`]),
//! so they read back without parsing cluster names.

use std::net::IpAddr;

use kube::Resource;
use kubecloud_core::{
    ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, Result, SnatRule, SnatRuleSpec, Tenant,
};
use kubecloud_kube::{names, ownership_labels};
use kubecloud_models::kubeovn::{OvnEip, OvnFip, OvnSnatRule};
use serde_json::{Value, json};

use crate::kinds::{EXTERNAL_IP_LABEL, KUBEOVN_API, RESERVATION_LABEL, SUBNET_NAME_LABEL};
use crate::translate::{self, domain_name, first_address, malformed, vip_name};

/// The `type` of every `OvnEip` this backend makes: an address for NAT (FIP and SNAT).
pub const EIP_TYPE: &str = "nat";

/// The `OvnEip` of external IP `spec.name`, from the external subnet `external_subnet`.
///
/// ```
/// use kubecloud_core::{ExternalIpSpec, Tenant};
/// let acme = Tenant::new("acme")?;
/// let spec = ExternalIpSpec::new("web").with_ip("172.31.0.10".parse().unwrap());
/// let eip = kubecloud_kubeovn::external::ovn_eip(&acme, &spec, "ovn-vpc-external-network");
/// assert_eq!(eip["metadata"]["name"], "acme-web");
/// assert_eq!(eip["spec"]["v4Ip"], "172.31.0.10");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn ovn_eip(tenant: &Tenant, spec: &ExternalIpSpec, external_subnet: &str) -> Value {
    let mut s = json!({"externalSubnet": external_subnet, "type": EIP_TYPE});
    match spec.ip {
        Some(IpAddr::V4(ip)) => s["v4Ip"] = json!(ip.to_string()),
        Some(IpAddr::V6(ip)) => s["v6Ip"] = json!(ip.to_string()),
        None => {}
    }
    json!({
        "apiVersion": KUBEOVN_API,
        "kind": "OvnEip",
        "metadata": {
            "name": names::cluster_scoped(tenant, &spec.name),
            "labels": ownership_labels(tenant, &spec.name),
        },
        "spec": s,
    })
}

/// The address an `OvnEip` holds: its status once Kube-OVN allocated it (an address that is
/// not one is an error naming the field).
pub fn eip_address(object: &OvnEip) -> Result<Option<IpAddr>> {
    let Some(status) = &object.status else {
        return Ok(None);
    };
    first_address(
        object,
        &[
            ("status.v4Ip", status.v4_ip.as_ref()),
            ("status.v6Ip", status.v6_ip.as_ref()),
        ],
    )
}

/// The address an `OvnEip` asks for (its spec), if it names one.
fn eip_requested(object: &OvnEip) -> Result<Option<IpAddr>> {
    first_address(
        object,
        &[
            ("spec.v4Ip", object.spec.v4_ip.as_ref()),
            ("spec.v6Ip", object.spec.v6_ip.as_ref()),
        ],
    )
}

/// The address an `OvnEip` asks for or holds (spec or status), for spotting taken addresses.
pub fn eip_claimed(object: &OvnEip) -> Result<Option<IpAddr>> {
    match eip_requested(object)? {
        Some(ip) => Ok(Some(ip)),
        None => eip_address(object),
    }
}

/// Whether Kube-OVN reports an `OvnEip` ready.
pub fn eip_ready(object: &OvnEip) -> bool {
    object.status.as_ref().and_then(|s| s.ready) == Some(true)
}

/// The external IP an `OvnEip` stands for (ready once Kube-OVN allocated its address).
pub fn external_ip_from(object: &OvnEip) -> Result<ExternalIp> {
    let name = domain_name(object)?;
    let requested = eip_requested(object)?;
    let ip = eip_address(object)?;
    Ok(ExternalIp {
        spec: ExternalIpSpec {
            name,
            ip: requested,
        },
        ready: eip_ready(object) && ip.is_some(),
        ip,
    })
}

/// The `OvnFip` of floating IP `spec.name`: the tenant's `OvnEip` bound to the reservation's
/// `Vip` (`ipType: vip`, `pkg/controller/ovn_fip.go`).
pub fn ovn_fip(tenant: &Tenant, spec: &FloatingIpSpec) -> Value {
    let mut labels = ownership_labels(tenant, &spec.name);
    labels.insert(EXTERNAL_IP_LABEL.to_string(), spec.external_ip.clone());
    labels.insert(RESERVATION_LABEL.to_string(), spec.reservation.clone());
    json!({
        "apiVersion": KUBEOVN_API,
        "kind": "OvnFip",
        "metadata": {"name": names::cluster_scoped(tenant, &spec.name), "labels": labels},
        "spec": {
            "ovnEip": names::cluster_scoped(tenant, &spec.external_ip),
            "ipName": vip_name(tenant, &spec.reservation),
            "ipType": "vip",
        },
    })
}

/// The floating IP an `OvnFip` stands for.
pub fn floating_ip_from(object: &OvnFip) -> Result<FloatingIp> {
    Ok(FloatingIp {
        spec: FloatingIpSpec {
            name: domain_name(object)?,
            external_ip: label(object, EXTERNAL_IP_LABEL)?,
            reservation: label(object, RESERVATION_LABEL)?,
        },
        ready: object.status.as_ref().and_then(|s| s.ready) == Some(true),
    })
}

/// The `OvnSnatRule` of SNAT rule `spec.name`: the tenant's subnet behind its `OvnEip`.
pub fn ovn_snat_rule(tenant: &Tenant, spec: &SnatRuleSpec) -> Value {
    let mut labels = ownership_labels(tenant, &spec.name);
    labels.insert(EXTERNAL_IP_LABEL.to_string(), spec.external_ip.clone());
    labels.insert(SUBNET_NAME_LABEL.to_string(), spec.subnet.clone());
    json!({
        "apiVersion": KUBEOVN_API,
        "kind": "OvnSnatRule",
        "metadata": {"name": names::cluster_scoped(tenant, &spec.name), "labels": labels},
        "spec": {
            "ovnEip": names::cluster_scoped(tenant, &spec.external_ip),
            "vpcSubnet": names::cluster_scoped(tenant, &spec.subnet),
        },
    })
}

/// The SNAT rule an `OvnSnatRule` stands for.
pub fn snat_rule_from(object: &OvnSnatRule) -> Result<SnatRule> {
    Ok(SnatRule {
        spec: SnatRuleSpec {
            name: domain_name(object)?,
            external_ip: label(object, EXTERNAL_IP_LABEL)?,
            subnet: label(object, SUBNET_NAME_LABEL)?,
        },
        ready: object.status.as_ref().and_then(|s| s.ready) == Some(true),
    })
}

fn label<K: Resource<DynamicType = ()>>(object: &K, key: &str) -> Result<String> {
    translate::label(object.meta(), key)
        .map(str::to_string)
        .ok_or_else(|| malformed(object, "metadata.labels", &format!("no {key} label")))
}
