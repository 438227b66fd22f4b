//! Networking: VPCs, subnets, IP reservations, security groups, services, the [`Network`] trait.

use std::net::IpAddr;

use async_trait::async_trait;
use futures::stream::BoxStream;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::addr::{IpRange, MacAddress};
use crate::attach::InterfaceAttachment;
use crate::compute::NetworkInterface;
use crate::error::{Error, Result};
use crate::name::{Labels, Tenant, validate_name, validate_user_labels};

/// A virtual private cloud: an isolated routing domain of one tenant.
///
/// ```
/// let vpc = kubecloud_core::VpcSpec::named("main");
/// assert!(vpc.validate().is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VpcSpec {
    /// The VPC's name.
    pub name: String,
    /// Static routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    /// Other VPCs of the same tenant to peer with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

impl VpcSpec {
    /// A VPC with no routes and no peers.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        for (i, route) in self.static_routes.iter().enumerate() {
            if route.destination.addr().is_ipv4() != route.next_hop.is_ipv4() {
                return Err(Error::invalid(
                    format!("staticRoutes[{i}].nextHop"),
                    "is of another IP family than the destination",
                ));
            }
        }
        for (i, peer) in self.peers.iter().enumerate() {
            validate_name(&format!("peers[{i}]"), peer)?;
            if peer == &self.name {
                return Err(Error::invalid(
                    format!("peers[{i}]"),
                    "a VPC cannot peer with itself",
                ));
            }
        }
        Ok(())
    }
}

/// A static route in a VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticRoute {
    /// Destination CIDR.
    pub destination: IpNet,
    /// Next hop.
    pub next_hop: IpAddr,
}

/// A VPC as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vpc {
    /// Its spec.
    pub spec: VpcSpec,
    /// Whether the backend reports it ready.
    pub ready: bool,
    /// Its subnets.
    pub subnets: Vec<String>,
}

/// A subnet of a VPC.
///
/// ```
/// use kubecloud_core::SubnetSpec;
/// let subnet = SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap());
/// assert_eq!(subnet.gateway_ip(), "10.1.0.1".parse::<std::net::IpAddr>().unwrap());
/// assert!(subnet.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubnetSpec {
    /// The subnet's name.
    pub name: String,
    /// The VPC it belongs to.
    pub vpc: String,
    /// Its CIDR.
    pub cidr: IpNet,
    /// The gateway; the first host address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Addresses never handed out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<IpRange>,
    /// Only reachable from its own VPC's `allow` list.
    #[serde(default)]
    pub private: bool,
    /// CIDRs a private subnet accepts traffic from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<IpNet>,
    /// Outgoing traffic is NATed to the node's address.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// Reached as a secondary interface (a Multus attachment) instead of the VM's primary network.
    #[serde(default)]
    pub secondary: bool,
}

impl SubnetSpec {
    /// A subnet with defaults (first host as gateway, nothing excluded, public, primary).
    pub fn new(name: impl Into<String>, vpc: impl Into<String>, cidr: IpNet) -> Self {
        Self {
            name: name.into(),
            vpc: vpc.into(),
            cidr,
            gateway: None,
            exclude: Vec::new(),
            private: false,
            allow: Vec::new(),
            nat_outgoing: false,
            secondary: false,
        }
    }

    /// The gateway address (explicit or the first host).
    pub fn gateway_ip(&self) -> IpAddr {
        self.gateway.unwrap_or_else(|| first_host(self.cidr))
    }

    /// Checks the spec on its own (overlap with other subnets is the backend's check).
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        validate_name("vpc", &self.vpc)?;
        if self.cidr != self.cidr.trunc() {
            return Err(Error::invalid(
                "cidr",
                format!(
                    "{} has host bits set; did you mean {}?",
                    self.cidr,
                    self.cidr.trunc()
                ),
            ));
        }
        let too_small = match self.cidr {
            IpNet::V4(n) => n.prefix_len() > 29,
            IpNet::V6(n) => n.prefix_len() > 125,
        };
        if too_small {
            return Err(Error::invalid(
                "cidr",
                format!("{} is too small for a subnet", self.cidr),
            ));
        }
        if let Some((what, block)) = special_block(&IpRange {
            first: self.cidr.network(),
            last: self.cidr.broadcast(),
        }) {
            return Err(Error::invalid(
                "cidr",
                format!(
                    "{} overlaps {block}, the {what} block: not usable for a subnet",
                    self.cidr
                ),
            ));
        }
        if let Some(gw) = self.gateway
            && (!self.cidr.contains(&gw)
                || gw == self.cidr.network()
                || Some(gw) == broadcast(self.cidr))
        {
            return Err(Error::invalid(
                "gateway",
                format!("{gw} is not a host address of {}", self.cidr),
            ));
        }
        for (i, range) in self.exclude.iter().enumerate() {
            if !self.cidr.contains(&range.first) || !self.cidr.contains(&range.last) {
                return Err(Error::invalid(
                    format!("exclude[{i}]"),
                    format!("{range} is not inside {}", self.cidr),
                ));
            }
        }
        Ok(())
    }
}

impl SubnetSpec {
    /// Checks that `ip` can be fixed on an interface or reserved in this subnet: inside the
    /// CIDR, and neither its network address, its broadcast address (IPv4), its gateway nor an
    /// excluded address. `field` names the field in the error.
    ///
    /// ```
    /// use kubecloud_core::SubnetSpec;
    /// let mut web = SubnetSpec::new("web", "main", "10.1.0.0/24".parse().unwrap());
    /// web.exclude = vec!["10.1.0.200..10.1.0.210".parse().unwrap()];
    /// assert!(web.check_host_address("fixedIp", "10.1.0.10".parse().unwrap()).is_ok());
    /// for refused in ["10.1.0.0", "10.1.0.1", "10.1.0.255", "10.1.0.205", "10.2.0.1"] {
    ///     let err = web.check_host_address("fixedIp", refused.parse().unwrap()).unwrap_err();
    ///     assert_eq!(err.invalid_field(), Some("fixedIp"));
    /// }
    /// ```
    pub fn check_host_address(&self, field: &str, ip: IpAddr) -> Result<()> {
        let why = if !self.cidr.contains(&ip) {
            Some("is not inside".to_string())
        } else if ip == self.cidr.network() {
            Some("is the network address of".to_string())
        } else if Some(ip) == broadcast(self.cidr) {
            Some("is the broadcast address of".to_string())
        } else if ip == self.gateway_ip() {
            Some("is the gateway of".to_string())
        } else {
            self.exclude
                .iter()
                .position(|r| r.contains(ip))
                .map(|i| format!("is excluded (exclude[{i}]) in"))
        };
        match why {
            None => Ok(()),
            Some(why) => Err(Error::invalid(
                field,
                format!("{ip} {why} subnet {:?} ({})", self.name, self.cidr),
            )),
        }
    }
}

/// Address blocks no subnet or address pool may overlap, with what they are: the unspecified
/// ("this network") block, loopback, link-local and multicast, of both families, and the IPv4
/// limited broadcast address.
pub const SPECIAL_BLOCKS: &[(&str, &str)] = &[
    ("unspecified", "0.0.0.0/8"),
    ("loopback", "127.0.0.0/8"),
    ("link-local", "169.254.0.0/16"),
    ("multicast", "224.0.0.0/4"),
    ("broadcast", "255.255.255.255/32"),
    ("unspecified", "::/128"),
    ("loopback", "::1/128"),
    ("link-local", "fe80::/10"),
    ("multicast", "ff00::/8"),
];

/// The first [special block](SPECIAL_BLOCKS) `range` overlaps, as (what it is, the block).
///
/// ```
/// use kubecloud_core::{special_block, IpRange};
/// let all: IpRange = "0.0.0.0..255.255.255.255".parse().unwrap();
/// assert_eq!(special_block(&all).map(|(what, _)| what), Some("unspecified"));
/// let lan: IpRange = "10.0.0.0..10.0.0.255".parse().unwrap();
/// assert_eq!(special_block(&lan), None);
/// ```
pub fn special_block(range: &IpRange) -> Option<(&'static str, IpNet)> {
    SPECIAL_BLOCKS.iter().find_map(|(what, block)| {
        let block: IpNet = block.parse().ok()?;
        let other = IpRange {
            first: block.network(),
            last: block.broadcast(),
        };
        (other.first.is_ipv4() == range.first.is_ipv4() && other.overlaps(range))
            .then_some((*what, block))
    })
}

/// The first host address of a CIDR (the network address + 1).
pub fn first_host(cidr: IpNet) -> IpAddr {
    let n = crate::addr::ip_to_u128(cidr.network()) + 1;
    crate::addr::u128_to_ip(n, cidr.network()).unwrap_or(cidr.network())
}

/// The broadcast address of an IPv4 CIDR (IPv6 has none).
pub fn broadcast(cidr: IpNet) -> Option<IpAddr> {
    match cidr {
        IpNet::V4(n) => Some(IpAddr::V4(n.broadcast())),
        IpNet::V6(_) => None,
    }
}

/// Whether two CIDRs share an address.
///
/// ```
/// use kubecloud_core::cidrs_overlap;
/// assert!(cidrs_overlap("10.0.0.0/16".parse().unwrap(), "10.0.3.0/24".parse().unwrap()));
/// assert!(!cidrs_overlap("10.0.0.0/24".parse().unwrap(), "10.0.1.0/24".parse().unwrap()));
/// ```
pub fn cidrs_overlap(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A subnet as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// Its spec.
    pub spec: SubnetSpec,
    /// Addresses still free.
    pub available: u128,
    /// Addresses in use (reservations and dynamic allocations).
    pub used: u128,
    /// Whether the backend reports it ready.
    pub ready: bool,
    /// Whether some of the objects the subnet is made of are missing: its creation or deletion
    /// was interrupted half-way (on Kube-OVN, a secondary subnet without its
    /// NetworkAttachmentDefinition, so VMs cannot attach to it). [`Network::create_subnet`]
    /// completes it, [`Network::delete_subnet`] removes what is left of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

/// A fixed IP (and MAC) held for a VM interface, kept across live migration.
///
/// ```
/// use kubecloud_core::IpReservationSpec;
/// let r = IpReservationSpec::new("db-eth0", "back").with_ip("10.2.0.10".parse().unwrap());
/// assert!(r.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpReservationSpec {
    /// The reservation's name.
    pub name: String,
    /// The subnet the address comes from.
    pub subnet: String,
    /// The address; the next free one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The MAC; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
}

impl IpReservationSpec {
    /// A reservation of the next free address of `subnet`.
    pub fn new(name: impl Into<String>, subnet: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            subnet: subnet.into(),
            ip: None,
            mac: None,
        }
    }

    /// The same reservation of a specific address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        validate_name("subnet", &self.subnet)?;
        if let Some(mac) = self.mac
            && mac.is_multicast()
        {
            return Err(Error::invalid(
                "mac",
                format!("{mac} is a multicast address"),
            ));
        }
        Ok(())
    }
}

/// A reservation as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpReservation {
    /// The reservation's name.
    pub name: String,
    /// Its subnet.
    pub subnet: String,
    /// The address held.
    pub ip: IpAddr,
    /// The MAC held.
    pub mac: MacAddress,
    /// The VM (and interface) using it, as `vm/interface`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A security group: rules applied to the VM interfaces that name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityGroupSpec {
    /// The group's name.
    pub name: String,
    /// Rules for traffic into the interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    /// Rules for traffic out of the interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

impl SecurityGroupSpec {
    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        for (dir, rules) in [("ingress", &self.ingress), ("egress", &self.egress)] {
            for (i, rule) in rules.iter().enumerate() {
                let field = format!("{dir}[{i}]");
                if let Some(ports) = rule.ports {
                    if ports.first == 0 || ports.last < ports.first {
                        return Err(Error::invalid(
                            format!("{field}.ports"),
                            format!("{}-{} is not a port range", ports.first, ports.last),
                        ));
                    }
                    if !matches!(rule.protocol, Protocol::Tcp | Protocol::Udp) {
                        return Err(Error::invalid(
                            format!("{field}.ports"),
                            "ports apply to tcp and udp only",
                        ));
                    }
                }
                if let Remote::Group(group) = &rule.remote {
                    validate_name(&format!("{field}.remote"), group)?;
                }
                if !(1..=200).contains(&rule.priority) {
                    return Err(Error::invalid(
                        format!("{field}.priority"),
                        format!("{} is outside 1..=200", rule.priority),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One security-group rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The protocol.
    pub protocol: Protocol,
    /// Ports (tcp/udp); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
    /// The other side.
    #[serde(default)]
    pub remote: Remote,
    /// Lower numbers win (1 to 200).
    #[serde(default = "default_priority")]
    pub priority: u16,
    /// Allow or drop.
    #[serde(default)]
    pub action: RuleAction,
}

fn default_priority() -> u16 {
    100
}

impl Rule {
    /// Allows tcp traffic on one port from anywhere.
    pub fn allow_tcp(port: u16) -> Self {
        Self {
            protocol: Protocol::Tcp,
            ports: Some(PortRange {
                first: port,
                last: port,
            }),
            remote: Remote::Any,
            priority: default_priority(),
            action: RuleAction::Allow,
        }
    }
}

/// An IP protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP.
    Icmp,
    /// Any protocol.
    All,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            Self::Icmp => "ICMP",
            Self::All => "ALL",
        })
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// The other side of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Remote {
    /// Anywhere.
    #[default]
    Any,
    /// Addresses in a CIDR.
    Cidr(IpNet),
    /// Interfaces in another security group.
    Group(String),
}

/// What a rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleAction {
    /// Let it through.
    #[default]
    Allow,
    /// Drop it.
    Drop,
}

/// A security group as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    /// Its spec.
    pub spec: SecurityGroupSpec,
}

/// An internal service: a stable address and DNS name in front of the VMs its selector picks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name (and DNS label).
    pub name: String,
    /// VM labels that select its endpoints (must not be empty).
    pub selector: Labels,
    /// Its ports.
    pub ports: Vec<ServicePort>,
}

impl ServiceSpec {
    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        if self.selector.is_empty() {
            return Err(Error::invalid(
                "selector",
                "must select VMs by at least one label",
            ));
        }
        validate_user_labels("selector", &self.selector)?;
        validate_ports("ports", &self.ports)
    }
}

/// Checks a list of service ports: at least one, none zero, no port/protocol twice.
pub fn validate_ports(field: &str, ports: &[ServicePort]) -> Result<()> {
    if ports.is_empty() {
        return Err(Error::invalid(field, "at least one port is needed"));
    }
    for (i, p) in ports.iter().enumerate() {
        if p.port == 0 {
            return Err(Error::invalid(
                format!("{field}[{i}].port"),
                "must not be 0",
            ));
        }
        if p.target_port == Some(0) {
            return Err(Error::invalid(
                format!("{field}[{i}].targetPort"),
                "must not be 0",
            ));
        }
        if !matches!(p.protocol, Protocol::Tcp | Protocol::Udp | Protocol::Sctp) {
            return Err(Error::invalid(
                format!("{field}[{i}].protocol"),
                format!(
                    "{} cannot be load-balanced; use tcp, udp or sctp",
                    p.protocol
                ),
            ));
        }
        if ports[..i]
            .iter()
            .any(|o| o.port == p.port && o.protocol == p.protocol)
        {
            return Err(Error::invalid(
                format!("{field}[{i}].port"),
                format!("{}/{} is listed twice", p.port, p.protocol),
            ));
        }
    }
    Ok(())
}

/// One port of a service or exposure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port clients connect to.
    pub port: u16,
    /// The VM's port; the same as `port` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// The protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

impl ServicePort {
    /// A TCP port forwarded to the same port.
    pub fn tcp(port: u16) -> Self {
        Self {
            port,
            target_port: None,
            protocol: Protocol::Tcp,
        }
    }
}

/// A service as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Its spec.
    pub spec: ServiceSpec,
    /// Its stable internal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<IpAddr>,
    /// Its DNS name.
    pub dns_name: String,
    /// The VMs currently selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

/// An address from the provider's external network, held by a tenant.
///
/// ```
/// let eip = kubecloud_core::ExternalIpSpec::new("web");
/// assert!(eip.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalIpSpec {
    /// The external IP's name.
    pub name: String,
    /// The address; the next free one of the external network when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

impl ExternalIpSpec {
    /// The next free external address.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ip: None,
        }
    }

    /// The same external IP, asking for a specific address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        if let Some(ip) = self.ip
            && (ip.is_unspecified() || ip.is_multicast() || ip.is_loopback())
        {
            return Err(Error::invalid(
                "ip",
                format!("{ip} cannot be an external address"),
            ));
        }
        Ok(())
    }
}

/// An external IP as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIp {
    /// Its spec.
    pub spec: ExternalIpSpec,
    /// The address held, once the backend has allocated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Whether the backend reports it ready.
    pub ready: bool,
}

/// A floating IP: binds an external IP one-to-one to a tenant's IP reservation (inbound and
/// outbound NAT of that address).
///
/// ```
/// let fip = kubecloud_core::FloatingIpSpec::new("web", "web-eip", "web-eth0");
/// assert!(fip.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FloatingIpSpec {
    /// The floating IP's name.
    pub name: String,
    /// The external IP it uses.
    pub external_ip: String,
    /// The reservation whose address it binds.
    pub reservation: String,
}

impl FloatingIpSpec {
    /// A floating IP of `external_ip` to `reservation`.
    pub fn new(
        name: impl Into<String>,
        external_ip: impl Into<String>,
        reservation: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            external_ip: external_ip.into(),
            reservation: reservation.into(),
        }
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        validate_name("externalIp", &self.external_ip)?;
        validate_name("reservation", &self.reservation)
    }
}

/// A floating IP as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FloatingIp {
    /// Its spec.
    pub spec: FloatingIpSpec,
    /// Whether the backend reports it ready.
    pub ready: bool,
}

/// A SNAT rule: outbound traffic of a subnet leaves behind an external IP.
///
/// ```
/// let snat = kubecloud_core::SnatRuleSpec::new("front-out", "egress", "front");
/// assert!(snat.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnatRuleSpec {
    /// The rule's name.
    pub name: String,
    /// The external IP outbound traffic leaves from.
    pub external_ip: String,
    /// The subnet whose outbound traffic is translated.
    pub subnet: String,
}

impl SnatRuleSpec {
    /// A SNAT rule of `subnet` behind `external_ip`.
    pub fn new(
        name: impl Into<String>,
        external_ip: impl Into<String>,
        subnet: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            external_ip: external_ip.into(),
            subnet: subnet.into(),
        }
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        validate_name("externalIp", &self.external_ip)?;
        validate_name("subnet", &self.subnet)
    }
}

/// A SNAT rule as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnatRule {
    /// Its spec.
    pub spec: SnatRuleSpec,
    /// Whether the backend reports it ready.
    pub ready: bool,
}

/// What a network backend can do. The facade checks these before dispatching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkCapabilities {
    /// VPCs isolated from other tenants.
    pub vpc_isolation: bool,
    /// Static routes in VPCs.
    pub static_routes: bool,
    /// Peering between VPCs.
    pub vpc_peering: bool,
    /// Fixed IP reservations.
    pub fixed_ips: bool,
    /// Fixed MACs.
    pub fixed_macs: bool,
    /// Secondary (Multus) subnets.
    pub secondary_subnets: bool,
    /// Security groups.
    pub security_groups: bool,
    /// Internal services.
    pub services: bool,
    /// IPv6 subnets.
    pub ipv6: bool,
    /// External access from inside a VPC: external IPs, floating IPs and SNAT rules.
    #[serde(default)]
    pub external_access: bool,
    /// A fixed IP on a VM interface must be the address of a reservation of the subnet (the
    /// network fixes interface addresses only through reservations: Multus with whereabouts,
    /// which takes no requested address). Reserve it first; the interface then takes it.
    #[serde(default)]
    pub fixed_ips_through_reservations: bool,
    /// The MAC of an interface without a fixed one comes from a cluster-wide MAC pool
    /// (Kubemacpool), which hands out each MAC once and keeps it for the VM's life (restarts and
    /// live migration included); without it the MAC is the hypervisor's or the network's.
    #[serde(default)]
    pub mac_pool: bool,
}

/// Which way a packet crosses a VM's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Into the VM (security-group `ingress` rules).
    Ingress,
    /// Out of the VM (security-group `egress` rules).
    Egress,
}

/// A packet at a VM's port, as asked of a network that enforces security groups ("would this be
/// let through?").
///
/// ```
/// use kubecloud_core::{Direction, Packet, Protocol};
/// let ssh = Packet::tcp_in(22, "198.51.100.7".parse().unwrap());
/// assert_eq!((ssh.direction, ssh.protocol, ssh.port), (Direction::Ingress, Protocol::Tcp, Some(22)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Packet {
    /// Into or out of the VM.
    pub direction: Direction,
    /// Its protocol ([`Protocol::All`] is not a packet's protocol: use the one it carries).
    pub protocol: Protocol,
    /// The destination port (tcp, udp, sctp).
    pub port: Option<u16>,
    /// The other side's address: the source of an ingress packet, the destination of an egress
    /// one.
    pub peer: IpAddr,
}

impl Packet {
    /// A TCP packet to port `port` of the VM from `peer`.
    pub fn tcp_in(port: u16, peer: IpAddr) -> Self {
        Self {
            direction: Direction::Ingress,
            protocol: Protocol::Tcp,
            port: Some(port),
            peer,
        }
    }
}

/// The networks of a tenant. Implemented by each network backend.
#[async_trait]
pub trait Network: Send + Sync + std::fmt::Debug {
    /// The backend's name for errors.
    fn backend_name(&self) -> &str;
    /// The namespaces the backend's system runs in or keeps its own objects in (MetalLB's
    /// `metallb-system`, say): never a tenant's. [`Tenant`] names equal to one of them are
    /// refused by the facade before anything is sent. None by default.
    fn system_namespaces(&self) -> Vec<String> {
        Vec::new()
    }
    /// What this backend can do.
    fn capabilities(&self) -> NetworkCapabilities;

    /// The waits this backend keeps even when an apply does not wait
    /// ([`wait::send_only`](crate::wait::send_only)), each with the reason a later step needs
    /// it; none by default. A tenant's plan reports them on the steps they hold up.
    fn kept_waits(&self) -> &'static [crate::wait::KeptWait] {
        &[]
    }
    /// How each of VM `vm`'s `interfaces` is attached (one answer per interface, in order):
    /// the network selection, binding and pod annotations the compute backend applies, and what
    /// the network guarantees, security groups in force included. Refuses an interface naming
    /// a subnet or security group the tenant does not have ([`crate::Error::NotFound`]), or
    /// asking for what the backend cannot do. Sends nothing.
    async fn attach_interfaces(
        &self,
        tenant: &Tenant,
        vm: &str,
        interfaces: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>>;

    /// Creates a VPC.
    async fn create_vpc(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc>;
    /// The VPC named `name`.
    async fn get_vpc(&self, tenant: &Tenant, name: &str) -> Result<Vpc>;
    /// The tenant's VPCs.
    async fn list_vpcs(&self, tenant: &Tenant) -> Result<Vec<Vpc>>;
    /// Deletes a VPC; refused while it has subnets.
    async fn delete_vpc(&self, tenant: &Tenant, name: &str) -> Result<()>;

    /// Creates a subnet; refused if its CIDR overlaps another subnet of the VPC.
    async fn create_subnet(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet>;
    /// The subnet named `name`, with usage.
    async fn get_subnet(&self, tenant: &Tenant, name: &str) -> Result<Subnet>;
    /// The tenant's subnets.
    async fn list_subnets(&self, tenant: &Tenant) -> Result<Vec<Subnet>>;
    /// Deletes a subnet; refused while addresses are in use.
    async fn delete_subnet(&self, tenant: &Tenant, name: &str) -> Result<()>;
    /// The subnet's state, with its usage, now and at every change (an address taken or given
    /// back, e.g. asynchronously by the network after a VM is gone), until it is deleted (the
    /// stream then ends). A missing subnet is refused with [`Error::NotFound`].
    ///
    /// Provided for compatibility: refuses with [`Error::Unsupported`]; every backend of this
    /// workspace implements it, and the conformance suite waits on it.
    ///
    /// ```
    /// # async fn demo(network: &dyn kubecloud_core::Network, acme: &kubecloud_core::Tenant) -> kubecloud_core::Result<()> {
    /// use futures::StreamExt;
    /// let mut states = network.watch_subnet(acme, "web").await?;
    /// while let Some(subnet) = states.next().await {
    ///     if subnet?.used == 0 {
    ///         break; // every address given back
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    async fn watch_subnet(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Subnet>>> {
        let _ = (tenant, name);
        Err(Error::unsupported(
            self.backend_name(),
            "network.watch_subnet",
            "watch_subnet",
        ))
    }

    /// Reserves an address (and MAC) in a subnet.
    async fn reserve_ip(&self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation>;
    /// The reservation named `name`.
    async fn get_ip(&self, tenant: &Tenant, name: &str) -> Result<IpReservation>;
    /// The tenant's reservations, of one subnet or all.
    async fn list_ips(&self, tenant: &Tenant, subnet: Option<&str>) -> Result<Vec<IpReservation>>;
    /// Releases a reservation; the address becomes free.
    async fn release_ip(&self, tenant: &Tenant, name: &str) -> Result<()>;

    /// Creates a security group.
    async fn create_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup>;
    /// Replaces the rules of the existing security group `spec.name` in place: the interfaces in
    /// the group stay in it and get the new rules ([`crate::Error::NotFound`] if there is no
    /// such group).
    async fn update_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup>;
    /// The security group named `name`.
    async fn get_security_group(&self, tenant: &Tenant, name: &str) -> Result<SecurityGroup>;
    /// The tenant's security groups.
    async fn list_security_groups(&self, tenant: &Tenant) -> Result<Vec<SecurityGroup>>;
    /// Deletes a security group.
    async fn delete_security_group(&self, tenant: &Tenant, name: &str) -> Result<()>;

    /// Creates an internal service.
    async fn create_service(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service>;
    /// The service named `name`.
    async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service>;
    /// The tenant's services.
    async fn list_services(&self, tenant: &Tenant) -> Result<Vec<Service>>;
    /// Deletes a service.
    async fn delete_service(&self, tenant: &Tenant, name: &str) -> Result<()>;

    /// Allocates an address of the external network (capability `external_access`).
    async fn create_external_ip(
        &self,
        tenant: &Tenant,
        spec: &ExternalIpSpec,
    ) -> Result<ExternalIp> {
        let _ = (tenant, spec);
        Err(Error::unsupported(
            self.backend_name(),
            "network.create_external_ip",
            "external_access",
        ))
    }
    /// The external IP named `name`.
    async fn get_external_ip(&self, tenant: &Tenant, name: &str) -> Result<ExternalIp> {
        let _ = (tenant, name);
        Err(Error::unsupported(
            self.backend_name(),
            "network.get_external_ip",
            "external_access",
        ))
    }
    /// The tenant's external IPs.
    async fn list_external_ips(&self, tenant: &Tenant) -> Result<Vec<ExternalIp>> {
        let _ = tenant;
        Err(Error::unsupported(
            self.backend_name(),
            "network.list_external_ips",
            "external_access",
        ))
    }
    /// Releases an external IP; refused (`Conflict`) while a floating IP or SNAT rule uses it.
    async fn delete_external_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let _ = (tenant, name);
        Err(Error::unsupported(
            self.backend_name(),
            "network.delete_external_ip",
            "external_access",
        ))
    }

    /// Binds an external IP to a reservation (capability `external_access`).
    async fn create_floating_ip(
        &self,
        tenant: &Tenant,
        spec: &FloatingIpSpec,
    ) -> Result<FloatingIp> {
        let _ = (tenant, spec);
        Err(Error::unsupported(
            self.backend_name(),
            "network.create_floating_ip",
            "external_access",
        ))
    }
    /// The tenant's floating IPs.
    async fn list_floating_ips(&self, tenant: &Tenant) -> Result<Vec<FloatingIp>> {
        let _ = tenant;
        Err(Error::unsupported(
            self.backend_name(),
            "network.list_floating_ips",
            "external_access",
        ))
    }
    /// Deletes a floating IP (the external IP and the reservation stay).
    async fn delete_floating_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let _ = (tenant, name);
        Err(Error::unsupported(
            self.backend_name(),
            "network.delete_floating_ip",
            "external_access",
        ))
    }

    /// Puts a subnet's outbound traffic behind an external IP (capability `external_access`).
    async fn create_snat_rule(&self, tenant: &Tenant, spec: &SnatRuleSpec) -> Result<SnatRule> {
        let _ = (tenant, spec);
        Err(Error::unsupported(
            self.backend_name(),
            "network.create_snat_rule",
            "external_access",
        ))
    }
    /// The tenant's SNAT rules.
    async fn list_snat_rules(&self, tenant: &Tenant) -> Result<Vec<SnatRule>> {
        let _ = tenant;
        Err(Error::unsupported(
            self.backend_name(),
            "network.list_snat_rules",
            "external_access",
        ))
    }
    /// Deletes a SNAT rule (the external IP stays).
    async fn delete_snat_rule(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let _ = (tenant, name);
        Err(Error::unsupported(
            self.backend_name(),
            "network.delete_snat_rule",
            "external_access",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_checks_name_their_field() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let mut s = SubnetSpec::new("a", "v", net("10.0.0.5/24"));
        assert_eq!(s.validate().unwrap_err().invalid_field(), Some("cidr"));
        s.cidr = net("10.0.0.0/30");
        assert_eq!(s.validate().unwrap_err().invalid_field(), Some("cidr"));
        s.cidr = net("10.0.0.0/24");
        s.gateway = Some("10.0.1.1".parse().unwrap());
        assert_eq!(s.validate().unwrap_err().invalid_field(), Some("gateway"));
        s.gateway = None;
        s.exclude = vec!["10.0.0.250..10.0.1.2".parse().unwrap()];
        assert_eq!(
            s.validate().unwrap_err().invalid_field(),
            Some("exclude[0]")
        );
    }

    #[test]
    fn external_access_checks_name_their_field() {
        let eip = ExternalIpSpec::new("a").with_ip("0.0.0.0".parse().unwrap());
        assert_eq!(eip.validate().unwrap_err().invalid_field(), Some("ip"));
        let fip = FloatingIpSpec::new("f", "Bad_Name", "r");
        assert_eq!(
            fip.validate().unwrap_err().invalid_field(),
            Some("externalIp")
        );
        let snat = SnatRuleSpec::new("s", "e", "");
        assert_eq!(snat.validate().unwrap_err().invalid_field(), Some("subnet"));
    }

    #[test]
    fn duplicate_ports_are_refused() {
        let ports = [ServicePort::tcp(80), ServicePort::tcp(80)];
        assert_eq!(
            validate_ports("ports", &ports).unwrap_err().invalid_field(),
            Some("ports[1].port")
        );
        let ports = [
            ServicePort::tcp(53),
            ServicePort {
                protocol: Protocol::Udp,
                ..ServicePort::tcp(53)
            },
        ];
        assert!(validate_ports("ports", &ports).is_ok());
    }
}
