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

use std::collections::BTreeMap;
use std::net::IpAddr;

use kubecloud_core::{
    Error, IpNet, IpRange, IpReservation, IpReservationSpec, PortRange, Protocol, Remote,
    ResourceKind, Result, Rule, RuleAction, SecurityGroupSpec, ServicePort, ServiceSpec,
    StaticRoute, SubnetSpec, Tenant, VpcSpec, first_host,
};
use kubecloud_kube::names;
use kubecloud_kube::ownership_labels;
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

/// The VPC spec an object says, read back from its fields.
pub fn vpc_spec_from(object: &Value) -> Result<VpcSpec> {
    let name = domain_name(object)?;
    let mut static_routes = Vec::new();
    for route in object["spec"]["staticRoutes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let destination = parse::<IpNet>(&route["cidr"], "staticRoutes.cidr")?;
        let next_hop = parse::<IpAddr>(&route["nextHopIP"], "staticRoutes.nextHopIP")?;
        static_routes.push(StaticRoute {
            destination,
            next_hop,
        });
    }
    let peers = object["metadata"]["annotations"][PEERS_ANNOTATION]
        .as_str()
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

/// The subnet spec an object says. The gateway reads back as `None` when it is the CIDR's first
/// host (the default), so a spec round-trips whether or not it spelled the default out.
pub fn subnet_spec_from(object: &Value) -> Result<SubnetSpec> {
    let name = domain_name(object)?;
    let spec = &object["spec"];
    let vpc = object["metadata"]["labels"][VPC_LABEL]
        .as_str()
        .ok_or_else(|| malformed("metadata.labels", "no VPC label"))?
        .to_string();
    let cidr = parse::<IpNet>(&spec["cidrBlock"], "cidrBlock")?;
    let gateway = match spec["gateway"].as_str() {
        Some(g) => Some(parse::<IpAddr>(&json!(g), "gateway")?).filter(|g| *g != first_host(cidr)),
        None => None,
    };
    let exclude = strings(&spec["excludeIps"])
        .map(|s| s.parse::<IpRange>().map_err(|_| malformed("excludeIps", s)))
        .collect::<Result<Vec<_>>>()?;
    let allow = strings(&spec["allowSubnets"])
        .map(|s| s.parse::<IpNet>().map_err(|_| malformed("allowSubnets", s)))
        .collect::<Result<Vec<_>>>()?;
    let provider = spec["provider"].as_str().unwrap_or("ovn");
    Ok(SubnetSpec {
        name,
        vpc,
        cidr,
        gateway,
        exclude,
        private: spec["private"].as_bool().unwrap_or(false),
        allow,
        nat_outgoing: spec["natOutgoing"].as_bool().unwrap_or(false),
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

/// The address an `IP` object (or a `Vip`, by the spec Kube-OVN writes back) holds, if it is
/// allocated yet.
pub fn ip_address(object: &Value) -> Option<IpAddr> {
    ["v4IpAddress", "v6IpAddress", "ipAddress", "v4ip", "v6ip"]
        .iter()
        .filter_map(|f| object["spec"][f].as_str())
        .filter_map(|s| s.split(',').next())
        .find_map(|s| s.parse().ok())
}

/// The workload an `IP` object is bound to (`podName`), if any.
pub fn ip_owner(object: &Value) -> Option<String> {
    object["spec"]["podName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether an `IP` belongs to a KubeVirt VM (rather than a plain pod).
pub fn ip_is_vm(object: &Value) -> bool {
    object["spec"]["podType"] == VM_POD_TYPE
}

/// The workload that took a `Vip`: Kube-OVN labels it with the port name
/// (`<pod or VM>.<namespace>[.<provider>]`, `podReuseVip`); the workload is the part before
/// `.<namespace>`.
///
/// ```
/// use serde_json::json;
/// let vip = json!({"metadata": {"labels": {"ovn.kubernetes.io/ip_reserved": "db.acme"}},
///                  "spec": {"namespace": "acme"}});
/// assert_eq!(kubecloud_kubeovn::translate::vip_owner(&vip).as_deref(), Some("db"));
/// ```
pub fn vip_owner(object: &Value) -> Option<String> {
    let port = object["metadata"]["labels"][RESERVED_LABEL]
        .as_str()
        .filter(|p| !p.is_empty())?;
    let ns = object["spec"]["namespace"].as_str().unwrap_or_default();
    let workload = port
        .strip_suffix(&format!(".{ns}"))
        .or_else(|| port.split_once(&format!(".{ns}.")).map(|(w, _)| w))
        .unwrap_or(port);
    Some(workload.to_string())
}

/// Whether kube-ovn-controller has given a `Vip` its address and MAC.
pub fn vip_allocated(object: &Value) -> bool {
    vip_address(object).is_some()
        && object["status"]["mac"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
}

fn vip_address(object: &Value) -> Option<IpAddr> {
    ["v4ip", "v6ip"]
        .iter()
        .filter_map(|f| object["status"][f].as_str())
        .find_map(|s| s.parse().ok())
}

/// The reservation a `Vip` stands for, given its subnet's domain name; `None` while
/// kube-ovn-controller has not allocated it.
pub fn reservation_from(object: &Value, subnet: &str) -> Option<IpReservation> {
    let ip = vip_address(object)?;
    let mac = object["status"]["mac"].as_str()?.parse().ok()?;
    let name = object["metadata"]["labels"][kubecloud_kube::NAME]
        .as_str()
        .or_else(|| object["metadata"]["name"].as_str())?
        .to_string();
    Some(IpReservation {
        name,
        subnet: subnet.to_string(),
        ip,
        mac,
        owner: vip_owner(object),
    })
}

/// What an `IP` object Kube-OVN made for a pod or VM holds, as a reservation-shaped record named
/// after the object (for leak reports); `None` while unallocated.
pub fn pod_ip_from(object: &Value, subnet: &str) -> Option<IpReservation> {
    let ip = ip_address(object)?;
    let mac = object["spec"]["macAddress"].as_str()?.parse().ok()?;
    Some(IpReservation {
        name: object["metadata"]["name"].as_str()?.to_string(),
        subnet: subnet.to_string(),
        ip,
        mac,
        owner: ip_owner(object),
    })
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

fn rule_from(tenant: &Tenant, r: &Value) -> Result<Rule> {
    let protocol = match r["protocol"].as_str().unwrap_or("all") {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        "all" => Protocol::All,
        other => return Err(malformed("protocol", other)),
    };
    let ports = match (r["portRangeMin"].as_u64(), r["portRangeMax"].as_u64()) {
        (Some(1), Some(65535)) | (None, _) | (_, None) => None,
        (Some(a), Some(b)) => Some(PortRange {
            first: u16::try_from(a).map_err(|_| malformed("portRangeMin", &a.to_string()))?,
            last: u16::try_from(b).map_err(|_| malformed("portRangeMax", &b.to_string()))?,
        }),
    };
    let remote = match r["remoteType"].as_str() {
        Some("securityGroup") => {
            let object = r["remoteSecurityGroup"].as_str().unwrap_or_default();
            let prefix = format!("{}-", tenant.as_str());
            let domain = object
                .strip_prefix(&prefix)
                .filter(|d| names::cluster_scoped(tenant, d) == object)
                .unwrap_or(object);
            Remote::Group(domain.to_string())
        }
        _ => match r["remoteAddress"].as_str() {
            None | Some("0.0.0.0/0") | Some("::/0") => Remote::Any,
            Some(cidr) => Remote::Cidr(cidr.parse().map_err(|_| malformed("remoteAddress", cidr))?),
        },
    };
    Ok(Rule {
        protocol,
        ports,
        remote,
        priority: r["priority"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(100),
        action: if r["policy"] == "drop" {
            RuleAction::Drop
        } else {
            RuleAction::Allow
        },
    })
}

fn rules_from(tenant: &Tenant, list: &Value) -> Result<Vec<Rule>> {
    let raw: Vec<&Value> = list.as_array().into_iter().flatten().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let rule = rule_from(tenant, raw[i])?;
        // The IPv6 half of an "anywhere" rule follows its IPv4 half.
        let twin = raw.get(i + 1).filter(|next| {
            raw[i]["remoteAddress"] == "0.0.0.0/0"
                && next["remoteAddress"] == "::/0"
                && rule_from(tenant, next).ok().as_ref() == Some(&rule)
        });
        i += if twin.is_some() { 2 } else { 1 };
        out.push(rule);
    }
    Ok(out)
}

/// The security-group spec an object says.
pub fn security_group_spec_from(tenant: &Tenant, object: &Value) -> Result<SecurityGroupSpec> {
    Ok(SecurityGroupSpec {
        name: domain_name(object)?,
        ingress: rules_from(tenant, &object["spec"]["ingressRules"])?,
        egress: rules_from(tenant, &object["spec"]["egressRules"])?,
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

/// The service spec a `Service` says.
pub fn service_spec_from(object: &Value) -> Result<ServiceSpec> {
    let selector: BTreeMap<String, String> =
        serde_json::from_value(object["spec"]["selector"].clone()).unwrap_or_default();
    let mut ports = Vec::new();
    for p in object["spec"]["ports"].as_array().into_iter().flatten() {
        let port = p["port"]
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| malformed("ports.port", &p["port"].to_string()))?;
        let target = p["targetPort"].as_u64().and_then(|v| u16::try_from(v).ok());
        ports.push(ServicePort {
            port,
            target_port: target.filter(|t| *t != port),
            protocol: match p["protocol"].as_str() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            },
        });
    }
    Ok(ServiceSpec {
        name: domain_name(object)?,
        selector,
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

/// The domain name an object stands for (its `kubecloud.io/name` label).
fn domain_name(object: &Value) -> Result<String> {
    object["metadata"]["labels"][kubecloud_kube::NAME]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| malformed("metadata.labels", "no kubecloud.io/name label"))
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn parse<T: std::str::FromStr>(v: &Value, field: &str) -> Result<T> {
    let s = v.as_str().ok_or_else(|| malformed(field, "missing"))?;
    s.parse().map_err(|_| malformed(field, s))
}

/// A live object that does not say what this backend wrote: someone changed it by hand.
fn malformed(field: &str, value: &str) -> Error {
    Error::Backend {
        backend: crate::BACKEND.to_string(),
        message: format!("unexpected {field} in a live object: {value:?}"),
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
