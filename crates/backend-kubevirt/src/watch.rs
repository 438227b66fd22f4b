//! `watch_vm`: one stream of domain states from three watches (the VirtualMachine, its
//! VirtualMachineInstance and its import DataVolume). No polling: every state comes from a watch
//! event; dropped watches resume (kube-runtime's watcher, through `kubecloud-kube`).

use std::collections::BTreeMap;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
use kubecloud_core::{BootDisk, Result, Tenant, Vm};
use kubecloud_kube::{Writer, is_owned, tenant_namespace};
use serde_json::Value;

use crate::apis;
use crate::driver::{restore_secrets, stored_spec, to_value};
use crate::status::{Observed, vm_status};

enum Source {
    Vm,
    Vmi,
    Import,
}

#[derive(Default)]
struct Merged {
    vm: Option<Value>,
    vm_object: Option<DynamicObject>,
    vmi: Option<Value>,
    import: Option<Value>,
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
        state: Result<Option<DynamicObject>>,
        tenant: &Tenant,
        name: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Step {
        let state = match state {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(error = %err, vm = name, "watch error; the watcher resumes");
                return Step::Skip;
            }
        };
        match source {
            Source::Vm => {
                self.seen[0] = true;
                let state = state.filter(|o| is_owned(&o.metadata, tenant));
                if state.is_none() {
                    // Gone (or never ours): the stream ends.
                    return Step::End;
                }
                self.vm = state.as_ref().map(to_value);
                self.vm_object = state;
            }
            Source::Vmi => {
                self.seen[1] = true;
                self.vmi = state.as_ref().map(to_value);
            }
            Source::Import => {
                self.seen[2] = true;
                self.import = state
                    .filter(|o| is_owned(&o.metadata, tenant))
                    .as_ref()
                    .map(to_value);
            }
        }
        if !self.seen.iter().all(|s| *s) {
            return Step::Skip;
        }
        let Some(object) = &self.vm_object else {
            return Step::Skip;
        };
        let Ok(mut spec) = stored_spec(object, name) else {
            return Step::Skip;
        };
        restore_secrets(&mut spec, secrets);
        let import = match spec.boot_disk {
            BootDisk::Import { .. } => self.import.as_ref(),
            _ => None,
        };
        let status = vm_status(
            &spec,
            &Observed {
                vm: self.vm.as_ref(),
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
        .map(|s| (Source::Vm, s));
    let vmi = writer
        .states(&apis::vmis(&client, &ns), &name)
        .map(|s| (Source::Vmi, s));
    let import = writer
        .states(
            &apis::data_volumes(&client, &ns),
            &BootDisk::import_volume_name(&name),
        )
        .map(|s| (Source::Import, s));
    let merged = stream::select_all([vm.boxed(), vmi.boxed(), import.boxed()]);
    stream::unfold(
        (merged, Merged::default(), tenant, name, secrets),
        |(mut merged, mut state, tenant, name, secrets)| async move {
            loop {
                let (source, event) = merged.next().await?;
                match state.absorb(source, event, &tenant, &name, &secrets) {
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
