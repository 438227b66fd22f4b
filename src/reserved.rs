//! [`ReservedNamespaces`]: names no tenant may take, because a tenant is its namespace.
//!
//! A tenant named `metallb-system` would put its VMs next to MetalLB's BGP password Secrets and
//! relabel MetalLB's namespace as a tenant's. So [`crate::Cloud::tenant`] refuses, before
//! anything is sent, every name on this list: Kubernetes' own (`kube-*`, `default`), the
//! well-known namespaces of the systems kubecloud runs on (whether or not this cloud uses them:
//! a spec that works on one cloud must not take a system's namespace on another), the
//! namespaces the cloud's backends report ([`kubecloud_core::LoadBalancer::system_namespaces`]
//! and its siblings, e.g. MetalLB's configured namespace), and whatever the operator adds
//! ([`crate::CloudBuilder::reserve_namespace`]).
//!
//! On a cluster the backends also refuse a namespace kubecloud did not create for the tenant
//! (`kubecloud_kube::ensure_namespace`): the list is the early, typed answer; the label check is
//! the guarantee.

use std::fmt;

use kubecloud_core::{Error, Result, Tenant};

/// Namespaces of the systems kubecloud builds on, reserved on every cloud.
pub const WELL_KNOWN: &[(&str, &str)] = &[
    ("kube-*", "Kubernetes"),
    ("default", "Kubernetes"),
    ("kubevirt", "KubeVirt"),
    ("cdi", "CDI"),
    ("metallb-system", "MetalLB"),
    ("piraeus-datastore", "Piraeus (LINSTOR)"),
    ("linbit-sds", "LINBIT SDS (LINSTOR)"),
    ("kube-ovn", "Kube-OVN"),
    ("cert-manager", "cert-manager"),
    ("cilium", "Cilium"),
    ("openshift-*", "OpenShift"),
];

/// Names (or prefixes, written `prefix-*`) no tenant may take, each with who holds it.
///
/// ```
/// use kubecloud::ReservedNamespaces;
/// let mut reserved = ReservedNamespaces::default();
/// reserved.add("payments", "the payments team");
/// assert!(reserved.check(&"metallb-system".parse()?).is_err());
/// assert!(reserved.check(&"payments".parse()?).is_err());
/// assert!(reserved.check(&"acme".parse()?).is_ok());
/// # Ok::<(), kubecloud::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ReservedNamespaces {
    entries: Vec<(String, String)>,
}

impl Default for ReservedNamespaces {
    /// The [`WELL_KNOWN`] namespaces.
    fn default() -> Self {
        Self {
            entries: WELL_KNOWN
                .iter()
                .map(|(name, holder)| (name.to_string(), holder.to_string()))
                .collect(),
        }
    }
}

impl ReservedNamespaces {
    /// Reserves `pattern` (a namespace name, or a prefix written `prefix-*`) for `holder`.
    ///
    /// ```
    /// let mut reserved = kubecloud::ReservedNamespaces::default();
    /// reserved.add("team-*", "other teams");
    /// assert!(reserved.check(&"team-a".parse()?).is_err());
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    pub fn add(&mut self, pattern: impl Into<String>, holder: impl Into<String>) {
        let pattern = pattern.into();
        if !self.entries.iter().any(|(p, _)| *p == pattern) {
            self.entries.push((pattern, holder.into()));
        }
    }

    /// Refuses `tenant` if its name is reserved, naming the holder.
    ///
    /// ```
    /// let err = kubecloud::ReservedNamespaces::default().check(&"cdi".parse()?).unwrap_err();
    /// assert_eq!(err.invalid_field(), Some("tenant"));
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    pub fn check(&self, tenant: &Tenant) -> Result<()> {
        let name = tenant.as_str();
        match self.entries.iter().find(|(p, _)| matches(p, name)) {
            Some((pattern, holder)) => Err(Error::invalid(
                "tenant",
                format!(
                    "{name:?} is reserved for {holder} (namespace {pattern:?}): a tenant is a \
                     namespace of its own, never a system's"
                ),
            )),
            None => Ok(()),
        }
    }

    /// The reserved patterns.
    ///
    /// ```
    /// assert!(kubecloud::ReservedNamespaces::default().patterns().any(|p| p == "kube-*"));
    /// ```
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(p, _)| p.as_str())
    }
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl fmt::Debug for ReservedNamespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.patterns()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_of_the_stack_is_reserved_and_ordinary_names_are_not() {
        let reserved = ReservedNamespaces::default();
        for name in [
            "metallb-system",
            "piraeus-datastore",
            "kubevirt",
            "cdi",
            "cert-manager",
            "openshift-monitoring",
        ] {
            let err = reserved.check(&Tenant::new(name).unwrap()).unwrap_err();
            assert_eq!(err.invalid_field(), Some("tenant"), "{name}");
        }
        for name in ["acme", "kubevirtish", "cdi-team", "metallb"] {
            assert!(
                reserved.check(&Tenant::new(name).unwrap()).is_ok(),
                "{name}"
            );
        }
    }
}
