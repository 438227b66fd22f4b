//! A catalog without some API groups: a cluster where a system is not installed.

use super::{Catalog, CatalogError};

impl Catalog {
    /// A copy of this catalog without the types of `groups`: the double then serves (and
    /// discovers) a cluster where those systems are not installed.
    ///
    /// ```
    /// use kubecloud_testkit::schema::Catalog;
    /// let catalog = Catalog::upstream().unwrap().without_groups(&["kubevirt.io"]).unwrap();
    /// assert!(catalog.by_kind("kubevirt.io/v1", "VirtualMachine").is_none());
    /// assert!(catalog.by_kind("cdi.kubevirt.io/v1beta1", "DataVolume").is_some());
    /// ```
    pub fn without_groups(&self, groups: &[&str]) -> Result<Catalog, CatalogError> {
        let kept = self
            .types
            .iter()
            .filter(|t| !groups.contains(&t.group.as_str()))
            .cloned()
            .collect();
        Catalog::from_types(kept)
    }
}
