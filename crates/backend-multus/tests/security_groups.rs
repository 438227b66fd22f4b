//! Security groups in force on VM interfaces: the shared conformance check
//! `security_groups_in_force_on_ports` with KubeVirt compute and the Multus network, asked of
//! the simulated multi-network policy controller ("would this packet be let through").

use std::time::Duration;

use futures::stream::{self, BoxStream};
use kubecloud_core::conformance::{self, Outcome, Params, PortProbe, Target};
use kubecloud_core::{
    Compute, Direction, Network, NetworkSelection, Packet, Protocol, Result, Tenant, async_trait,
};
use kubecloud_multus::Multus;
use kubecloud_testkit::kubeovn_security::PacketQuery;
use kubecloud_testkit::{
    KubeVirtController, MultiNetworkPolicyController, MultiPolicies, TestServer,
    WhereaboutsController,
};

/// VM interfaces as the simulated multi-network policy controller sees them: the VM's running
/// launcher pod (label `vm.kubevirt.io/name`) on the network the backend attaches the
/// interface to.
#[derive(Debug)]
struct PolicyPorts<'a> {
    view: MultiPolicies,
    compute: &'a dyn Compute,
    network: &'a dyn Network,
}

impl PolicyPorts<'_> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_are_in_force_on_vm_interfaces() {
    let policies = MultiNetworkPolicyController::default();
    let view = policies.policies();
    let server = TestServer::builder()
        .controller(KubeVirtController::new().with_multus())
        .controller(WhereaboutsController::default())
        .controller(policies)
        .start()
        .await
        .expect("server");
    let compute = kubecloud_kubevirt::KubeVirt::builder(server.client()).build();
    let network = Multus::builder(server.client()).build();
    let probe = PolicyPorts {
        view,
        compute: &compute,
        network: &network,
    };
    let target = Target {
        compute: Some(&compute),
        network: Some(&network),
        ports: Some(&probe),
        ..Target::default()
    };
    let params = Params {
        timeout: Duration::from_secs(20),
        ..Params::default()
    };
    let tenant = Tenant::new("sg-multus").unwrap();
    let outcome =
        conformance::ports::security_groups_in_force_on_ports(&target, &tenant, &params).await;
    assert_eq!(outcome, Outcome::Passed);
}
