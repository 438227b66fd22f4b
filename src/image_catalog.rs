//! [`ImageCatalog`]: the golden images every tenant may boot from, managed by an operator (not
//! a tenant): `cloud.catalog()`.

use std::time::Duration;

use futures::stream::BoxStream;
use kubecloud_core::catalog::image_ready;
use kubecloud_core::{CatalogImage, CatalogImageSpec, Compute, Result};

use crate::cloud::Cloud;
use crate::tenant::{check_name, require};

/// The image catalog of a cloud (from [`Cloud::catalog`]). Every call first checks the compute
/// backend's `catalog` capability and the input, so nothing is sent for a refused call.
///
/// ```
/// use std::time::Duration;
/// use kubecloud::{BootDisk, ByteSize, CatalogImageSpec, Cloud, ImageSource, VmSpec};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud::Result<()> {
/// let cloud = Cloud::in_memory();
/// let url = "https://images.example.com/fedora.qcow2".to_string();
/// cloud.catalog().apply(&CatalogImageSpec::new("fedora", ImageSource::Http { url }, ByteSize::gib(2))).await?;
/// cloud.catalog().wait_ready("fedora", Duration::from_secs(10)).await?;
/// let acme = cloud.tenant("acme")?;
/// let vm = VmSpec { name: "web".into(), boot_disk: BootDisk::catalog("fedora"), ..VmSpec::default() };
/// acme.vms().apply(&vm).await?;
/// let err = acme.vms().apply(&VmSpec { name: "db".into(), boot_disk: BootDisk::catalog("nope"), ..VmSpec::default() }).await.unwrap_err();
/// assert_eq!(err.invalid_field(), Some("bootDisk.image"));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ImageCatalog<'a> {
    backend: &'a dyn Compute,
}

impl<'a> ImageCatalog<'a> {
    pub(crate) fn new(cloud: &'a Cloud) -> Self {
        Self {
            backend: &*cloud.compute,
        }
    }

    fn require(&self, operation: &str) -> Result<()> {
        require(
            self.backend.backend_name(),
            operation,
            "catalog",
            self.backend.capabilities().catalog,
        )
    }

    /// Creates or updates an image; its import starts at once.
    pub async fn apply(&self, spec: &CatalogImageSpec) -> Result<CatalogImage> {
        self.require("catalog.apply")?;
        spec.validate()?;
        self.backend.apply_catalog_image(spec).await
    }

    /// The image named `name`.
    pub async fn get(&self, name: &str) -> Result<CatalogImage> {
        self.require("catalog.get")?;
        check_name("name", name)?;
        self.backend.get_catalog_image(name).await
    }

    /// Every image, by name.
    pub async fn list(&self) -> Result<Vec<CatalogImage>> {
        self.require("catalog.list")?;
        self.backend.list_catalog_images().await
    }

    /// The image now and at every change, until it is deleted.
    pub async fn watch(&self, name: &str) -> Result<BoxStream<'static, Result<CatalogImage>>> {
        self.require("catalog.watch")?;
        check_name("name", name)?;
        self.backend.watch_catalog_image(name).await
    }

    /// Waits until the image is ready ([`kubecloud_core::Error::Failed`] if its import fails,
    /// `Timeout` after `timeout`).
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<CatalogImage> {
        let states = self.watch(name).await?;
        kubecloud_core::wait::until(states, image_ready(), timeout).await
    }

    /// Deletes the image and its imports; VMs cloned from it keep their disks.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.require("catalog.delete")?;
        check_name("name", name)?;
        self.backend.delete_catalog_image(name).await
    }
}
