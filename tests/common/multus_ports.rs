//! A conformance port probe over the simulated multi-network policy controller (the Multus
//! whole-stack tests, and `crates/backend-multus/tests/security_groups.rs`, which includes this
//! file): a VM interface's port is the VM's launcher pod's interface on the network the backend
//! attaches it to.
#![allow(dead_code, reason = "each includer uses a part")]

use futures::stream::{self, BoxStream};
use kubecloud_core::conformance::PortProbe;
use kubecloud_core::{
    Compute, Direction, Network, NetworkSelection, Packet, Protocol, Result, Tenant, async_trait,
};
use kubecloud_testkit::MultiPolicies;
use kubecloud_testkit::kubeovn_security::PacketQuery;

/// VM interfaces as the simulated multi-network policy controller sees them.
#[derive(Debug)]
pub struct PolicyPorts<'a> {
    view: MultiPolicies,
    compute: &'a dyn Compute,
    network: &'a dyn Network,
}

impl<'a> PolicyPorts<'a> {
    /// The probe of `view` for the VMs of `compute` on `network`.
    pub fn new(view: &MultiPolicies, compute: &'a dyn Compute, network: &'a dyn Network) -> Self {
        Self {
            view: view.clone(),
            compute,
            network,
        }
    }

    /// (pod, `ns/nad`) of the interface, while the VM and such a pod exist.
    async fn port(&self, t: &Tenant, vm: &str, iface: &str) -> Result<Option<(String, String)>> {
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
        let NetworkSelection::Multus { namespace, name } = &a.network else {
            return Ok(None);
        };
        let network = format!("{namespace}/{name}");
        Ok(self
            .view
            .pods_labelled(t.as_str(), "vm.kubevirt.io/name", vm)
            .into_iter()
            .find(|pod| self.view.interface(t.as_str(), pod, &network).is_some())
            .map(|pod| (pod, network)))
    }
}

#[async_trait]
impl PortProbe for PolicyPorts<'_> {
    fn changes(&self) -> BoxStream<'static, ()> {
        Box::pin(stream::unfold(self.view.subscribe(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        }))
    }

    async fn groups(&self, t: &Tenant, vm: &str, iface: &str) -> Result<Option<Vec<String>>> {
        let prefix = format!("{t}/sg.");
        Ok(self.port(t, vm, iface).await?.and_then(|(pod, network)| {
            let i = self.view.interface(t.as_str(), &pod, &network)?;
            let mut groups: Vec<String> = i
                .policies
                .iter()
                .filter_map(|p| p.strip_prefix(&prefix).map(String::from))
                .collect();
            groups.sort();
            Some(groups)
        }))
    }

    async fn allows(&self, t: &Tenant, vm: &str, iface: &str, p: &Packet) -> Result<Option<bool>> {
        let query = PacketQuery {
            ingress: p.direction == Direction::Ingress,
            protocol: match p.protocol {
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
                Protocol::Icmp => "icmp",
                _ => "tcp",
            },
            port: p.port,
            peer: p.peer,
        };
        Ok(self
            .port(t, vm, iface)
            .await?
            .and_then(|(pod, network)| self.view.allows(t.as_str(), &pod, &network, &query)))
    }
}
