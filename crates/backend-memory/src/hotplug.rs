//! What a running VM of the in-memory cloud has: the spec it booted with plus what was applied
//! live since (volumes attached and detached, interfaces plugged, CPU and memory grown within
//! its limits), the same rules as [`kubecloud_core::hotplug`] gives every backend.

use kubecloud_core::hotplug::{LiveLimits, live_changes};
use kubecloud_core::{ComputeCapabilities, VmResources, VmSpec};

/// The running instance of a VM.
#[derive(Clone, Debug)]
pub(crate) struct LiveVm {
    /// The spec the instance has now.
    pub(crate) spec: VmSpec,
    /// How far it can grow without a restart (from the spec it booted with).
    limits: Option<LiveLimits>,
}

impl LiveVm {
    /// An instance booting with `spec`.
    pub(crate) fn boot(spec: &VmSpec) -> Self {
        Self {
            spec: spec.clone(),
            limits: LiveLimits::of(&spec.resources),
        }
    }

    /// Takes what of `wanted` can be applied live.
    pub(crate) fn apply(&mut self, wanted: &VmSpec, caps: &ComputeCapabilities) {
        let changes = live_changes(&self.spec, wanted, caps, self.limits.as_ref());
        if !changes.any_live() {
            return;
        }
        let waits = |field: &str| {
            changes
                .restart_required
                .iter()
                .any(|f| f.starts_with(field))
        };
        if !waits("dataVolumes") {
            self.spec.data_volumes = wanted.data_volumes.clone();
        }
        if !waits("interfaces") {
            self.spec.interfaces = wanted.interfaces.clone();
        }
        if changes.resize
            && let (
                VmResources::Custom {
                    cpu_cores: c0,
                    memory: m0,
                },
                VmResources::Custom {
                    cpu_cores: c1,
                    memory: m1,
                },
            ) = (&self.spec.resources, &wanted.resources)
        {
            self.spec.resources = VmResources::Custom {
                cpu_cores: if waits("resources.cpuCores") {
                    *c0
                } else {
                    *c1
                },
                memory: if waits("resources.memory") { *m0 } else { *m1 },
            };
        }
        tracing::debug!(vm = %wanted.name, ?changes, "applied live");
    }

    /// The fields of `wanted` the instance gets only on restart.
    pub(crate) fn restart_required(&self, wanted: &VmSpec) -> Vec<String> {
        live_changes(
            &self.spec,
            wanted,
            &crate::compute::COMPUTE_CAPABILITIES,
            self.limits.as_ref(),
        )
        .restart_required
    }
}
