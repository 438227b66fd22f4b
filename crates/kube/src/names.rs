//! The naming conventions every backend shares, so one backend can find what another made
//! without importing it: the compute backend attaches the storage backend's claims and the
//! network backend's subnets by these names.
//!
//! | domain resource | Kubernetes object |
//! |---|---|
//! | tenant `t` | namespace `t` |
//! | volume `v` of `t` | PersistentVolumeClaim `v` in namespace `t` |
//! | cluster-scoped object for resource `r` of `t` (Kube-OVN VPC/subnet/security group, MetalLB pool objects) | [`cluster_scoped`]`(t, r)` = `t-r` (shortened with a hash when too long) |
//! | secondary subnet `s` of `t` | NetworkAttachmentDefinition `s` in namespace `t`, Kube-OVN provider `s.t.ovn` |
//! | VM `m`'s cloud-init | Secret `m-cloudinit` in namespace `t` |
//! | VM `m`'s SSH keys | Secret `m-ssh` in namespace `t` |
//!
//! VM labels are copied onto the VM's pod template, so a Service selecting VM labels selects the
//! VM's virt-launcher pod.

use kubecloud_core::Tenant;

/// The longest name a DNS-1123 label allows.
const MAX_LABEL: usize = 63;

/// The PersistentVolumeClaim of volume `volume` (in the tenant's namespace).
///
/// ```
/// assert_eq!(kubecloud_kube::names::claim("web-root"), "web-root");
/// ```
pub fn claim(volume: &str) -> String {
    volume.to_string()
}

/// The name of a cluster-scoped object standing for resource `name` of `tenant`: `tenant-name`,
/// or, when that exceeds 63 characters, a prefix of it and a stable 8-hex-digit hash of the whole,
/// so names stay unique per tenant and valid as DNS labels.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_kube::names::cluster_scoped(&acme, "web"), "acme-web");
/// let long = kubecloud_kube::names::cluster_scoped(&acme, &"x".repeat(63));
/// assert_eq!(long.len(), 63);
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn cluster_scoped(tenant: &Tenant, name: &str) -> String {
    let full = format!("{}-{name}", tenant.as_str());
    if full.len() <= MAX_LABEL {
        return full;
    }
    let hash = fnv1a(full.as_bytes());
    let keep = MAX_LABEL - 9;
    let prefix = full[..keep].trim_end_matches('-');
    format!("{prefix}-{hash:08x}")
}

/// The NetworkAttachmentDefinition of secondary subnet `subnet` (in the tenant's namespace).
pub fn attachment(subnet: &str) -> String {
    subnet.to_string()
}

/// The Kube-OVN provider of a secondary subnet reached through its attachment:
/// `<nad>.<namespace>.ovn`.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_kube::names::ovn_provider(&acme, "storage"), "storage.acme.ovn");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn ovn_provider(tenant: &Tenant, subnet: &str) -> String {
    format!("{}.{}.ovn", attachment(subnet), tenant.as_str())
}

/// The Secret holding VM `vm`'s cloud-init user and network data.
pub fn cloud_init_secret(vm: &str) -> String {
    format!("{vm}-cloudinit")
}

/// The Secret holding VM `vm`'s SSH public keys.
pub fn ssh_secret(vm: &str) -> String {
    format!("{vm}-ssh")
}

/// FNV-1a, 32 bits: a tiny stable hash for name shortening (not for security).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortened_names_stay_unique_and_valid() {
        let t = Tenant::new("t".repeat(40)).unwrap();
        let a = cluster_scoped(&t, &"a".repeat(40));
        let b = cluster_scoped(&t, &format!("{}b", "a".repeat(39)));
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63);
            assert!(kubecloud_core::validate_name("n", n).is_ok(), "{n}");
        }
    }
}
