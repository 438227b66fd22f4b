//! Pure translation: domain specs to the objects this backend sends, and back. Nothing here
//! talks to the cluster.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{ConfigMap, Service as ServiceObject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kubecloud_core::{
    Error, IpRange, MacAddress, Protocol, Remote, Result, Rule, RuleAction, SecurityGroupSpec,
    ServicePort, ServiceSpec, SubnetSpec, Tenant,
};
use kubecloud_kube::{names::cluster_scoped, ownership_labels, tenant_namespace};
use kubecloud_models::multi_networkpolicy::MultiNetworkPolicy;
use kubecloud_models::multus::NetworkAttachmentDefinition;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kinds::{
    self, MAC_ANNOTATION, MULTI_POLICY_API, MULTUS_API, POLICY_FOR, RESERVED_ANNOTATION,
    RESOURCE_NAME, ROLE_LABEL, SPEC_ANNOTATION, SUBNET_LABEL, VLAN_KEY, VPC_LABEL,
};
use crate::{BACKEND, Link};

/// The CNI spec version of the attachments.
pub const CNI_VERSION: &str = "0.3.1";

fn labels(tenant: &Tenant, name: &str, role: &str) -> BTreeMap<String, String> {
    let mut labels = ownership_labels(tenant, name);
    labels.insert(ROLE_LABEL.into(), role.into());
    labels
}

/// The ConfigMap claiming VLAN `id` for VPC `vpc` of `tenant` in `namespace`.
pub fn vlan_claim(namespace: &str, tenant: &Tenant, vpc: &str, id: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": kinds::vlan_claim(id), "namespace": namespace,
            "labels": labels(tenant, vpc, "vlan"),
        },
        "data": {VLAN_KEY: id.to_string()},
    })
}

/// The ConfigMap that is VPC `vpc` of `tenant`, on VLAN `vlan` (none on macvtap).
pub fn vpc(tenant: &Tenant, vpc: &str, vlan: Option<u16>) -> Value {
    let mut data = json!({});
    if let Some(id) = vlan {
        data[VLAN_KEY] = json!(id.to_string());
    }
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": kinds::vpc_object(vpc), "namespace": tenant_namespace(tenant),
            "labels": labels(tenant, vpc, "vpc"),
        },
        "data": data,
    })
}

/// The VLAN a VPC's ConfigMap (or a VLAN claim) names: `None` when it names none (macvtap);
/// one that is not a VLAN id is an error naming the field.
pub fn vpc_vlan(object: &ConfigMap) -> Result<Option<u16>> {
    let Some(text) = object.data.as_ref().and_then(|d| d.get(VLAN_KEY)) else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|_| malformed(object, &format!("data.{VLAN_KEY}"), text))
}

/// whereabouts' `network_name` of subnet `subnet` of `tenant`: cluster-unique, so equal CIDRs
/// of two tenants are two pools (`pkg/storage/kubernetes/ipam.go`, `IPPoolName`).
pub fn network_name(tenant: &Tenant, subnet: &str) -> String {
    cluster_scoped(tenant, subnet)
}

/// The whereabouts `IPPool` name of a subnet: `<network_name>-<range>` with `:` and `/` as `-`
/// (`IPPoolName`, `normalizeRange`).
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme").unwrap();
/// let name = kubecloud_multus::translate::pool_name(&acme, "front", "10.1.0.0/24".parse().unwrap());
/// assert_eq!(name, "acme-front-10.1.0.0-24");
/// ```
pub fn pool_name(tenant: &Tenant, subnet: &str, cidr: IpNet) -> String {
    let mut range = cidr.to_string();
    if range.ends_with(':') {
        range.push('0');
    }
    format!(
        "{}-{}",
        network_name(tenant, subnet),
        range.replace([':', '/'], "-")
    )
}

/// The CIDRs covering `range` exactly (whereabouts' `exclude` takes CIDRs or addresses).
///
/// ```
/// let r: kubecloud_core::IpRange = "10.0.0.1..10.0.0.6".parse().unwrap();
/// let cidrs: Vec<String> = kubecloud_multus::translate::range_cidrs(&r).iter().map(|c| c.to_string()).collect();
/// assert_eq!(cidrs, ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
/// ```
pub fn range_cidrs(range: &IpRange) -> Vec<IpNet> {
    let bits: u32 = if range.first.is_ipv4() { 32 } else { 128 };
    let mut out = Vec::new();
    let mut n = kubecloud_core::ip_to_u128(range.first);
    let last = kubecloud_core::ip_to_u128(range.last);
    while n <= last {
        let mut size = if n == 0 {
            bits
        } else {
            n.trailing_zeros().min(bits)
        };
        while size > 0 && (size >= 128 || n + ((1u128 << size) - 1) > last) {
            size -= 1;
        }
        let Some(ip) = kubecloud_core::u128_to_ip(n, range.first) else {
            break;
        };
        if let Ok(net) = IpNet::new(ip, (bits - size) as u8) {
            out.push(net);
        }
        let step = 1u128.checked_shl(size).unwrap_or(u128::MAX);
        match n.checked_add(step) {
            Some(next) => n = next,
            None => break,
        }
    }
    out
}

fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// The layer-2 part of a CNI config (`bridge` with the VPC's VLAN, or `macvtap`).
fn link_config(link: &Link, vlan: Option<u16>) -> Value {
    match link {
        Link::Bridge { bridge, .. } => {
            let mut c = json!({"type": "bridge", "bridge": bridge});
            if let Some(id) = vlan {
                c["vlan"] = json!(id);
            }
            c
        }
        // kubevirt/macvtap-cni reads no lower device from the config (its `NetConf`:
        // `deviceID`, `mtu`, `promiscMode`, `owner`, `group`): Multus passes the device its
        // device plugin allocated from the attachment's `resourceName` (the host interface; the
        // plugin's `lowerDevice`), and the MAC as `CNI_ARGS` `MAC`.
        Link::Macvtap { .. } => json!({"type": "macvtap"}),
    }
}

fn attachment_object(
    tenant: &Tenant,
    name: &str,
    labels: BTreeMap<String, String>,
    mut annotations: BTreeMap<String, String>,
    link: &Link,
    config: Value,
) -> Value {
    if let Link::Macvtap { interface } = link {
        annotations.insert(
            RESOURCE_NAME.into(),
            format!("macvtap.network.kubevirt.io/{interface}"),
        );
    }
    json!({
        "apiVersion": MULTUS_API, "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": name, "namespace": tenant_namespace(tenant),
            "labels": labels, "annotations": annotations,
        },
        "spec": {"config": config.to_string()},
    })
}

/// The whereabouts IPAM section of subnet `spec` with `reserved` addresses excluded too.
pub fn whereabouts_ipam(tenant: &Tenant, spec: &SubnetSpec, reserved: &[IpAddr]) -> Value {
    let mut exclude = vec![host_cidr(spec.gateway_ip())];
    for range in &spec.exclude {
        exclude.extend(range_cidrs(range).iter().map(ToString::to_string));
    }
    exclude.extend(reserved.iter().map(|ip| host_cidr(*ip)));
    json!({
        "type": "whereabouts",
        "range": spec.cidr.to_string(),
        "gateway": spec.gateway_ip().to_string(),
        "exclude": exclude,
        "network_name": network_name(tenant, &spec.name),
    })
}

/// The `NetworkAttachmentDefinition` of subnet `spec` on VLAN `vlan`, with `reserved`
/// addresses (sorted) excluded from whereabouts' range.
pub fn subnet_attachment(
    tenant: &Tenant,
    spec: &SubnetSpec,
    link: &Link,
    vlan: Option<u16>,
    reserved: &[IpAddr],
) -> Value {
    let mut labels = labels(tenant, &spec.name, "subnet");
    labels.insert(VPC_LABEL.into(), spec.vpc.clone());
    let mut config = link_config(link, vlan);
    config["cniVersion"] = json!(CNI_VERSION);
    config["name"] = json!(network_name(tenant, &spec.name));
    config["capabilities"] = json!({"mac": true});
    config["ipam"] = whereabouts_ipam(tenant, spec, reserved);
    let mut annotations = BTreeMap::from([(
        SPEC_ANNOTATION.to_string(),
        serde_json::to_string(spec).unwrap_or_default(),
    )]);
    if !reserved.is_empty() {
        let list: Vec<String> = reserved.iter().map(ToString::to_string).collect();
        annotations.insert(RESERVED_ANNOTATION.into(), list.join(","));
    }
    attachment_object(
        tenant,
        &kubecloud_kube::names::attachment(&spec.name),
        labels,
        annotations,
        link,
        config,
    )
}

/// The subnet spec a subnet's attachment holds.
pub fn subnet_spec_from(object: &NetworkAttachmentDefinition) -> Result<SubnetSpec> {
    spec_annotation(object)
}

/// The reserved addresses a subnet's attachment lists (none when it has no
/// `kubecloud.io/reserved` annotation); an entry that is not an address is an error naming it.
pub fn reserved_of(object: &NetworkAttachmentDefinition) -> Result<Vec<IpAddr>> {
    let Some(list) = annotation(&object.metadata, RESERVED_ANNOTATION) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(|s| {
            s.parse().map_err(|_| {
                malformed(
                    object,
                    &format!("metadata.annotations[{RESERVED_ANNOTATION}]"),
                    s,
                )
            })
        })
        .collect()
}

/// The attachment of reservation `name` (`ip`, `mac`) in subnet `subnet`: the subnet's plugin
/// with IPAM `static` holding exactly that address, so a VM interface taking it keeps it on
/// every pod (and over live migration).
pub fn reservation_attachment(
    tenant: &Tenant,
    subnet: &SubnetSpec,
    link: &Link,
    vlan: Option<u16>,
    name: &str,
    ip: IpAddr,
    mac: MacAddress,
) -> Value {
    let mut labels = labels(tenant, name, "reservation");
    labels.insert(VPC_LABEL.into(), subnet.vpc.clone());
    labels.insert(SUBNET_LABEL.into(), subnet.name.clone());
    let mut config = link_config(link, vlan);
    config["cniVersion"] = json!(CNI_VERSION);
    config["name"] = json!(network_name(tenant, &subnet.name));
    config["capabilities"] = json!({"mac": true});
    config["ipam"] = json!({
        "type": "static",
        "addresses": [{
            "address": format!("{ip}/{}", subnet.cidr.prefix_len()),
            "gateway": subnet.gateway_ip().to_string(),
        }],
    });
    let annotations = BTreeMap::from([(MAC_ANNOTATION.to_string(), mac.to_string())]);
    attachment_object(
        tenant,
        &kinds::reservation_object(name),
        labels,
        annotations,
        link,
        config,
    )
}

/// The part of a reservation's CNI config (the attachment's `spec.config`, a JSON string by
/// Multus' design) that is read back: its IPAM `static` addresses (the reference plugins'
/// `plugins/ipam/static/main.go`, `IPAMConfig.Addresses`).
#[derive(Deserialize)]
struct StaticConfig {
    ipam: StaticIpam,
}

#[derive(Deserialize)]
struct StaticIpam {
    addresses: Vec<StaticAddress>,
}

#[derive(Deserialize)]
struct StaticAddress {
    address: String,
}

/// The (subnet, address, MAC) a reservation's attachment holds.
pub fn reservation_of(
    object: &NetworkAttachmentDefinition,
) -> Result<(String, IpAddr, MacAddress)> {
    let subnet = label(&object.metadata, SUBNET_LABEL)
        .ok_or_else(|| {
            malformed(
                object,
                "metadata.labels",
                &format!("no {SUBNET_LABEL} label"),
            )
        })?
        .to_string();
    let text = object
        .spec
        .config
        .as_deref()
        .ok_or_else(|| malformed(object, "spec.config", "missing"))?;
    let config: StaticConfig =
        serde_json::from_str(text).map_err(|e| malformed(object, "spec.config", &e.to_string()))?;
    let address = &config
        .ipam
        .addresses
        .first()
        .ok_or_else(|| malformed(object, "spec.config.ipam.addresses", "empty"))?
        .address;
    let ip = address
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| malformed(object, "spec.config.ipam.addresses[0].address", address))?;
    let mac_field = format!("metadata.annotations[{MAC_ANNOTATION}]");
    let mac = annotation(&object.metadata, MAC_ANNOTATION)
        .ok_or_else(|| malformed(object, &mac_field, "missing"))?;
    let mac = mac
        .parse()
        .map_err(|_| malformed(object, &mac_field, mac))?;
    Ok((subnet, ip, mac))
}

/// Checks that a security group can be a `MultiNetworkPolicy`: allow rules only, no ICMP.
pub fn check_group(spec: &SecurityGroupSpec) -> Result<()> {
    for (dir, rules) in [("ingress", &spec.ingress), ("egress", &spec.egress)] {
        for (i, rule) in rules.iter().enumerate() {
            if rule.action == RuleAction::Drop {
                return Err(Error::invalid(
                    format!("{dir}[{i}].action"),
                    "MultiNetworkPolicy has allow rules only; what no rule allows is dropped",
                ));
            }
            if rule.protocol == Protocol::Icmp {
                return Err(Error::invalid(
                    format!("{dir}[{i}].protocol"),
                    "MultiNetworkPolicy matches tcp, udp and sctp ports (or all traffic), not icmp",
                ));
            }
        }
    }
    Ok(())
}

fn policy_rule(rule: &Rule, peers_key: &str) -> Value {
    let mut out = json!({});
    match &rule.remote {
        Remote::Any => {}
        Remote::Cidr(cidr) => out[peers_key] = json!([{"ipBlock": {"cidr": cidr.to_string()}}]),
        Remote::Group(group) => {
            out[peers_key] =
                json!([{"podSelector": {"matchLabels": {kinds::group_label(group): "true"}}}])
        }
    }
    let protocol = match rule.protocol {
        Protocol::Tcp => Some("TCP"),
        Protocol::Udp => Some("UDP"),
        Protocol::Sctp => Some("SCTP"),
        Protocol::Icmp | Protocol::All => None,
    };
    if let Some(protocol) = protocol {
        let mut port = json!({"protocol": protocol});
        if let Some(range) = rule.ports {
            port["port"] = json!(range.first);
            if range.last != range.first {
                port["endPort"] = json!(range.last);
            }
        }
        out["ports"] = json!([port]);
    }
    out
}

/// The `MultiNetworkPolicy` of security group `spec`, for the tenant's subnet attachments
/// `networks` (names in the tenant's namespace).
pub fn security_group(
    tenant: &Tenant,
    spec: &SecurityGroupSpec,
    networks: &[String],
) -> Result<Value> {
    check_group(spec)?;
    let ns = tenant_namespace(tenant);
    let policy_for: Vec<String> = networks.iter().map(|n| format!("{ns}/{n}")).collect();
    let ingress: Vec<Value> = spec
        .ingress
        .iter()
        .map(|r| policy_rule(r, "from"))
        .collect();
    let egress: Vec<Value> = spec.egress.iter().map(|r| policy_rule(r, "to")).collect();
    Ok(json!({
        "apiVersion": MULTI_POLICY_API, "kind": "MultiNetworkPolicy",
        "metadata": {
            "name": kinds::group_object(&spec.name), "namespace": ns,
            "labels": labels(tenant, &spec.name, "security-group"),
            "annotations": {
                POLICY_FOR: policy_for.join(","),
                SPEC_ANNOTATION: serde_json::to_string(spec).unwrap_or_default(),
            },
        },
        "spec": {
            "podSelector": {"matchLabels": {kinds::group_label(&spec.name): "true"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }))
}

/// The security group a `MultiNetworkPolicy` of this backend holds.
pub fn security_group_spec_from(object: &MultiNetworkPolicy) -> Result<SecurityGroupSpec> {
    spec_annotation(object)
}

/// The domain spec an object of this backend holds in its `kubecloud.io/spec` annotation.
fn spec_annotation<K, T>(object: &K) -> Result<T>
where
    K: Resource<DynamicType = ()>,
    T: serde::de::DeserializeOwned,
{
    let field = format!("metadata.annotations[{SPEC_ANNOTATION}]");
    let text = annotation(object.meta(), SPEC_ANNOTATION)
        .ok_or_else(|| malformed(object, &field, "missing"))?;
    serde_json::from_str(text).map_err(|e| malformed(object, &field, &e.to_string()))
}

fn service_protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        _ => "TCP",
    }
}

/// The ClusterIP `Service` of `spec`.
pub fn service(tenant: &Tenant, spec: &ServiceSpec) -> Value {
    let ports: Vec<Value> = spec
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({
                "name": format!("{}-{}", service_protocol(p.protocol).to_lowercase(), p.port),
                "port": p.port,
                "protocol": service_protocol(p.protocol),
            });
            if let Some(target) = p.target_port {
                port["targetPort"] = json!(target);
            }
            port
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": spec.name, "namespace": tenant_namespace(tenant),
            "labels": ownership_labels(tenant, &spec.name),
        },
        "spec": {"type": "ClusterIP", "selector": spec.selector, "ports": ports},
    })
}

/// The service spec a `Service` says: a port or `targetPort` that is not a port number (a
/// named `targetPort` included: this backend writes numbers) or an unknown protocol is an
/// error naming the field.
pub fn service_spec_from(object: &ServiceObject) -> Result<ServiceSpec> {
    let spec = object.spec.as_ref();
    let mut ports = Vec::new();
    for (i, p) in spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = |f: &str| format!("spec.ports[{i}].{f}");
        let port = u16::try_from(p.port)
            .map_err(|_| malformed(object, &field("port"), &p.port.to_string()))?;
        let target = match &p.target_port {
            None => None,
            Some(IntOrString::Int(t)) => Some(
                u16::try_from(*t)
                    .map_err(|_| malformed(object, &field("targetPort"), &t.to_string()))?,
            ),
            Some(IntOrString::String(t)) => {
                return Err(malformed(object, &field("targetPort"), t));
            }
        };
        ports.push(ServicePort {
            port,
            target_port: target.filter(|t| *t != port),
            // The API server defaults `protocol` to TCP; anything else is not a protocol.
            protocol: match p.protocol.as_deref() {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                Some(other) => return Err(malformed(object, &field("protocol"), other)),
            },
        });
    }
    Ok(ServiceSpec {
        name: domain_name(object)?,
        selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
        ports,
    })
}

/// The DNS name of service `name` of `tenant`.
pub fn service_dns(tenant: &Tenant, name: &str) -> String {
    format!("{name}.{}.svc.cluster.local", tenant_namespace(tenant))
}

/// The domain name an object stands for (its `kubecloud.io/name` label).
pub fn domain_name<K: Resource<DynamicType = ()>>(object: &K) -> Result<String> {
    label(object.meta(), kubecloud_kube::NAME)
        .map(str::to_string)
        .ok_or_else(|| {
            malformed(
                object,
                "metadata.labels",
                &format!("no {} label", kubecloud_kube::NAME),
            )
        })
}

/// Label `key` of an object.
pub(crate) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Annotation `key` of an object.
fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// A live object that does not say what this backend wrote (someone changed it by hand): an
/// error naming its kind, its name and the field.
pub(crate) fn malformed<K: Resource<DynamicType = ()>>(
    object: &K,
    field: &str,
    value: &str,
) -> Error {
    Error::Backend {
        backend: BACKEND.to_string(),
        message: format!(
            "unexpected {field} in {} {:?}: {value:?}",
            K::kind(&()),
            object.meta().name.as_deref().unwrap_or_default()
        ),
        temporary: false,
        source: None,
    }
}
