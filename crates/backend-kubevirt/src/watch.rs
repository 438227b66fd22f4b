//! `watch_vm`: one stream of domain states from three watches (the VirtualMachine, its
//! VirtualMachineInstance and its import DataVolume). No polling: every state comes from a watch
//! event; dropped watches resume (kube-runtime's watcher, through `kubecloud-kube`).

use std::collections::BTreeMap;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kubecloud_core::{BootDisk, Result, Tenant, Vm};
use kubecloud_kube::{Writer, is_owned, tenant_namespace};
use kubecloud_models::cdi::DataVolume;
use kubecloud_models::kubevirt::{VirtualMachine, VirtualMachineInstance};

use crate::apis;
use crate::driver::{restore_secrets, stored_spec};
use crate::status::{Observed, vm_status};

/// One watch's new state of the object it follows (`None`: absent); boxed, the models are
/// large.
enum Source {
    Vm(Box<Result<Option<VirtualMachine>>>),
    Vmi(Box<Result<Option<VirtualMachineInstance>>>),
    Import(Box<Result<Option<DataVolume>>>),
}

#[derive(Default)]
struct Merged {
    vm: Option<VirtualMachine>,
    vmi: Option<VirtualMachineInstance>,
    import: Option<DataVolume>,
    seen: [bool; 3],
    last: Option<Vm>,
}

enum Step {
    Emit(Box<Vm>),
    Skip,
    End,
}

impl Merged {
    fn absorb(
        &mut self,
        source: Source,
        tenant: &Tenant,
        name: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Step {
        fn state<T>(state: Result<Option<T>>, name: &str) -> Option<Option<T>> {
            match state {
                Ok(s) => Some(s),
                Err(err) => {
                    tracing::debug!(error = %err, vm = name, "watch error; the watcher resumes");
                    None
                }
            }
        }
        match source {
            Source::Vm(s) => {
                let Some(s) = state(*s, name) else {
                    return Step::Skip;
                };
                self.seen[0] = true;
                let s = s.filter(|o| is_owned(&o.metadata, tenant));
                if s.is_none() {
                    // Gone (or never ours): the stream ends.
                    return Step::End;
                }
                self.vm = s;
            }
            Source::Vmi(s) => {
                let Some(s) = state(*s, name) else {
                    return Step::Skip;
                };
                self.seen[1] = true;
                self.vmi = s;
            }
            Source::Import(s) => {
                let Some(s) = state(*s, name) else {
                    return Step::Skip;
                };
                self.seen[2] = true;
                self.import = s.filter(|o| is_owned(&o.metadata, tenant));
            }
        }
        if !self.seen.iter().all(|s| *s) {
            return Step::Skip;
        }
        let Some(object) = &self.vm else {
            return Step::Skip;
        };
        let Ok(mut spec) = stored_spec(&object.metadata, name) else {
            return Step::Skip;
        };
        restore_secrets(&mut spec, secrets);
        let import = match spec.boot_disk {
            BootDisk::Import { .. } | BootDisk::Catalog { .. } => self.import.as_ref(),
            _ => None,
        };
        let status = vm_status(
            &spec,
            &Observed {
                vm: Some(object),
                vmi: self.vmi.as_ref(),
                import,
            },
        );
        let vm = Vm { spec, status };
        if self.last.as_ref() == Some(&vm) {
            return Step::Skip;
        }
        self.last = Some(vm.clone());
        Step::Emit(Box::new(vm))
    }
}

/// The states of VM `name` of `tenant`: the current one first, then one per change, until the VM
/// is deleted. `secrets` restores the cloud-init material (read when the watch opened).
pub fn vm_states(
    client: kube::Client,
    writer: &Writer,
    tenant: Tenant,
    name: String,
    secrets: BTreeMap<String, Secret>,
) -> BoxStream<'static, Result<Vm>> {
    let ns = tenant_namespace(&tenant);
    // Shared watches (one per kind and namespace for all VMs being watched), which also see
    // this backend's own writes at once.
    let vm = writer
        .states(&apis::vms(&client, &ns), &name)
        .map(|s| Source::Vm(Box::new(s)));
    let vmi = writer
        .states(&apis::vmis(&client, &ns), &name)
        .map(|s| Source::Vmi(Box::new(s)));
    let import = writer
        .states(
            &apis::data_volumes(&client, &ns),
            &BootDisk::import_volume_name(&name),
        )
        .map(|s| Source::Import(Box::new(s)));
    let merged = stream::select_all([vm.boxed(), vmi.boxed(), import.boxed()]);
    stream::unfold(
        (merged, Merged::default(), tenant, name, secrets),
        |(mut merged, mut state, tenant, name, secrets)| async move {
            loop {
                let source = merged.next().await?;
                match state.absorb(source, &tenant, &name, &secrets) {
                    Step::Emit(vm) => {
                        return Some((Ok(*vm), (merged, state, tenant, name, secrets)));
                    }
                    Step::Skip => continue,
                    Step::End => return None,
                }
            }
        },
    )
    .boxed()
}
