//! VMs booting from one catalog image on the whole stack, shared by `tests/catalog.rs` and
//! `examples/catalog_bench.rs` (included with `#[path]`): the image is imported once into the
//! catalog namespace and every VM's boot disk is a CDI clone of it.
#![allow(dead_code, reason = "each includer uses a part")]

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kubecloud::{BootDisk, ByteSize, CatalogImageSpec, Cloud, ImageSource, Result, VmSpec};

/// The image every VM boots from.
pub const IMAGE: &str = "fedora";
/// Its URL (the CDI double imports any host but `.invalid` ones).
pub const URL: &str = "https://images.example.com/fedora-40.qcow2";

/// What booting `vms` VMs from one image took.
#[derive(Debug)]
pub struct Figures {
    /// Imports the CDI double ran (downloads).
    pub imports: usize,
    /// Wall time from the image's apply to the last VM running.
    pub elapsed: Duration,
}

/// Puts the image in the catalog, waits until it is ready, then boots `vms` VMs of tenant
/// `tenant` from it, `concurrency` at a time, each waited for until it runs.
pub async fn boot_from_catalog(
    cloud: &Cloud,
    cdi: &kubecloud_testkit::CdiController,
    tenant: &str,
    vms: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<Figures> {
    let started = Instant::now();
    let spec = CatalogImageSpec::new(
        IMAGE,
        ImageSource::Http { url: URL.into() },
        ByteSize::gib(1),
    );
    cloud.catalog().apply(&spec).await?;
    cloud.catalog().wait_ready(IMAGE, timeout).await?;
    let handle = cloud.tenant(tenant)?;
    let results: Vec<Result<()>> = stream::iter(0..vms)
        .map(|i| {
            let handle = handle.clone();
            async move {
                let name = format!("vm-{i}");
                let vm = VmSpec {
                    name: name.clone(),
                    boot_disk: BootDisk::catalog(IMAGE),
                    ..VmSpec::default()
                };
                handle.vms().apply(&vm).await?;
                handle.vms().wait_running(&name, timeout).await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(Figures {
        imports: cdi.imports(),
        elapsed: started.elapsed(),
    })
}
