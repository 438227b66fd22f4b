//! A conformance port probe over the simulated Kube-OVN (shared by the whole-stack tests).
#![allow(dead_code, reason = "each includer uses a part")]

use futures::stream::{self, BoxStream};
use kubecloud::Cloud;
use kubecloud_core::conformance::PortProbe;
use kubecloud_core::{
    Compute, Direction, Network, NetworkSelection, Packet, Protocol, Result, Tenant, async_trait,
};
use kubecloud_testkit::kubeovn_security::{Northbound, PacketQuery, Port};

/// VM ports as the simulated Kube-OVN holds them. A port is found by the name Kube-OVN gives it
/// (`<vm>.<ns>` on the pod's default network, `<vm>.<ns>.<nad>.<ns>.ovn` on an attachment,
/// the provider Kube-OVN derives from the attachment's reference), from the network the
/// backend attaches the interface to.
#[derive(Debug)]
pub struct OvnPorts<'a> {
    ovn: Northbound,
    compute: &'a dyn Compute,
    network: &'a dyn Network,
}

impl<'a> OvnPorts<'a> {
    /// The probe of `ovn` for the VMs of `cloud`.
    pub fn new(ovn: &Northbound, cloud: &'a Cloud) -> Self {
        Self {
            ovn: ovn.clone(),
            compute: cloud.compute(),
            network: cloud.network(),
        }
    }

    async fn port(&self, t: &Tenant, vm: &str, iface: &str) -> Result<Option<Port>> {
        let spec = match self.compute.get_vm(t, vm).await {
            Ok(vm) => vm.spec,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let attached = self
            .network
            .attach_interfaces(t, vm, &spec.interfaces)
            .await?;
        let Some(a) = attached.iter().find(|a| a.interface == iface) else {
            return Ok(None);
        };
        let ns = t.as_str();
        let name = match &a.network {
            NetworkSelection::PodNetwork => format!("{vm}.{ns}"),
            NetworkSelection::Multus { namespace, name } => {
                format!("{vm}.{ns}.{name}.{namespace}.ovn")
            }
        };
        Ok(self.ovn.port(&name))
    }
}

#[async_trait]
impl PortProbe for OvnPorts<'_> {
    fn changes(&self) -> BoxStream<'static, ()> {
        Box::pin(stream::unfold(self.ovn.subscribe(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        }))
    }
    async fn groups(&self, t: &Tenant, vm: &str, iface: &str) -> Result<Option<Vec<String>>> {
        let prefix = format!("{t}-");
        Ok(self.port(t, vm, iface).await?.map(|p| {
            let mut groups: Vec<String> = p
                .security_groups
                .iter()
                .map(|g| g.strip_prefix(&prefix).unwrap_or(g).to_string())
                .collect();
            groups.sort();
            groups
        }))
    }
    async fn allows(&self, t: &Tenant, vm: &str, iface: &str, p: &Packet) -> Result<Option<bool>> {
        let query = PacketQuery {
            ingress: p.direction == Direction::Ingress,
            protocol: match p.protocol {
                Protocol::Udp => "udp",
                Protocol::Icmp => "icmp",
                _ => "tcp",
            },
            port: p.port,
            peer: p.peer,
        };
        Ok(self
            .port(t, vm, iface)
            .await?
            .and_then(|port| self.ovn.allows(&port.name, &query)))
    }
}
