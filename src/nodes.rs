//! [`Nodes`]: node maintenance, an operator's calls (not scoped to a tenant): `cloud.nodes()`.
//!
//! [`Nodes::evacuate`] reports first every VM on the node that cannot live-migrate and why,
//! before anything changes; then cordons the node, live-migrates every movable VM away (at most
//! [`EvacuateOptions::max_parallel`] at once, each awaited on a watch of the VM), optionally stops
//! the others, and leaves the node cordoned until [`Nodes::return_to_service`].

use futures::stream::{self, StreamExt};
use kubecloud_core::wait;
use kubecloud_core::{
    Compute, Error, EvacuateOptions, EvacuationEvent, EvacuationReport, MigrationTarget, NodeInfo,
    PowerAction, Result, VmPhase, VmRef,
};

use crate::cloud::Cloud;

/// The nodes of a cloud (from [`Cloud::nodes`]). Bad input is refused naming the field before
/// anything is sent; a backend without node maintenance refuses with
/// [`Error::Unsupported`].
///
/// ```
/// use kubecloud::{Cloud, EvacuateOptions, VmSpec};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud::Result<()> {
/// let cloud = Cloud::in_memory();
/// let nodes = cloud.nodes().list().await?;
/// let node = &nodes[0].name;
/// let report = cloud.nodes().evacuate(node, &EvacuateOptions::default(), |event| {
///     println!("{event:?}");
/// }).await?;
/// assert!(report.is_empty_node());
/// assert!(!cloud.nodes().list().await?[0].schedulable, "left cordoned");
/// cloud.nodes().return_to_service(node).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Nodes<'a> {
    backend: &'a dyn Compute,
}

/// Refuses a node name that is not a DNS subdomain (what Kubernetes allows for Node names).
fn check_node(field: &str, node: &str) -> Result<()> {
    let ok = !node.is_empty()
        && node.len() <= 253
        && node.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{node:?} is not a node name (a DNS subdomain)"),
        ))
    }
}

impl<'a> Nodes<'a> {
    pub(crate) fn new(cloud: &'a Cloud) -> Self {
        Self {
            backend: cloud.compute(),
        }
    }

    /// Every node, by name, with whether it takes new VMs.
    pub async fn list(&self) -> Result<Vec<NodeInfo>> {
        self.backend.list_nodes().await
    }

    /// The VMs of every tenant running on `node`.
    pub async fn vms(&self, node: &str) -> Result<Vec<VmRef>> {
        check_node("node", node)?;
        self.backend.vms_on_node(node).await
    }

    /// Every VM on `node` that cannot live-migrate, with its reasons; changes nothing.
    pub async fn blockers(
        &self,
        node: &str,
    ) -> Result<Vec<(VmRef, Vec<kubecloud_core::MigrationBlocker>)>> {
        check_node("node", node)?;
        let mut out = Vec::new();
        for vm in self.backend.vms_on_node(node).await? {
            let blockers = self.backend.migration_blockers(&vm.tenant, &vm.vm).await?;
            if !blockers.is_empty() {
                out.push((vm, blockers));
            }
        }
        Ok(out)
    }

    /// Evacuates `node`: reports every blocked VM ([`EvacuationEvent::Blocked`]) before anything
    /// changes, cordons the node, live-migrates every movable VM to other nodes (IPs and MACs
    /// kept; at most `options.max_parallel` at once, each awaited on a watch), stops the blocked
    /// ones if `options.stop_unmovable`, and returns what happened. `on_event` sees each step as
    /// it happens. The node stays cordoned ([`Nodes::return_to_service`] uncordons it). A VM
    /// whose migration fails is reported ([`EvacuationReport::failed`]) and the others go on.
    pub async fn evacuate(
        &self,
        node: &str,
        options: &EvacuateOptions,
        on_event: impl Fn(&EvacuationEvent) + Send + Sync,
    ) -> Result<EvacuationReport> {
        check_node("node", node)?;
        if options.max_parallel == 0 {
            return Err(Error::invalid("maxParallel", "must be at least 1"));
        }
        let backend = self.backend;
        let vms = backend.vms_on_node(node).await?;
        let mut report = EvacuationReport {
            node: node.to_string(),
            ..EvacuationReport::default()
        };
        // 1. What cannot move, before anything changes.
        let mut movable = Vec::new();
        for vm in vms {
            let blockers = backend.migration_blockers(&vm.tenant, &vm.vm).await?;
            if blockers.is_empty() {
                movable.push(vm);
            } else {
                on_event(&EvacuationEvent::Blocked {
                    vm: vm.clone(),
                    blockers: blockers.clone(),
                });
                report.blocked.push((vm, blockers));
            }
        }
        // 2. Cordon.
        backend.set_node_schedulable(node, false).await?;
        tracing::info!(
            node,
            movable = movable.len(),
            blocked = report.blocked.len(),
            "evacuating"
        );
        on_event(&EvacuationEvent::Cordoned {
            node: node.to_string(),
        });
        // 3. Migrate, bounded.
        let on_event = &on_event;
        let outcomes: Vec<(VmRef, Result<String>)> = stream::iter(movable)
            .map(|vm| async move {
                let outcome: Result<String> = async {
                    backend
                        .migrate(&vm.tenant, &vm.vm, &MigrationTarget::AnyNode)
                        .await?;
                    on_event(&EvacuationEvent::Migrating { vm: vm.clone() });
                    let moved = wait::named(
                        &vm.vm,
                        backend.watch_vm(&vm.tenant, &vm.vm),
                        wait::vm_running_elsewhere(node.to_string()),
                        options.timeout_per_vm,
                    )
                    .await?;
                    Ok(moved.status.node.unwrap_or_default())
                }
                .await;
                match &outcome {
                    Ok(target) => on_event(&EvacuationEvent::Migrated {
                        vm: vm.clone(),
                        node: target.clone(),
                    }),
                    Err(e) => on_event(&EvacuationEvent::Failed {
                        vm: vm.clone(),
                        reason: e.to_string(),
                    }),
                }
                (vm, outcome)
            })
            .buffer_unordered(options.max_parallel)
            .collect()
            .await;
        for (vm, outcome) in outcomes {
            match outcome {
                Ok(target) => report.migrated.push((vm, target)),
                Err(e) => report.failed.push((vm, e.to_string())),
            }
        }
        report.migrated.sort();
        report.failed.sort();
        // 4. Stop what cannot move, if asked.
        if options.stop_unmovable {
            for (vm, _) in &report.blocked {
                let stopped: Result<_> = async {
                    backend.power(&vm.tenant, &vm.vm, PowerAction::Stop).await?;
                    wait::named(
                        &vm.vm,
                        backend.watch_vm(&vm.tenant, &vm.vm),
                        wait::vm_phase(VmPhase::Stopped),
                        options.timeout_per_vm,
                    )
                    .await
                }
                .await;
                match stopped {
                    Ok(_) => {
                        on_event(&EvacuationEvent::Stopped { vm: vm.clone() });
                        report.stopped.push(vm.clone());
                    }
                    Err(e) => {
                        on_event(&EvacuationEvent::Failed {
                            vm: vm.clone(),
                            reason: e.to_string(),
                        });
                        report.failed.push((vm.clone(), e.to_string()));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Returns `node` to service: uncordons it, so VMs may be placed and migrate there again.
    pub async fn return_to_service(&self, node: &str) -> Result<NodeInfo> {
        check_node("node", node)?;
        self.backend.set_node_schedulable(node, true).await
    }

    /// Cordons `node` without moving anything.
    pub async fn cordon(&self, node: &str) -> Result<NodeInfo> {
        check_node("node", node)?;
        self.backend.set_node_schedulable(node, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_dns_subdomains() {
        assert!(check_node("node", "node-2").is_ok());
        assert!(check_node("node", "worker-1.example.com").is_ok());
        for bad in ["", "Node-2", "-a", "a..b", "a_b"] {
            let err = check_node("node", bad).unwrap_err();
            assert_eq!(err.invalid_field(), Some("node"), "{bad:?}");
        }
    }
}
