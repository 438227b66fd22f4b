//! Domain specs to Kube-OVN, Multus and core objects, and back. Pure: no I/O, golden-tested.
//!
//! | domain | object |
//! |---|---|
//! | VPC `v` of tenant `t` | `Vpc` [`names::cluster_scoped`]`(t, v)`, `namespaces: [t]` |
//! | subnet `s` | `Subnet` `cluster_scoped(t, s)`; secondary: plus `NetworkAttachmentDefinition` `s` in `t` |
//! | reservation `r` | `Vip` `cluster_scoped(t, r)` in subnet `cluster_scoped(t, s)`, `namespace: t` (a VM interface takes it through the pod annotation `ovn.kubernetes.io/vip`: see [`crate::attach`]) |
//! | security group `g` | `SecurityGroup` `cluster_scoped(t, g)` |
//! | service `x` | `Service` `x` in namespace `t` (ClusterIP) |
//!
//! Every object carries [`ownership_labels`].

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service as ServiceObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kubecloud_core::{
    Error, IpNet, IpRange, IpReservation, IpReservationSpec, MacAddress, PortRange, Protocol,
    Remote, ResourceKind, Result, Rule, RuleAction, SecurityGroupSpec, ServicePort, ServiceSpec,
    StaticRoute, SubnetSpec, Tenant, VpcSpec, first_host,
};
use kubecloud_kube::names;
use kubecloud_kube::ownership_labels;
use kubecloud_models::kubeovn::security_group::{
    SecurityGroupEgressRules, SecurityGroupIngressRules,
};
use kubecloud_models::kubeovn::{
    Ip, SecurityGroup as SecurityGroupObject, Subnet as SubnetObject, Vip, Vpc as VpcObject,
};
use serde_json::{Map, Value, json};

use crate::kinds::{
    KUBEOVN_API, MULTUS_API, PEERS_ANNOTATION, RESERVED_LABEL, SERVER_SOCKET, SUBNET_NAME_LABEL,
    VM_POD_TYPE, VPC_LABEL,
};

/// The `Vpc` of VPC `spec.name`.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// let vpc = kubecloud_kubeovn::translate::vpc(&acme, &kubecloud_core::VpcSpec::named("main"));
/// assert_eq!(vpc["metadata"]["name"], "acme-main");
/// assert_eq!(vpc["spec"]["namespaces"][0], "acme");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn vpc(tenant: &Tenant, spec: &VpcSpec) -> Value {
    let name = names::cluster_scoped(tenant, &spec.name);
    let routes: Vec<Value> = spec
        .static_routes
        .iter()
        .map(|r| json!({"cidr": r.destination.to_string(), "nextHopIP": r.next_hop.to_string(), "policy": "policyDst"}))
        .collect();
    let peerings: Vec<Value> = spec
        .peers
        .iter()
        .map(|peer| {
            let remote = names::cluster_scoped(tenant, peer);
            json!({"remoteVpc": remote, "localConnectIP": peering_ip(&name, &remote)})
        })
        .collect();
    let mut spec_json = json!({"namespaces": [kubecloud_kube::tenant_namespace(tenant)]});
    if !routes.is_empty() {
        spec_json["staticRoutes"] = json!(routes);
    }
    if !peerings.is_empty() {
        spec_json["vpcPeerings"] = json!(peerings);
    }
    let mut metadata = json!({"name": name, "labels": ownership_labels(tenant, &spec.name)});
    if !spec.peers.is_empty() {
        metadata["annotations"] = json!({PEERS_ANNOTATION: spec.peers.join(",")});
    }
    json!({"apiVersion": KUBEOVN_API, "kind": "Vpc", "metadata": metadata, "spec": spec_json})
}

/// The address (with its /30) a VPC uses on the link to a peer: both sides compute the same /30
/// in 169.254.0.0/16 from the pair of names, the lower name takes `.1`, the higher `.2`.
///
/// ```
/// let a = kubecloud_kubeovn::translate::peering_ip("acme-a", "acme-b");
/// let b = kubecloud_kubeovn::translate::peering_ip("acme-b", "acme-a");
/// assert_ne!(a, b);
/// assert_eq!(a.rsplit_once('/').unwrap().1, "30");
/// assert_eq!(a.rsplit_once('.').unwrap().0, b.rsplit_once('.').unwrap().0);
/// ```
pub fn peering_ip(local: &str, remote: &str) -> String {
    let (lo, hi) = if local <= remote {
        (local, remote)
    } else {
        (remote, local)
    };
    let hash = format!("{lo}|{hi}").bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let base = u32::from(std::net::Ipv4Addr::new(169, 254, 0, 0)) + (hash % 16384) * 4;
    let host = if local == lo { 1 } else { 2 };
    format!("{}/30", std::net::Ipv4Addr::from(base + host))
}

/// The VPC spec a `Vpc` says, read back from its fields.
pub fn vpc_spec_from(object: &VpcObject) -> Result<VpcSpec> {
    let name = domain_name(object)?;
    let mut static_routes = Vec::new();
    for route in object.spec.static_routes.iter().flatten() {
        let destination =
            parse::<IpNet, _>(object, route.cidr.as_deref(), "spec.staticRoutes.cidr")?;
        let next_hop = parse::<IpAddr, _>(
            object,
            route.next_hop_ip.as_deref(),
            "spec.staticRoutes.nextHopIP",
        )?;
        static_routes.push(StaticRoute {
            destination,
            next_hop,
        });
    }
    let peers = annotation(&object.metadata, PEERS_ANNOTATION)
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    Ok(VpcSpec {
        name,
        static_routes,
        peers,
    })
}

/// The `Subnet` of subnet `spec.name`. A secondary subnet names its attachment's provider
/// ([`crate::attach::provider`]) and binds no namespace; a primary one binds the tenant's namespace.
///
/// ```
/// use kubecloud_core::{SubnetSpec, Tenant};
/// let acme = Tenant::new("acme")?;
/// let mut spec = SubnetSpec::new("storage", "main", "10.2.0.0/24".parse().unwrap());
/// spec.exclude = vec!["10.2.0.2..10.2.0.9".parse()?];
/// spec.secondary = true;
/// let subnet = kubecloud_kubeovn::translate::subnet(&acme, &spec);
/// assert_eq!(subnet["spec"]["vpc"], "acme-main");
/// assert_eq!(subnet["spec"]["excludeIps"][0], "10.2.0.2..10.2.0.9");
/// assert_eq!(subnet["spec"]["provider"], "storage.acme.ovn");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn subnet(tenant: &Tenant, spec: &SubnetSpec) -> Value {
    let mut labels = ownership_labels(tenant, &spec.name);
    labels.insert(VPC_LABEL.to_string(), spec.vpc.clone());
    let protocol = if spec.cidr.addr().is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let mut s = json!({
        "vpc": names::cluster_scoped(tenant, &spec.vpc),
        "cidrBlock": spec.cidr.to_string(),
        "gateway": spec.gateway_ip().to_string(),
        "protocol": protocol,
        "private": spec.private,
        "natOutgoing": spec.nat_outgoing,
    });
    if !spec.exclude.is_empty() {
        s["excludeIps"] = json!(
            spec.exclude
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    if !spec.allow.is_empty() {
        s["allowSubnets"] = json!(
            spec.allow
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    if spec.secondary {
        s["provider"] = json!(crate::attach::provider(tenant, &spec.name));
    } else {
        s["namespaces"] = json!([kubecloud_kube::tenant_namespace(tenant)]);
    }
    json!({
        "apiVersion": KUBEOVN_API,
        "kind": "Subnet",
        "metadata": {"name": names::cluster_scoped(tenant, &spec.name), "labels": labels},
        "spec": s,
    })
}

/// The subnet spec a `Subnet` says. The gateway reads back as `None` when it is the CIDR's
/// first host (the default), so a spec round-trips whether or not it spelled the default out.
pub fn subnet_spec_from(object: &SubnetObject) -> Result<SubnetSpec> {
    let name = domain_name(object)?;
    let spec = &object.spec;
    let vpc = label(&object.metadata, VPC_LABEL)
        .ok_or_else(|| malformed(object, "metadata.labels", "no VPC label"))?
        .to_string();
    let cidr = parse::<IpNet, _>(object, spec.cidr_block.as_deref(), "spec.cidrBlock")?;
    let gateway = match spec.gateway.as_deref() {
        Some(g) => Some(parse::<IpAddr, _>(object, Some(g), "spec.gateway")?)
            .filter(|g| *g != first_host(cidr)),
        None => None,
    };
    let exclude = spec
        .exclude_ips
        .iter()
        .flatten()
        .map(|s| parse::<IpRange, _>(object, Some(s), "spec.excludeIps"))
        .collect::<Result<Vec<_>>>()?;
    let allow = spec
        .allow_subnets
        .iter()
        .flatten()
        .map(|s| parse::<IpNet, _>(object, Some(s), "spec.allowSubnets"))
        .collect::<Result<Vec<_>>>()?;
    // Kube-OVN's default provider (no `provider`) is the pod network's, `ovn`.
    let provider = spec.provider.as_deref().unwrap_or("ovn");
    Ok(SubnetSpec {
        name,
        vpc,
        cidr,
        gateway,
        exclude,
        private: spec.private.unwrap_or(false),
        allow,
        nat_outgoing: spec.nat_outgoing.unwrap_or(false),
        secondary: provider != "ovn" && provider.ends_with(".ovn"),
    })
}

/// The CNI config of a secondary subnet's attachment: kube-ovn's CNI plugin, its daemon socket
/// and the provider the subnet names.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// let config: serde_json::Value =
///     serde_json::from_str(&kubecloud_kubeovn::translate::cni_config(&acme, "storage")).unwrap();
/// assert_eq!(config["type"], "kube-ovn");
/// assert_eq!(config["provider"], "storage.acme.ovn");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn cni_config(tenant: &Tenant, subnet: &str) -> String {
    json!({
        "cniVersion": "0.3.1",
        "type": "kube-ovn",
        "server_socket": SERVER_SOCKET,
        "provider": crate::attach::provider(tenant, subnet),
    })
    .to_string()
}

/// The Multus `NetworkAttachmentDefinition` through which VMs reach secondary subnet `subnet`.
pub fn attachment(tenant: &Tenant, subnet: &str) -> Value {
    json!({
        "apiVersion": MULTUS_API,
        "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": names::attachment(subnet),
            "namespace": kubecloud_kube::tenant_namespace(tenant),
            "labels": ownership_labels(tenant, subnet),
        },
        "spec": {"config": cni_config(tenant, subnet)},
    })
}

/// The name of the `Vip` object of reservation `name`.
pub fn vip_name(tenant: &Tenant, name: &str) -> String {
    names::cluster_scoped(tenant, name)
}

/// The `Vip` of a reservation in the subnet whose object is named `subnet_object`: Kube-OVN's
/// way to hold an address ahead of any pod (`pkg/controller/vip.go`). A fixed address and MAC
/// are written out; otherwise kube-ovn-controller picks them and writes them into the spec and
/// status. The `ovn.kubernetes.io/ip_reserved` label is Kube-OVN's (it names the port that took
/// the address), never sent.
pub fn vip(tenant: &Tenant, spec: &IpReservationSpec, subnet_object: &str) -> Value {
    let mut labels = ownership_labels(tenant, &spec.name);
    labels.insert(SUBNET_NAME_LABEL.to_string(), spec.subnet.clone());
    let mut s = json!({
        "subnet": subnet_object,
        "namespace": kubecloud_kube::tenant_namespace(tenant),
    });
    if let Some(ip) = spec.ip {
        let family = if ip.is_ipv4() { "v4ip" } else { "v6ip" };
        s[family] = json!(ip.to_string());
    }
    if let Some(mac) = spec.mac {
        s["macAddress"] = json!(mac.to_string());
    }
    json!({
        "apiVersion": KUBEOVN_API,
        "kind": "Vip",
        "metadata": {"name": vip_name(tenant, &spec.name), "labels": labels},
        "spec": s,
    })
}

/// The first address of `fields` (name, value) that is set: `None` when none is (Kube-OVN
/// writes `""` for a family an object has no address of), a malformed-object error naming the
/// field when one is not an address. A field may list several, comma-separated (`ipAddress` of
/// a dual-stack `IP`): the first counts.
pub(crate) fn first_address<K>(
    object: &K,
    fields: &[(&str, Option<&String>)],
) -> Result<Option<IpAddr>>
where
    K: Resource<DynamicType = ()>,
{
    for (field, value) in fields {
        let Some(first) = value
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        return first
            .parse()
            .map(Some)
            .map_err(|_| malformed(object, field, first));
    }
    Ok(None)
}

/// A MAC address field: `None` when unset or empty, an error naming the field when it is not
/// a MAC address.
fn mac<K>(object: &K, value: Option<&String>, field: &str) -> Result<Option<MacAddress>>
where
    K: Resource<DynamicType = ()>,
{
    match value.map(String::as_str).filter(|m| !m.is_empty()) {
        None => Ok(None),
        Some(m) => m.parse().map(Some).map_err(|_| malformed(object, field, m)),
    }
}

/// The address an `IP` object holds, if it is allocated yet (an address that is not one is an
/// error naming the field).
pub fn ip_address(object: &Ip) -> Result<Option<IpAddr>> {
    let spec = &object.spec;
    first_address(
        object,
        &[
            ("spec.v4IpAddress", spec.v4_ip_address.as_ref()),
            ("spec.v6IpAddress", spec.v6_ip_address.as_ref()),
            ("spec.ipAddress", spec.ip_address.as_ref()),
        ],
    )
}

/// The address a `Vip` holds by its spec (a fixed one, or the one kube-ovn-controller wrote
/// back), if any.
pub fn vip_spec_address(object: &Vip) -> Result<Option<IpAddr>> {
    first_address(
        object,
        &[
            ("spec.v4ip", object.spec.v4ip.as_ref()),
            ("spec.v6ip", object.spec.v6ip.as_ref()),
        ],
    )
}

/// The MAC address an `IP` object records, if any.
pub fn ip_mac(object: &Ip) -> Result<Option<MacAddress>> {
    mac(object, object.spec.mac_address.as_ref(), "spec.macAddress")
}

/// The MAC address a `Vip`'s spec names (fixed, or written back), if any.
pub fn vip_spec_mac(object: &Vip) -> Result<Option<MacAddress>> {
    mac(object, object.spec.mac_address.as_ref(), "spec.macAddress")
}

/// The workload an `IP` object is bound to (`podName`), if any.
pub fn ip_owner(object: &Ip) -> Option<String> {
    object
        .spec
        .pod_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether an `IP` belongs to a KubeVirt VM (rather than a plain pod).
pub fn ip_is_vm(object: &Ip) -> bool {
    object.spec.pod_type.as_deref() == Some(VM_POD_TYPE)
}

/// The workload that took a `Vip`: Kube-OVN labels it with the port name
/// (`<pod or VM>.<namespace>[.<provider>]`, `podReuseVip`); the workload is the part before
/// `.<namespace>`.
///
/// ```
/// use kubecloud_kubeovn::models::{Vip, vip::VipSpec};
/// let mut vip = Vip::new("acme-db", VipSpec { namespace: Some("acme".into()), ..Default::default() });
/// vip.metadata.labels = Some([("ovn.kubernetes.io/ip_reserved".to_string(), "db.acme".to_string())].into());
/// assert_eq!(kubecloud_kubeovn::translate::vip_owner(&vip).as_deref(), Some("db"));
/// ```
pub fn vip_owner(object: &Vip) -> Option<String> {
    let port = label(&object.metadata, RESERVED_LABEL).filter(|p| !p.is_empty())?;
    let ns = object.spec.namespace.as_deref().unwrap_or_default();
    let workload = port
        .strip_suffix(&format!(".{ns}"))
        .or_else(|| port.split_once(&format!(".{ns}.")).map(|(w, _)| w))
        .unwrap_or(port);
    Some(workload.to_string())
}

/// Whether kube-ovn-controller has given a `Vip` its address and MAC (written into its
/// status; whether they are an address and a MAC is [`reservation_from`]'s to say).
pub fn vip_allocated(object: &Vip) -> bool {
    let set = |v: Option<&String>| v.is_some_and(|v| !v.is_empty());
    object
        .status
        .as_ref()
        .is_some_and(|s| (set(s.v4ip.as_ref()) || set(s.v6ip.as_ref())) && set(s.mac.as_ref()))
}

/// The reservation a `Vip` stands for, given its subnet's domain name; `None` while
/// kube-ovn-controller has not allocated it, an error naming the field when its status holds
/// something that is not an address or a MAC.
pub fn reservation_from(object: &Vip, subnet: &str) -> Result<Option<IpReservation>> {
    let Some(status) = &object.status else {
        return Ok(None);
    };
    let ip = first_address(
        object,
        &[
            ("status.v4ip", status.v4ip.as_ref()),
            ("status.v6ip", status.v6ip.as_ref()),
        ],
    )?;
    let mac = mac(object, status.mac.as_ref(), "status.mac")?;
    let (Some(ip), Some(mac)) = (ip, mac) else {
        return Ok(None);
    };
    Ok(Some(IpReservation {
        name: domain_name_or_object(object)?,
        subnet: subnet.to_string(),
        ip,
        mac,
        owner: vip_owner(object),
    }))
}

/// What an `IP` object Kube-OVN made for a pod or VM holds, as a reservation-shaped record named
/// after the object (for leak reports); `None` while unallocated.
pub fn pod_ip_from(object: &Ip, subnet: &str) -> Result<Option<IpReservation>> {
    let (Some(ip), Some(mac)) = (ip_address(object)?, ip_mac(object)?) else {
        return Ok(None);
    };
    Ok(Some(IpReservation {
        name: object_name(object)?,
        subnet: subnet.to_string(),
        ip,
        mac,
        owner: ip_owner(object),
    }))
}

/// Kube-OVN's spelling of a protocol in a security-group rule; SCTP has none.
fn sg_protocol(protocol: Protocol, field: &str) -> Result<&'static str> {
    Ok(match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "all",
        Protocol::Sctp => {
            return Err(Error::invalid(
                format!("{field}.protocol"),
                "Kube-OVN security groups match tcp, udp, icmp or all, not sctp",
            ));
        }
    })
}

fn sg_rule(tenant: &Tenant, rule: &Rule, field: &str) -> Result<Vec<Value>> {
    let mut base = Map::new();
    base.insert("protocol".into(), json!(sg_protocol(rule.protocol, field)?));
    if matches!(rule.protocol, Protocol::Tcp | Protocol::Udp) {
        let ports = rule.ports.unwrap_or(PortRange {
            first: 1,
            last: 65535,
        });
        base.insert("portRangeMin".into(), json!(ports.first));
        base.insert("portRangeMax".into(), json!(ports.last));
    }
    base.insert("priority".into(), json!(rule.priority));
    base.insert(
        "policy".into(),
        json!(match rule.action {
            RuleAction::Allow => "allow",
            RuleAction::Drop => "drop",
        }),
    );
    let with = |version: &str, extra: Value| {
        let mut r = base.clone();
        r.insert("ipVersion".into(), json!(version));
        if let Value::Object(extra) = extra {
            r.extend(extra);
        }
        Value::Object(r)
    };
    Ok(match &rule.remote {
        Remote::Any => vec![
            with(
                "ipv4",
                json!({"remoteType": "address", "remoteAddress": "0.0.0.0/0"}),
            ),
            with(
                "ipv6",
                json!({"remoteType": "address", "remoteAddress": "::/0"}),
            ),
        ],
        Remote::Cidr(net) => vec![with(
            if net.addr().is_ipv4() { "ipv4" } else { "ipv6" },
            json!({"remoteType": "address", "remoteAddress": net.to_string()}),
        )],
        Remote::Group(group) => vec![with(
            "ipv4",
            json!({"remoteType": "securityGroup", "remoteSecurityGroup": names::cluster_scoped(tenant, group)}),
        )],
    })
}

/// The `SecurityGroup` of a security group. A rule from anywhere becomes two Kube-OVN rules (IPv4
/// `0.0.0.0/0` and IPv6 `::/0`); tcp/udp without ports cover 1-65535; SCTP is refused (Kube-OVN
/// security groups cannot match it), naming the rule's field.
pub fn security_group(tenant: &Tenant, spec: &SecurityGroupSpec) -> Result<Value> {
    let rules = |dir: &str, list: &[Rule]| -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for (i, rule) in list.iter().enumerate() {
            out.extend(sg_rule(tenant, rule, &format!("{dir}[{i}]"))?);
        }
        Ok(out)
    };
    let ingress = rules("ingress", &spec.ingress)?;
    let egress = rules("egress", &spec.egress)?;
    let mut s = json!({"allowSameGroupTraffic": true});
    if !ingress.is_empty() {
        s["ingressRules"] = json!(ingress);
    }
    if !egress.is_empty() {
        s["egressRules"] = json!(egress);
    }
    Ok(json!({
        "apiVersion": KUBEOVN_API,
        "kind": "SecurityGroup",
        "metadata": {"name": names::cluster_scoped(tenant, &spec.name), "labels": ownership_labels(tenant, &spec.name)},
        "spec": s,
    }))
}

/// One Kube-OVN security-group rule as read: `ingressRules` and `egressRules` items are two
/// generated types with the same fields.
#[derive(Clone, Copy)]
struct RawRule<'a> {
    protocol: Option<&'a str>,
    port_range_min: Option<i64>,
    port_range_max: Option<i64>,
    remote_type: Option<&'a str>,
    remote_address: Option<&'a str>,
    remote_security_group: Option<&'a str>,
    priority: Option<i64>,
    policy: Option<&'a str>,
}

macro_rules! raw_rule {
    ($($t:ty),*) => {$(
        impl<'a> From<&'a $t> for RawRule<'a> {
            fn from(r: &'a $t) -> Self {
                RawRule {
                    protocol: r.protocol.as_deref(),
                    port_range_min: r.port_range_min,
                    port_range_max: r.port_range_max,
                    remote_type: r.remote_type.as_deref(),
                    remote_address: r.remote_address.as_deref(),
                    remote_security_group: r.remote_security_group.as_deref(),
                    priority: r.priority,
                    policy: r.policy.as_deref(),
                }
            }
        }
    )*};
}

raw_rule!(SecurityGroupIngressRules, SecurityGroupEgressRules);

fn rule_from(
    tenant: &Tenant,
    object: &SecurityGroupObject,
    field: &str,
    r: RawRule<'_>,
) -> Result<Rule> {
    let bad = |sub: &str, value: &str| malformed(object, &format!("{field}.{sub}"), value);
    let protocol = match r.protocol.unwrap_or("all") {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        "all" => Protocol::All,
        other => return Err(bad("protocol", other)),
    };
    let port = |v: i64, sub: &str| u16::try_from(v).map_err(|_| bad(sub, &v.to_string()));
    let ports = match (r.port_range_min, r.port_range_max) {
        (Some(1), Some(65535)) | (None, _) | (_, None) => None,
        (Some(a), Some(b)) => Some(PortRange {
            first: port(a, "portRangeMin")?,
            last: port(b, "portRangeMax")?,
        }),
    };
    let remote = match r.remote_type {
        Some("securityGroup") => {
            let object = r
                .remote_security_group
                .ok_or_else(|| bad("remoteSecurityGroup", "missing"))?;
            let prefix = format!("{}-", tenant.as_str());
            let domain = object
                .strip_prefix(&prefix)
                .filter(|d| names::cluster_scoped(tenant, d) == object)
                .unwrap_or(object);
            Remote::Group(domain.to_string())
        }
        _ => match r.remote_address {
            None | Some("0.0.0.0/0") | Some("::/0") => Remote::Any,
            Some(cidr) => Remote::Cidr(cidr.parse().map_err(|_| bad("remoteAddress", cidr))?),
        },
    };
    Ok(Rule {
        protocol,
        ports,
        remote,
        priority: match r.priority {
            // What `security_group` writes for a rule of the default priority.
            None => 100,
            Some(p) => port(p, "priority")?,
        },
        action: match r.policy {
            Some("drop") => RuleAction::Drop,
            Some("allow") | None => RuleAction::Allow,
            Some(other) => return Err(bad("policy", other)),
        },
    })
}

fn rules_from(
    tenant: &Tenant,
    object: &SecurityGroupObject,
    field: &str,
    raw: &[RawRule<'_>],
) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let rule = rule_from(tenant, object, &format!("{field}[{i}]"), raw[i])?;
        // The IPv6 half of an "anywhere" rule follows its IPv4 half.
        let twin = raw.get(i + 1).is_some_and(|next| {
            raw[i].remote_address == Some("0.0.0.0/0")
                && next.remote_address == Some("::/0")
                && matches!(
                    rule_from(tenant, object, &format!("{field}[{}]", i + 1), *next),
                    Ok(r) if r == rule
                )
        });
        i += if twin { 2 } else { 1 };
        out.push(rule);
    }
    Ok(out)
}

/// The security-group spec a `SecurityGroup` says.
pub fn security_group_spec_from(
    tenant: &Tenant,
    object: &SecurityGroupObject,
) -> Result<SecurityGroupSpec> {
    let ingress: Vec<RawRule<'_>> = object
        .spec
        .ingress_rules
        .iter()
        .flatten()
        .map(RawRule::from)
        .collect();
    let egress: Vec<RawRule<'_>> = object
        .spec
        .egress_rules
        .iter()
        .flatten()
        .map(RawRule::from)
        .collect();
    Ok(SecurityGroupSpec {
        name: domain_name(object)?,
        ingress: rules_from(tenant, object, "spec.ingressRules", &ingress)?,
        egress: rules_from(tenant, object, "spec.egressRules", &egress)?,
    })
}

fn service_protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
        _ => "TCP",
    }
}

/// The ClusterIP `Service` in front of the VMs the selector picks (VM labels are on the VMs'
/// virt-launcher pods). Ports are named `<protocol>-<port>`.
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
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": spec.name,
            "namespace": kubecloud_kube::tenant_namespace(tenant),
            "labels": ownership_labels(tenant, &spec.name),
        },
        "spec": {"type": "ClusterIP", "selector": spec.selector, "ports": ports},
    })
}

/// The service spec a `Service` says (a port or target port that is not a port number, or a
/// protocol that is not TCP, UDP or SCTP, is an error naming the field).
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
    format!(
        "{name}.{}.svc.cluster.local",
        kubecloud_kube::tenant_namespace(tenant)
    )
}

/// Label `key` of an object.
pub(crate) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Annotation `key` of an object.
fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The domain name an object stands for (its `kubecloud.io/name` label).
pub(crate) fn domain_name<K: Resource<DynamicType = ()>>(object: &K) -> Result<String> {
    label(object.meta(), kubecloud_kube::NAME)
        .map(str::to_string)
        .ok_or_else(|| malformed(object, "metadata.labels", "no kubecloud.io/name label"))
}

/// The domain name an object stands for, or its own name for one kubecloud did not label.
fn domain_name_or_object<K: Resource<DynamicType = ()>>(object: &K) -> Result<String> {
    match label(object.meta(), kubecloud_kube::NAME) {
        Some(name) => Ok(name.to_string()),
        None => object_name(object),
    }
}

/// An object's name (every object the API server answers with has one).
pub(crate) fn object_name<K: Resource<DynamicType = ()>>(object: &K) -> Result<String> {
    object
        .meta()
        .name
        .clone()
        .ok_or_else(|| malformed(object, "metadata.name", "missing"))
}

/// Field `field` of `object` parsed as a `T`; missing or not a `T` is an error naming it.
fn parse<T: std::str::FromStr, K: Resource<DynamicType = ()>>(
    object: &K,
    value: Option<&str>,
    field: &str,
) -> Result<T> {
    let s = value.ok_or_else(|| malformed(object, field, "missing"))?;
    s.parse().map_err(|_| malformed(object, field, s))
}

/// A live object that does not say what this backend wrote (someone changed it by hand, or
/// Kube-OVN wrote something unexpected): a permanent error naming the object's kind and name,
/// the field and what it holds.
pub(crate) fn malformed<K: Resource<DynamicType = ()>>(
    object: &K,
    field: &str,
    value: &str,
) -> Error {
    Error::Backend {
        backend: crate::BACKEND.to_string(),
        message: format!(
            "unexpected {field} in {} {:?}: {value:?}",
            K::kind(&()),
            object.meta().name.as_deref().unwrap_or_default()
        ),
        temporary: false,
        source: None,
    }
}

/// The error for a cluster-scoped name that exists but is not this tenant's (two tenants whose
/// names concatenate alike, or an object made by hand): refused without saying whose it is.
pub fn name_taken(kind: ResourceKind, name: &str, object: &str) -> Error {
    Error::conflict(
        kind,
        name,
        format!(
            "the cluster-scoped name {object:?} is taken by an object kubecloud did not make for this tenant"
        ),
    )
}
