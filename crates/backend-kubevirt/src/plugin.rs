//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it is
//! and the RBAC it needs, read from its driver and from `kubecloud-kube`: KubeVirt + CDI.

use kubecloud_core::Result;
use kubecloud_kube::connect::{
    Built, ConnectOptions, Connector, Installed, System, VOLUME_SNAPSHOTS,
};
use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

const INSTANCE_TYPES: &str =
    "listed only when a tenant plan names an instance type; the suite's VMs name none";
const CONSOLE: &str =
    "the suite opens no console (bytes, not state); tests/rbac.rs opens both on the whole stack";
const SECRETS: &str = "cloud-init and SSH keys are Secrets; the suite's VMs have no cloud-init";

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::Compute,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachines"],
        verbs: WRITE,
    },
    // The live annotations of a VM's interfaces (security groups, port security) are
    // merge-patched onto its running instance and launcher pods.
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachineinstances"],
        verbs: &["get", "list", "watch", "patch"],
    },
    Need {
        group: "",
        resources: &["pods"],
        verbs: &["list", "patch"],
    },
    // Migrations are applied; a VM's migrations go with it (delete collection by label).
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachineinstancemigrations"],
        verbs: &["create", "patch", "deletecollection"],
    },
    // Start, stop and restart go through virt-api's subresources, as virtctl does.
    Need {
        group: "subresources.kubevirt.io",
        resources: &[
            "virtualmachines/start",
            "virtualmachines/stop",
            "virtualmachines/restart",
        ],
        verbs: &["update"],
    },
    // The serial console and VNC display are websocket GETs on virt-api's subresources, as
    // `virtctl console|vnc` sends them.
    Need {
        group: "subresources.kubevirt.io",
        resources: &[
            "virtualmachineinstances/console",
            "virtualmachineinstances/vnc",
        ],
        verbs: &["get"],
    },
    // Import DataVolumes come from the VM's dataVolumeTemplates (KubeVirt creates them); the
    // backend reads and watches them for progress and deletes them with the VM.
    Need {
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: &["get", "list", "watch", "delete"],
    },
    // The image catalog (in its own namespace): a registry image is a DataImportCron (CDI
    // makes its DataSource), an http image an import DataVolume and a DataSource, all applied,
    // read, watched and deleted by the backend.
    Need {
        group: "cdi.kubevirt.io",
        resources: &["dataimportcrons", "datasources"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
    },
    Need {
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: &["create", "patch"],
    },
    Need {
        group: "snapshot.kubevirt.io",
        resources: &["virtualmachinesnapshots"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    Need {
        group: "snapshot.kubevirt.io",
        resources: &["virtualmachinerestores"],
        verbs: &["list", "watch", "create", "patch", "delete"],
    },
    // Cloud-init and SSH keys go into Secrets in the tenant's namespace, never inline; a VM's
    // Secrets are found by label when it goes.
    Need {
        group: "",
        resources: &["secrets"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    // The claims a VM boots from or mounts (ownership; RWX for live migration).
    Need {
        group: "",
        resources: &["persistentvolumeclaims"],
        verbs: &["get"],
    },
    // Deleting a VM waits (through one shared watch of the kind) until its import claim's
    // PersistentVolume is gone (a list, then a watch: no GET).
    Need {
        group: "",
        resources: &["persistentvolumes"],
        verbs: &["list", "watch"],
    },
    // Plans check that the instance types VMs name exist (cluster-wide or namespaced kind).
    Need {
        group: "instancetype.kubevirt.io",
        resources: &[
            "virtualmachineclusterinstancetypes",
            "virtualmachineinstancetypes",
        ],
        verbs: &["list"],
    },
    // Migration to a named node and "fewer than two nodes" blockers.
    Need {
        group: "",
        resources: &["nodes"],
        verbs: &["get", "list"],
    },
    // What a connected guest agent reports beyond the instance's status (virt-api's
    // subresource, as `virtctl guestosinfo` reads it).
    Need {
        group: "subresources.kubevirt.io",
        resources: &["virtualmachineinstances/guestosinfo"],
        verbs: &["get"],
    },
];

/// What node maintenance (an operator's evacuation of a node, `Cloud::nodes`) sends: kept apart
/// from the tenants' rules, for its own ClusterRole. Cordoning patches Nodes; the VMs on a node
/// are found among the instances of every namespace; each is then checked, migrated and watched
/// as a tenant's migration is, and a blocked one may be stopped.
pub const NODE_MAINTENANCE: &[Need] = &[
    Need {
        group: "",
        resources: &["nodes"],
        verbs: &["get", "list", "patch"],
    },
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachineinstances"],
        verbs: &["get", "list", "watch"],
    },
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachines"],
        verbs: &["get", "list", "watch"],
    },
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachineinstancemigrations"],
        verbs: &["create", "patch"],
    },
    Need {
        group: "subresources.kubevirt.io",
        resources: &["virtualmachines/stop"],
        verbs: &["update"],
    },
    Need {
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: &["get", "list", "watch"],
    },
    Need {
        group: "",
        resources: &["persistentvolumeclaims"],
        verbs: &["get"],
    },
];

const NOT_EXERCISED: &[Unexercised] = &[
    Unexercised {
        group: "subresources.kubevirt.io",
        resource: "virtualmachineinstances/console",
        verb: "get",
        why: CONSOLE,
    },
    Unexercised {
        group: "subresources.kubevirt.io",
        resource: "virtualmachineinstances/vnc",
        verb: "get",
        why: CONSOLE,
    },
    Unexercised {
        group: "subresources.kubevirt.io",
        resource: "virtualmachineinstances/guestosinfo",
        verb: "get",
        why: "read only while a guest agent is connected; the suite's VMs run none \
              (tests/rbac.rs checks it on a VM with an agent)",
    },
    Unexercised {
        group: "instancetype.kubevirt.io",
        resource: "virtualmachineclusterinstancetypes",
        verb: "list",
        why: INSTANCE_TYPES,
    },
    Unexercised {
        group: "instancetype.kubevirt.io",
        resource: "virtualmachineinstancetypes",
        verb: "list",
        why: INSTANCE_TYPES,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "get",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "create",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "patch",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "delete",
        why: SECRETS,
    },
];

/// KubeVirt (`kubevirt.io/v1`): compute.
pub const KUBEVIRT: System = System {
    name: "KubeVirt",
    group: "kubevirt.io",
    version: "v1",
};

/// KubeVirt's snapshot API (`snapshot.kubevirt.io/v1beta1`): whole-VM snapshots.
pub const KUBEVIRT_SNAPSHOTS: System = System {
    name: "KubeVirt snapshots",
    group: "snapshot.kubevirt.io",
    version: "v1beta1",
};

/// Builds the KubeVirt backend when connecting: KubeVirt must be served; imports need CDI and
/// VM snapshots KubeVirt's snapshot API and the volume snapshot CRDs.
pub const CONNECTOR: KubeVirtConnector = KubeVirtConnector;

/// The [`Connector`] of the KubeVirt backend.
#[derive(Clone, Copy, Debug)]
pub struct KubeVirtConnector;

#[kubecloud_core::async_trait]
impl Connector for KubeVirtConnector {
    fn name(&self) -> &'static str {
        crate::BACKEND
    }

    fn part(&self) -> Part {
        Part::Compute
    }

    async fn connect(
        &self,
        client: &kube::Client,
        installed: &Installed,
        _: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        if let Some(reason) = installed.missing(&KUBEVIRT) {
            return Ok(Err(reason));
        }
        let backend = crate::KubeVirt::builder(client.clone())
            .http_import(installed.has(&kubecloud_kube::cdi::SYSTEM))
            .catalog(installed.has(&kubecloud_kube::cdi::SYSTEM))
            .vm_snapshots(installed.has(&KUBEVIRT_SNAPSHOTS) && installed.has(&VOLUME_SNAPSHOTS))
            .build();
        Ok(Ok(Built::Compute(std::sync::Arc::new(backend))))
    }
}
