//! Kube-OVN's security groups as kube-ovn-controller enforces them: OVN port groups and ACLs on
//! the logical switch ports of pods, modelled from Kube-OVN's source (kube-ovn v1.17 development
//! line, commit `1533681d`) and kept in a small in-memory "northbound database" that tests can
//! query ([`Northbound`]): which groups and ACLs apply to a port, and whether a packet would pass.
//!
//! What is modelled, and where upstream does it:
//!
//! - **Ports** (`pkg/controller/pod.go`, `reconcileAllocateSubnets`, `handleUpdatePodSecurity`):
//!   one logical switch port per pod network a pod is allocated on, named like its `IP` object
//!   (`<pod>.<ns>` on the default provider, `<pod>.<ns>.<provider>` on an attachment; a KubeVirt
//!   VM's pods share `<vm>.<ns>`). The port reads the pod annotations
//!   `<provider>.kubernetes.io/security_groups` (comma-separated group names, spaces dropped) and
//!   `<provider>.kubernetes.io/port_security` (on only for exactly `"true"`), when the pod is
//!   allocated and on every later change of either annotation. The port goes when its `IP`
//!   object goes.
//! - **Security groups** (`pkg/controller/security_group.go`, `handleAddOrUpdateSg`,
//!   `validateSgRule`; `pkg/ovs/ovn-nb-acl.go`, `UpdateSgACL`, `newSgRuleACL`): a port group
//!   `ovn.sg.<name>` (`-` replaced by `.`) holding the ports that name the group; one ACL per
//!   rule at priority `18484 - priority`, `to-lport` (`outport == @pg`, remote is the source) for
//!   ingress rules and `from-lport` (`inport == @pg`, remote is the destination) for egress
//!   ones, matching the rule's IP version, remote address (a CIDR or IP) or remote group (the
//!   addresses of that group's ports), protocol and destination port range; `allow` is
//!   `allow-related`, anything else `drop`. `allowSameGroupTraffic` adds `allow-related` ACLs at
//!   priority 2004 for peers in the group itself. A group with an invalid rule (IP version,
//!   priority outside 1..=16384, a remote group that does not exist, a port range outside
//!   1..=65535 or reversed) is not synced and gets a `Warning` event. The status gets
//!   `portGroup`, `allowSameGroupTraffic` and `ingressLastSyncSuccess`/`egressLastSyncSuccess`.
//! - **Deny all** (`initDefaultDenyAllSecurityGroup`, `CreateSgDenyAllACL`,
//!   `updateDenyAllSgPorts`): port group `ovn.sg.kubeovn_deny_all` with `drop` ACLs at priority
//!   2003 for all IP traffic both ways; its members are the ports that name at least one group
//!   that exists. So IP traffic no rule allows is dropped on a port with groups, and a port with
//!   no group (or only groups that do not exist) has no security-group ACL at all: everything
//!   passes. Membership is recomputed when ports or groups are synced, not when a group is
//!   deleted (`handleDeleteSg` does not requeue it either).
//! - **Deleting a group** (`handleDeleteSg`): its port group and ACLs go; ports keep naming it.
//!   Kube-OVN has no webhook refusing it; refusing to delete a group in use is kubecloud's job.
//!
//! Not modelled: the base ACLs at priority 2005 (ARP, ND, DHCP, VRRP: [`PacketQuery`] asks about
//! tcp, udp and icmp from other hosts), ACL tiers and NetworkPolicy, `localAddress` and
//! `sourcePortRange`, `port_vips`, and connection tracking beyond "allow means allow-related".
//! Two ACLs of the same priority that both match: `drop` wins (OVN leaves the order undefined;
//! the double takes the stricter).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::controllers::ControllerApi;

use super::ControllerError;

const API: &str = "kubeovn.io/v1";
/// The port group every port with a security group is put in.
pub const DENY_ALL: &str = "ovn.sg.kubeovn_deny_all";
const HIGHEST_PRIORITY: u32 = 18484;
const ALLOW_SAME_GROUP_PRIORITY: u32 = 2004;
const DROP_PRIORITY: u32 = 2003;

/// The OVN port group of security group `name`.
///
/// ```
/// assert_eq!(kubecloud_testkit::kubeovn_security::port_group("acme-ssh-only"), "ovn.sg.acme.ssh.only");
/// ```
pub fn port_group(name: &str) -> String {
    format!("ovn.sg.{}", name.replace('-', "."))
}

/// Which way an ACL or a packet goes, in OVN's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AclDirection {
    /// `to-lport`: into the port (security-group ingress rules).
    ToLport,
    /// `from-lport`: out of the port (security-group egress rules).
    FromLport,
}

/// What an ACL does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AclAction {
    /// `allow-related`.
    AllowRelated,
    /// `drop`.
    Drop,
}

/// The other side an ACL matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclRemote {
    /// Any address of the ACL's IP version (`ip4` / `ip6` alone, or the deny-all `ip`).
    Any,
    /// `ip4.src == <cidr>` (or `.dst`, `ip6`).
    Cidr(IpNet),
    /// `ip4.src == $ovn.sg.<group>.associated.v4`: the addresses of that group's ports.
    Group(String),
}

/// The layer-4 part of an ACL's match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclL4 {
    /// No layer-4 match (`protocol: all`, deny-all).
    Any,
    /// `icmp4` / `icmp6`.
    Icmp,
    /// `<min> <= tcp.dst <= <max>`.
    Tcp(u16, u16),
    /// `<min> <= udp.dst <= <max>`.
    Udp(u16, u16),
}

/// One ACL of a port group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// Into or out of the port.
    pub direction: AclDirection,
    /// Higher wins.
    pub priority: u32,
    /// `Some(true)` for IPv4 only, `Some(false)` for IPv6 only, `None` for both (deny-all `ip`).
    pub ipv4: Option<bool>,
    /// The other side.
    pub remote: AclRemote,
    /// The protocol and destination ports.
    pub l4: AclL4,
    /// Allow or drop.
    pub action: AclAction,
}

/// A logical switch port as the northbound database holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Port {
    /// The port's name (`<pod>.<ns>[.<provider>]`, as its `IP` object).
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Whether port security is on (the port may only send from its own MAC and addresses).
    pub port_security: bool,
    /// The security groups the pod names for it (its `security_groups` external ID).
    pub security_groups: Vec<String>,
    /// The port groups it is in now (its groups' and, with any, [`DENY_ALL`]).
    pub port_groups: Vec<String>,
}

/// A packet to ask about: [`Northbound::allows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketQuery {
    /// Into the port (`true`) or out of it.
    pub ingress: bool,
    /// `"tcp"`, `"udp"` or `"icmp"`.
    pub protocol: &'static str,
    /// The destination port (tcp, udp).
    pub port: Option<u16>,
    /// The source of an ingress packet, the destination of an egress one.
    pub peer: IpAddr,
}

#[derive(Debug, Default)]
struct Group {
    acls: Vec<Acl>,
}

#[derive(Debug, Default)]
struct Db {
    ports: BTreeMap<String, Port>,
    /// Security-group name -> its port group's ACLs (present: synced).
    groups: BTreeMap<String, Group>,
    deny_all: BTreeSet<String>,
}

impl Db {
    fn members(&self, group: &str) -> impl Iterator<Item = &Port> {
        self.ports.values().filter(move |p| {
            self.groups.contains_key(group) && p.security_groups.iter().any(|g| g == group)
        })
    }

    /// `updateDenyAllSgPorts`: ports naming at least one existing group.
    fn sync_deny_all(&mut self) {
        self.deny_all = self
            .ports
            .values()
            .filter(|p| {
                p.security_groups
                    .iter()
                    .any(|g| self.groups.contains_key(g))
            })
            .map(|p| p.name.clone())
            .collect();
    }

    fn view(&self, port: &Port) -> Port {
        let mut groups: Vec<String> = port
            .security_groups
            .iter()
            .filter(|g| self.groups.contains_key(*g))
            .map(|g| port_group(g))
            .collect();
        if self.deny_all.contains(&port.name) {
            groups.push(DENY_ALL.to_string());
        }
        Port {
            port_groups: groups,
            ..port.clone()
        }
    }

    fn acls_of(&self, port: &Port) -> Vec<Acl> {
        let mut out: Vec<Acl> = port
            .security_groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flat_map(|g| g.acls.iter().cloned())
            .collect();
        if self.deny_all.contains(&port.name) {
            for direction in [AclDirection::ToLport, AclDirection::FromLport] {
                out.push(Acl {
                    direction,
                    priority: DROP_PRIORITY,
                    ipv4: None,
                    remote: AclRemote::Any,
                    l4: AclL4::Any,
                    action: AclAction::Drop,
                });
            }
        }
        out
    }

    fn matches(&self, acl: &Acl, packet: &PacketQuery) -> bool {
        let direction = if packet.ingress {
            AclDirection::ToLport
        } else {
            AclDirection::FromLport
        };
        if acl.direction != direction || acl.ipv4.is_some_and(|v4| v4 != packet.peer.is_ipv4()) {
            return false;
        }
        let remote = match &acl.remote {
            AclRemote::Any => true,
            AclRemote::Cidr(net) => net.contains(&packet.peer),
            AclRemote::Group(g) => self.members(g).any(|p| p.addresses.contains(&packet.peer)),
        };
        let in_range = |a: u16, b: u16| packet.port.is_some_and(|p| a <= p && p <= b);
        let l4 = match acl.l4 {
            AclL4::Any => true,
            AclL4::Icmp => packet.protocol == "icmp",
            AclL4::Tcp(a, b) => packet.protocol == "tcp" && in_range(a, b),
            AclL4::Udp(a, b) => packet.protocol == "udp" && in_range(a, b),
        };
        remote && l4
    }
}

/// The security-group state kube-ovn-controller would have written to OVN's northbound
/// database, for tests to query. Cheap to clone; every clone sees the same state.
///
/// ```
/// use kubecloud_testkit::KubeOvnController;
/// let ovn = KubeOvnController::default();
/// let northbound = ovn.northbound();
/// assert!(northbound.port("web.acme").is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Northbound {
    db: Arc<Mutex<Db>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Northbound {
    fn default() -> Self {
        Self {
            db: Arc::default(),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Northbound {
    fn lock(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver that is told of every change (subscribe before reading, then wait for
    /// `changed()` when what was read is not yet what is expected).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The port named `name`, with the port groups it is in.
    pub fn port(&self, name: &str) -> Option<Port> {
        let db = self.lock();
        db.ports.get(name).map(|p| db.view(p))
    }

    /// The port holding address `ip`, if any.
    pub fn port_with_address(&self, ip: IpAddr) -> Option<Port> {
        let db = self.lock();
        db.ports
            .values()
            .find(|p| p.addresses.contains(&ip))
            .map(|p| db.view(p))
    }

    /// Every ACL that applies to port `name` (through all the port groups it is in).
    pub fn acls(&self, name: &str) -> Vec<Acl> {
        let db = self.lock();
        db.ports
            .get(name)
            .map(|p| db.acls_of(p))
            .unwrap_or_default()
    }

    /// Whether port `name` lets `packet` through: the matching ACL of the highest priority
    /// decides (`drop` on a tie); none matching lets it through. `None` if there is no such
    /// port.
    pub fn allows(&self, name: &str, packet: &PacketQuery) -> Option<bool> {
        let db = self.lock();
        let port = db.ports.get(name)?;
        let acls = db.acls_of(port);
        let winner = acls
            .iter()
            .filter(|a| db.matches(a, packet))
            .max_by_key(|a| (a.priority, a.action == AclAction::Drop));
        Some(winner.is_none_or(|a| a.action == AclAction::AllowRelated))
    }

    /// Sets port `name` from its pod's annotations for `provider` (addresses from
    /// `ip_address`, groups, port security), as `handleUpdatePodSecurity` does.
    pub(crate) fn sync_port(&self, name: &str, annotations: &Value, provider: &str) {
        let get = |key: &str| {
            annotations[format!("{provider}.kubernetes.io/{key}")]
                .as_str()
                .map(str::to_string)
        };
        let addresses = get("ip_address")
            .unwrap_or_default()
            .split(',')
            .filter_map(|a| a.split('/').next()?.trim().parse().ok())
            .collect();
        let security_groups = get("security_groups")
            .unwrap_or_default()
            .replace(' ', "")
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        let port = Port {
            name: name.to_string(),
            addresses,
            port_security: get("port_security").as_deref() == Some("true"),
            security_groups,
            port_groups: Vec::new(),
        };
        let mut db = self.lock();
        if db.ports.get(name) == Some(&port) {
            return;
        }
        db.ports.insert(name.to_string(), port);
        db.sync_deny_all();
        drop(db);
        self.changed();
    }

    /// Removes port `name` (its `IP` object went).
    pub(crate) fn remove_port(&self, name: &str) {
        let mut db = self.lock();
        if db.ports.remove(name).is_some() {
            db.sync_deny_all();
            drop(db);
            self.changed();
        }
    }

    /// `handleAddOrUpdateSg` for the `SecurityGroup` object `sg`, or `handleDeleteSg` when it
    /// is gone (`None`).
    pub(crate) async fn sync_group(
        &self,
        api: &ControllerApi,
        name: &str,
        sg: Option<&Value>,
    ) -> Result<(), ControllerError> {
        let Some(sg) = sg else {
            if self.lock().groups.remove(name).is_some() {
                self.changed();
            }
            return Ok(());
        };
        let mut acls = Vec::new();
        for (rules, direction) in [
            ("ingressRules", AclDirection::ToLport),
            ("egressRules", AclDirection::FromLport),
        ] {
            for (i, rule) in sg["spec"][rules]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                match self.rule_acl(api, rule, direction).await {
                    Ok(acl) => acls.push(acl),
                    Err(why) => {
                        super::kubeovn::warn(
                            api,
                            "SecurityGroup",
                            None,
                            name,
                            &format!("{rules}[{i}]: {why}"),
                        )
                        .await;
                        return Ok(());
                    }
                }
            }
        }
        let same_group = sg["spec"]["allowSameGroupTraffic"] == true;
        if same_group {
            for direction in [AclDirection::ToLport, AclDirection::FromLport] {
                for ipv4 in [true, false] {
                    acls.push(Acl {
                        direction,
                        priority: ALLOW_SAME_GROUP_PRIORITY,
                        ipv4: Some(ipv4),
                        remote: AclRemote::Group(name.to_string()),
                        l4: AclL4::Any,
                        action: AclAction::AllowRelated,
                    });
                }
            }
        }
        {
            let mut db = self.lock();
            db.groups.insert(name.to_string(), Group { acls });
            db.sync_deny_all();
        }
        self.changed();
        let status = json!({
            "portGroup": port_group(name),
            "allowSameGroupTraffic": same_group,
            "ingressLastSyncSuccess": true,
            "egressLastSyncSuccess": true,
        });
        if sg["status"] != status {
            match api
                .merge_patch_status(API, "SecurityGroup", None, name, &json!({"status": status}))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `validateSgRule` and `newSgRuleACL` for one rule.
    async fn rule_acl(
        &self,
        api: &ControllerApi,
        rule: &Value,
        direction: AclDirection,
    ) -> Result<Acl, String> {
        let ipv4 = match rule["ipVersion"].as_str() {
            Some("ipv4") => true,
            Some("ipv6") => false,
            other => return Err(format!("invalid ipVersion {other:?}")),
        };
        let priority = rule["priority"].as_u64().unwrap_or(0);
        if !(1..=16384).contains(&priority) {
            return Err(format!("priority {priority} is outside 1..=16384"));
        }
        let remote = match rule["remoteType"].as_str() {
            Some("address") => {
                let text = rule["remoteAddress"].as_str().unwrap_or_default();
                let net: IpNet = text
                    .parse()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("invalid remoteAddress {text:?}"))?;
                if net.prefix_len() == 0 {
                    AclRemote::Any
                } else {
                    AclRemote::Cidr(net)
                }
            }
            Some("securityGroup") => {
                let group = rule["remoteSecurityGroup"].as_str().unwrap_or_default();
                if api
                    .get_opt(API, "SecurityGroup", None, group)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                {
                    return Err(format!("remote security group {group:?} does not exist"));
                }
                AclRemote::Group(group.to_string())
            }
            other => return Err(format!("invalid remoteType {other:?}")),
        };
        let range = || -> Result<(u16, u16), String> {
            let min = rule["portRangeMin"].as_u64().unwrap_or(1);
            let max = rule["portRangeMax"].as_u64().unwrap_or(65535);
            if !(1..=65535).contains(&min) || !(1..=65535).contains(&max) || min > max {
                return Err(format!("invalid port range {min}-{max}"));
            }
            Ok((min as u16, max as u16))
        };
        let l4 = match rule["protocol"].as_str() {
            Some("all") | None => AclL4::Any,
            Some("icmp") => AclL4::Icmp,
            Some("tcp") => {
                let (a, b) = range()?;
                AclL4::Tcp(a, b)
            }
            Some("udp") => {
                let (a, b) = range()?;
                AclL4::Udp(a, b)
            }
            Some(other) => return Err(format!("invalid protocol {other:?}")),
        };
        Ok(Acl {
            direction,
            priority: HIGHEST_PRIORITY - priority as u32,
            ipv4: Some(ipv4),
            remote,
            l4,
            action: if rule["policy"] == "allow" {
                AclAction::AllowRelated
            } else {
                AclAction::Drop
            },
        })
    }
}
