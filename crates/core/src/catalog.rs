//! The image catalog: golden images imported **once** into a namespace shared by every tenant
//! (KubeVirt: CDI `DataSource`s in [`DEFAULT_CATALOG_NAMESPACE`] or the namespace an operator
//! configures), kept fresh from a registry on a schedule, and cloned into a tenant as a VM's boot
//! disk ([`crate::BootDisk::Catalog`]), never downloaded again.
//!
//! Images are cluster-wide, not a tenant's: they are made and deleted by an operator
//! ([`crate::Compute::apply_catalog_image`]); tenants read them and boot from them.
//!
//! ```
//! use kubecloud_core::{ByteSize, CatalogImageSpec, ImageSource};
//! let fedora = CatalogImageSpec::new(
//!     "fedora-40",
//!     ImageSource::Registry { url: "docker://quay.io/containerdisks/fedora:40".into() },
//!     ByteSize::gib(5),
//! )
//! .with_schedule("0 3 * * *");
//! assert!(fedora.validate().is_ok());
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, ResourceKind, Result};
use crate::name::{quote, validate_name};
use crate::size::ByteSize;

/// The namespace the KubeVirt backend keeps the catalog in unless configured otherwise.
pub const DEFAULT_CATALOG_NAMESPACE: &str = "kubecloud-images";

/// The longest catalog image name: CDI names an image's import `<name>-<12 digest characters>`,
/// which must stay a 63-character DNS label.
pub const MAX_IMAGE_NAME_LEN: usize = 50;

/// Where a catalog image comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ImageSource {
    /// A raw or qcow2 image at an http(s) URL, imported once (a registry source is what can be
    /// polled for new versions).
    Http {
        /// The http(s) URL.
        url: String,
    },
    /// A container disk in a registry (`docker://host/repo:tag`), re-imported when its digest
    /// changes, checked on [`CatalogImageSpec::schedule`].
    Registry {
        /// The `docker://` reference.
        url: String,
    },
}

impl ImageSource {
    /// The URL, whichever the kind.
    pub fn url(&self) -> &str {
        match self {
            Self::Http { url } | Self::Registry { url } => url,
        }
    }
}

/// A catalog image as an operator wants it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogImageSpec {
    /// The image's name (a DNS label of at most [`MAX_IMAGE_NAME_LEN`] characters), what VMs
    /// name in [`crate::BootDisk::Catalog`].
    pub name: String,
    /// Where it is imported from.
    pub source: ImageSource,
    /// The size of the golden volume (and the least size of a clone).
    pub size: ByteSize,
    /// A standard five-field cron schedule on which a registry source is checked for a new
    /// digest (CDI's `DataImportCron` `schedule`); none: imported once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

impl CatalogImageSpec {
    /// An image `name` from `source` of `size`, imported once.
    pub fn new(name: impl Into<String>, source: ImageSource, size: ByteSize) -> Self {
        Self {
            name: name.into(),
            source,
            size,
            schedule: None,
        }
    }

    /// The same image, checked for new versions on `schedule`.
    pub fn with_schedule(mut self, schedule: impl Into<String>) -> Self {
        self.schedule = Some(schedule.into());
        self
    }

    /// Checks every field; the error names the first bad one (`name`, `source.url`, `size`,
    /// `schedule`).
    ///
    /// ```
    /// use kubecloud_core::{ByteSize, CatalogImageSpec, ImageSource};
    /// let http = ImageSource::Http { url: "https://example.com/os.qcow2".into() };
    /// let spec = CatalogImageSpec::new("os", http, ByteSize::gib(2)).with_schedule("@hourly");
    /// assert_eq!(spec.validate().unwrap_err().invalid_field(), Some("schedule"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        if self.name.len() > MAX_IMAGE_NAME_LEN {
            return Err(Error::invalid(
                "name",
                format!(
                    "{} is longer than {MAX_IMAGE_NAME_LEN} characters (its imports are named <name>-<digest>)",
                    quote(&self.name)
                ),
            ));
        }
        if self.name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(Error::invalid(
                "name",
                format!(
                    "{} starts with a digit (CDI's DataSource names are DNS-1035 labels)",
                    quote(&self.name)
                ),
            ));
        }
        match &self.source {
            ImageSource::Http { url } => {
                crate::import::validate_import_url("source.url", url)?;
                if self.schedule.is_some() {
                    return Err(Error::invalid(
                        "schedule",
                        "only a registry source is polled for new versions (CDI's DataImportCron takes registry sources); an http image is imported once",
                    ));
                }
            }
            ImageSource::Registry { url } => validate_registry_url("source.url", url)?,
        }
        crate::storage::validate_size("size", self.size)?;
        if let Some(schedule) = &self.schedule {
            validate_schedule("schedule", schedule)?;
        }
        Ok(())
    }
}

/// Checks a `docker://` registry reference: the scheme, a host and a repository, no whitespace.
pub fn validate_registry_url(field: &str, url: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(field, format!("{} {why}", quote(url))));
    let Some(rest) = url.strip_prefix("docker://") else {
        return bad("is not a docker:// registry reference");
    };
    if url.len() > crate::import::MAX_URL_LEN {
        return bad("is too long");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("holds whitespace or control characters");
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || path.is_empty() {
        return bad("names no registry host and repository");
    }
    Ok(())
}

/// Checks a standard five-field cron schedule (minute, hour, day of month, month, day of week),
/// each field `*`, numbers, ranges, lists and steps: what CDI's webhook parses
/// (`cronexpr.ParseStandard`) without the `@` shorthands.
pub fn validate_schedule(field: &str, schedule: &str) -> Result<()> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let bad = |why: String| Err(Error::invalid(field, format!("{} {why}", quote(schedule))));
    if fields.len() != 5 {
        return bad("is not a five-field cron schedule".into());
    }
    for (f, (lo, hi)) in fields.iter().zip(ranges) {
        for part in f.split(',') {
            let (range, step) = part.split_once('/').unwrap_or((part, "1"));
            if step.parse::<u32>().map_or(true, |s| s == 0) {
                return bad(format!("has a bad step in {part:?}"));
            }
            if range == "*" {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if lo <= a && a <= b && b <= hi => {}
                _ => return bad(format!("has {part:?} outside {lo}-{hi}")),
            }
        }
    }
    Ok(())
}

/// A catalog image as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogImage {
    /// What was asked for.
    pub spec: CatalogImageSpec,
    /// Whether VMs can boot from it now (an import has succeeded; CDI: the `DataSource`'s
    /// `Ready` condition).
    pub ready: bool,
    /// When the volume VMs clone now was imported (RFC 3339), if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_import: Option<String>,
    /// Whether its last import failed (it stays not ready until a new import succeeds).
    #[serde(default)]
    pub failed: bool,
    /// Why it is not ready (importing, or the import failed), when the backend says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl crate::wait::Observed for CatalogImage {
    const KIND: ResourceKind = ResourceKind::CatalogImage;
    fn summary(&self) -> String {
        match (self.ready, self.failed, &self.message) {
            (true, _, _) => "ready".into(),
            (false, true, Some(m)) => format!("failed: {m}"),
            (false, true, None) => "failed".into(),
            (false, false, Some(m)) => format!("importing: {m}"),
            (false, false, None) => "importing".into(),
        }
    }
    fn identity(&self) -> (ResourceKind, String) {
        (ResourceKind::CatalogImage, self.spec.name.clone())
    }
}

/// The catalog image is ready; fails if its import failed.
pub fn image_ready() -> impl crate::wait::Condition<CatalogImage> {
    crate::wait::condition("catalog image ready", |image: &CatalogImage| {
        if image.ready {
            crate::wait::Check::Met
        } else if image.failed {
            crate::wait::Check::Failed(
                image
                    .message
                    .clone()
                    .unwrap_or_else(|| "import failed".into()),
            )
        } else {
            crate::wait::Check::Pending
        }
    })
}

impl CatalogImage {
    /// The image's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Checks that a VM booting from catalog image `name` (field `field`) can: it is listed in
/// `images` and ready, and the requested clone `size` (if any, field `size_field`) holds it.
/// What the facade and the backends check before anything is sent.
///
/// ```
/// use kubecloud_core::{ByteSize, CatalogImage, CatalogImageSpec, ImageSource, catalog::check_boot_image};
/// let spec = CatalogImageSpec::new("os", ImageSource::Http { url: "https://e.com/os.img".into() }, ByteSize::gib(2));
/// let image = CatalogImage { spec, ready: false, failed: false, last_import: None, message: Some("importing".into()) };
/// let err = check_boot_image("bootDisk.image", "bootDisk.size", "os", None, Some(&image)).unwrap_err();
/// assert_eq!(err.invalid_field(), Some("bootDisk.image"));
/// let err = check_boot_image("bootDisk.image", "bootDisk.size", "nope", None, None).unwrap_err();
/// assert_eq!(err.invalid_field(), Some("bootDisk.image"));
/// ```
pub fn check_boot_image(
    field: &str,
    size_field: &str,
    name: &str,
    size: Option<ByteSize>,
    image: Option<&CatalogImage>,
) -> Result<()> {
    let Some(image) = image else {
        return Err(Error::invalid(
            field,
            format!("no catalog image is named {}", quote(name)),
        ));
    };
    if !image.ready {
        return Err(Error::invalid(
            field,
            format!(
                "catalog image {} is not ready{}",
                quote(name),
                image
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(size) = size
        && size < image.spec.size
    {
        return Err(Error::invalid(
            size_field,
            format!(
                "{size} is smaller than catalog image {} ({})",
                quote(name),
                image.spec.size
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> ImageSource {
        ImageSource::Http {
            url: "https://images.example.com/os.qcow2".into(),
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                CatalogImageSpec::new("Os", http(), ByteSize::gib(1)),
                "name",
            ),
            (
                CatalogImageSpec::new("a".repeat(51), http(), ByteSize::gib(1)),
                "name",
            ),
            (
                CatalogImageSpec::new("4os", http(), ByteSize::gib(1)),
                "name",
            ),
            (
                CatalogImageSpec::new(
                    "os",
                    ImageSource::Http {
                        url: "ftp://x/y".into(),
                    },
                    ByteSize::gib(1),
                ),
                "source.url",
            ),
            (
                CatalogImageSpec::new(
                    "os",
                    ImageSource::Registry {
                        url: "quay.io/x/y".into(),
                    },
                    ByteSize::gib(1),
                ),
                "source.url",
            ),
            (CatalogImageSpec::new("os", http(), ByteSize(0)), "size"),
            (
                CatalogImageSpec::new("os", http(), ByteSize::gib(1)).with_schedule("0 3 * * *"),
                "schedule",
            ),
            (
                CatalogImageSpec::new(
                    "os",
                    ImageSource::Registry {
                        url: "docker://quay.io/x/y:1".into(),
                    },
                    ByteSize::gib(1),
                )
                .with_schedule("61 * * * *"),
                "schedule",
            ),
        ];
        for (spec, field) in cases {
            let err = spec.validate().expect_err(field);
            assert_eq!(err.invalid_field(), Some(field), "{err}");
        }
    }

    #[test]
    fn schedules_are_standard_cron() {
        for ok in ["0 3 * * *", "*/15 * * * 1-5", "0 0,12 1 */2 *"] {
            assert!(validate_schedule("s", ok).is_ok(), "{ok}");
        }
        for bad in [
            "@daily",
            "* * * *",
            "0 24 * * *",
            "*/0 * * * *",
            "a * * * *",
        ] {
            assert!(validate_schedule("s", bad).is_err(), "{bad}");
        }
    }
}
