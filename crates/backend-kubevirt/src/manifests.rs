//! The objects applying a VM creates, rendered instead of sent (GitOps output).

use kube::api::DynamicObject;
use kubecloud_core::{Error, Result, Tenant, VmAttachments, VmSpec};
use kubecloud_kube::render::{manifest, stamped};
use serde_json::Value;

use crate::{BACKEND, KubeVirt, translate};

impl KubeVirt {
    /// The objects [`kubecloud_core::Compute::apply_vm`] would send for `spec`, exactly as it
    /// sends them (the same translation, labels and applied-hash annotation), without sending
    /// anything: the `VirtualMachine` (an imported boot disk is its DataVolume template) and the
    /// cloud-init and SSH-key `Secret`s. The Secrets carry no owner reference here (the VM's UID
    /// is not known before it exists); the backend adds it on its next apply of the VM.
    /// Bad input is refused naming the field.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{Tenant, VmSpec};
    /// let compute = kubecloud_kubevirt::KubeVirt::builder(client).build();
    /// let spec = VmSpec { name: "web".into(), ..VmSpec::default() };
    /// let objects = compute.vm_manifests(&Tenant::new("acme")?, &spec, &Default::default())?;
    /// assert_eq!(objects[0]["kind"], "VirtualMachine");
    /// # Ok(()) }
    /// ```
    pub fn vm_manifests(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        attachments: &VmAttachments,
    ) -> Result<Vec<Value>> {
        spec.validate()?;
        attachments.check_for(spec)?;
        let vm: DynamicObject = serde_json::from_value(translate::virtual_machine(
            tenant,
            spec,
            attachments,
            &self.options,
        )?)
        .map_err(|e| Error::backend(BACKEND, "building the VirtualMachine", false, e))?;
        let mut out = vec![manifest(BACKEND, &stamped(&vm))?];
        for secret in translate::secrets(tenant, spec, None) {
            out.push(manifest(BACKEND, &stamped(&secret))?);
        }
        Ok(out)
    }
}

impl kubecloud_kube::plugin::ComputeManifests for KubeVirt {
    fn vm_manifests(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        attachments: &VmAttachments,
    ) -> Result<Vec<Value>> {
        KubeVirt::vm_manifests(self, tenant, spec, attachments)
    }
}
