//! Image catalog checks: images imported once into the shared catalog, VMs booting from clones of
//! them, and bad references refused before anything is sent.

use super::compute::{apply_vm, delete_vm_gone};
use super::{
    Expect, Outcome, Params, Target, assert_invalid, assert_not_found, names, require,
    require_that, wait_fails_fast, wait_for, wait_gone,
};
use crate::catalog::{CatalogImage, CatalogImageSpec, ImageSource, image_ready};
use crate::compute::{BootDisk, Compute, VmSpec};
use crate::error::ResourceKind;
use crate::name::Tenant;
use crate::size::ByteSize;
use crate::wait;

const NO_COMPUTE: &str = "the target has no compute backend";

/// Applies catalog image `spec` and waits until it is ready.
pub(crate) async fn ready_image(
    compute: &dyn Compute,
    spec: &CatalogImageSpec,
    params: &Params,
) -> CatalogImage {
    compute
        .apply_catalog_image(spec)
        .await
        .or_fail(format_args!("apply catalog image {:?}", spec.name));
    wait_for(
        compute.watch_catalog_image(&spec.name).await,
        image_ready(),
        params,
        format_args!("catalog image {:?} ready", spec.name),
    )
    .await
}

/// Deletes catalog image `name` and waits until it is gone.
pub(crate) async fn delete_image_gone(compute: &dyn Compute, name: &str, params: &Params) {
    compute
        .delete_catalog_image(name)
        .await
        .or_fail(format_args!("delete catalog image {name:?}"));
    wait_gone(
        compute.watch_catalog_image(name).await,
        params,
        format_args!("catalog image {name:?} going away"),
    )
    .await;
    let err = compute
        .get_catalog_image(name)
        .await
        .refused("get of a deleted catalog image");
    assert_not_found(
        &err,
        ResourceKind::CatalogImage,
        name,
        "get of a deleted catalog image",
    );
}

/// The catalog (capability `catalog`): a bad image spec is refused naming the field and nothing
/// is created; an image from [`Params::import_url`] becomes ready, is listed and described (its
/// source, size, last import), and so does a registry image with a schedule (`docker://` on that
/// URL's host); one from [`Params::failing_import_url`] fails fast and stays not
/// ready. VMs naming an unknown image, a failed one, or a clone smaller than the image are
/// refused naming `bootDisk.image` / `bootDisk.size` before anything is created; two VMs booting
/// from the ready image run, each on its own boot volume `<vm>-boot` (which goes with the VM).
/// Deleted images are gone.
pub async fn catalog_images_boot_vms(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    require_that!(
        compute.capabilities().catalog,
        "capability compute.catalog is missing"
    );
    // Images are cluster-wide: named after the check's tenant so runs do not collide.
    let good = format!("{tenant}-os");
    let broken = format!("{tenant}-broken");
    let size = params.volume_size;
    let http = |url: &str| ImageSource::Http { url: url.into() };

    // Bad input: refused naming the field, nothing created.
    let bad =
        CatalogImageSpec::new(&good, http(&params.import_url), size).with_schedule("0 3 * * *");
    let err = compute
        .apply_catalog_image(&bad)
        .await
        .refused("an http catalog image with a schedule");
    assert_invalid(&err, "schedule", "an http catalog image with a schedule");
    let err = compute
        .get_catalog_image(&good)
        .await
        .refused("get of a refused catalog image");
    assert_not_found(
        &err,
        ResourceKind::CatalogImage,
        &good,
        "get of a refused image",
    );

    // A good image: ready, listed and described.
    let spec = CatalogImageSpec::new(&good, http(&params.import_url), size);
    let image = ready_image(compute, &spec, params).await;
    assert_eq!(image.spec, spec, "a ready catalog image describes its spec");
    assert!(
        image.last_import.is_some() && !image.failed,
        "a ready catalog image tells when it was imported: {image:?}"
    );
    let listed = compute
        .list_catalog_images()
        .await
        .or_fail("list catalog images");
    let listed = names(&listed, |i| i.name());
    assert!(listed.contains(&good), "{good:?} is listed: {listed:?}");
    assert_eq!(
        compute
            .get_catalog_image(&good)
            .await
            .or_fail("get the ready catalog image"),
        image,
        "get gives what the wait saw"
    );

    // A registry image checked on a schedule (from the import URL's host, which imports).
    let registry = CatalogImageSpec::new(
        format!("{tenant}-reg"),
        ImageSource::Registry {
            url: format!(
                "docker://{}/kubecloud/conformance:1",
                crate::import::url_host(&params.import_url)
            ),
        },
        size,
    )
    .with_schedule("0 3 * * *");
    let image = ready_image(compute, &registry, params).await;
    assert_eq!(
        image.spec, registry,
        "a ready registry image describes its spec"
    );
    delete_image_gone(compute, &registry.name, params).await;

    // A failing image fails fast and stays not ready.
    compute
        .apply_catalog_image(&CatalogImageSpec::new(
            &broken,
            http(&params.failing_import_url),
            size,
        ))
        .await
        .or_fail("apply a catalog image from the failing URL (the failure comes later)");
    let err = wait_fails_fast(
        compute.watch_catalog_image(&broken).await,
        image_ready(),
        params,
        format_args!("catalog image {broken:?} importing a failing URL"),
    )
    .await;
    assert!(
        matches!(
            err,
            crate::Error::Failed {
                kind: ResourceKind::CatalogImage,
                ..
            }
        ),
        "conformance: a failed import is Error::Failed of the catalog image, got {err:?}"
    );

    // Bad references: refused naming the field, nothing created.
    let vm = |name: &str, boot: BootDisk| VmSpec {
        name: name.into(),
        boot_disk: boot,
        ..VmSpec::default()
    };
    let small = BootDisk::Catalog {
        image: good.clone(),
        size: Some(ByteSize(size.0 / 2)),
        tier: params.tier.clone(),
        replicas: 1,
        access: Default::default(),
        mode: Default::default(),
    };
    for (spec, field, what) in [
        (
            vm("unknown", BootDisk::catalog(format!("{tenant}-nope"))),
            "bootDisk.image",
            "a vm naming an unknown catalog image",
        ),
        (
            vm("unready", BootDisk::catalog(&broken)),
            "bootDisk.image",
            "a vm naming a catalog image that is not ready",
        ),
        (
            vm("small", small),
            "bootDisk.size",
            "a clone smaller than its image",
        ),
    ] {
        let err = apply_vm(target, tenant, &spec).await.refused(what);
        assert_invalid(&err, field, what);
        let err = compute
            .get_vm(tenant, &spec.name)
            .await
            .refused(format_args!("get of {what}"));
        assert_not_found(&err, ResourceKind::Vm, &spec.name, what);
        if let Some(storage) = target.storage {
            let err = storage
                .get_volume(tenant, &BootDisk::import_volume_name(&spec.name))
                .await
                .refused(format_args!("the boot volume of {what}"));
            assert_not_found(
                &err,
                ResourceKind::Volume,
                &BootDisk::import_volume_name(&spec.name),
                what,
            );
        }
    }

    // Two VMs from the ready image run, each on its own clone.
    for name in ["clone-a", "clone-b"] {
        let mut boot = BootDisk::catalog(&good);
        if let BootDisk::Catalog { tier, .. } = &mut boot {
            tier.clone_from(&params.tier);
        }
        let spec = vm(name, boot);
        apply_vm(target, tenant, &spec)
            .await
            .or_fail(format_args!("apply vm {name:?} booting from {good:?}"));
        let running = wait_for(
            compute.watch_vm(tenant, name).await,
            wait::vm_running(),
            params,
            format_args!("vm {name:?} booting from catalog image {good:?} running"),
        )
        .await;
        assert_eq!(running.spec, spec, "the vm keeps its catalog boot disk");
        if let Some(storage) = target.storage {
            let volume = storage
                .get_volume(tenant, &BootDisk::import_volume_name(name))
                .await
                .or_fail(format_args!("the boot volume of {name:?}"));
            assert!(
                volume.spec.size >= size,
                "the clone of {good:?} holds the image: {volume:?}"
            );
        }
    }
    for name in ["clone-a", "clone-b"] {
        delete_vm_gone(compute, tenant, name, params).await;
        if let Some(storage) = target.storage {
            wait_gone(
                storage
                    .watch_volume(tenant, &BootDisk::import_volume_name(name))
                    .await,
                params,
                format_args!("the boot volume of {name:?} going with its vm"),
            )
            .await;
        }
    }
    delete_image_gone(compute, &good, params).await;
    delete_image_gone(compute, &broken, params).await;
    Outcome::Passed
}
