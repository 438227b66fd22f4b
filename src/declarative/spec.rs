//! [`TenantSpec`]: a whole tenant, described once.

use serde::{Deserialize, Serialize};

use kubecloud_core::{
    AddressPoolSpec, Error, ExposureSpec, IpReservationSpec, Result, SecurityGroupSpec,
    ServiceSpec, SubnetSpec, VmSpec, VolumeSpec, VpcSpec,
};

/// Everything a tenant should have, across compute, storage, network and load balancing.
/// Readable from YAML; validated as a whole before anything is sent.
///
/// ```
/// let spec = kubecloud::TenantSpec::from_yaml(r#"
/// vpcs: [{ name: main }]
/// subnets: [{ name: web, vpc: main, cidr: 10.1.0.0/24 }]
/// volumes: [{ name: web-root, size: 10Gi, replicas: 2, access: readWriteMany }]
/// vms:
///   - name: web
///     resources: { custom: { cpuCores: 2, memory: 4Gi } }
///     bootDisk: { volume: { volume: web-root } }
///     interfaces: [{ name: eth0, attachment: { subnet: { subnet: web } }, fixedIp: 10.1.0.10 }]
/// "#)?;
/// spec.validate()?;
/// assert_eq!(spec.vms.len(), 1);
/// # Ok::<(), kubecloud::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    /// VPCs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpcs: Vec<VpcSpec>,
    /// Subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubnetSpec>,
    /// Security groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<SecurityGroupSpec>,
    /// Fixed IP reservations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_reservations: Vec<IpReservationSpec>,
    /// Block volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// Virtual machines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<VmSpec>,
    /// Internal services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// External address pools the tenant owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_pools: Vec<AddressPoolSpec>,
    /// Load-balancer exposures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposures: Vec<ExposureSpec>,
}

/// A parser's message cut to its first lines, each to a prefix.
fn bounded(message: &str) -> String {
    const LINES: usize = 12;
    const WIDTH: usize = 160;
    let mut out: Vec<String> = message
        .lines()
        .take(LINES)
        .map(|line| match line.char_indices().nth(WIDTH) {
            None => line.to_string(),
            Some((at, _)) => format!("{}… ({} bytes)", &line[..at], line.len()),
        })
        .collect();
    if message.lines().nth(LINES).is_some() {
        out.push("…".into());
    }
    out.join("\n")
}

impl TenantSpec {
    /// Reads a spec from YAML (or JSON, and with or without a UTF-8 byte-order mark); an
    /// unknown field is an error naming it. The error quotes at most a prefix of each line of
    /// the document it shows, so a huge document is not echoed back.
    ///
    /// ```
    /// let err = kubecloud::TenantSpec::from_yaml(&format!("{}: 1", "x".repeat(100_000))).unwrap_err();
    /// assert_eq!(err.invalid_field(), Some("spec"));
    /// assert!(err.to_string().len() < 2_000);
    /// ```
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        let yaml = yaml.strip_prefix('\u{feff}').unwrap_or(yaml);
        serde_saphyr::from_str(yaml).map_err(|e| Error::invalid("spec", bounded(&e.to_string())))
    }

    /// The spec as YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self).map_err(|e| Error::invalid("spec", e.to_string()))
    }

    /// How many resources the spec describes.
    pub fn len(&self) -> usize {
        self.vpcs.len()
            + self.subnets.len()
            + self.security_groups.len()
            + self.ip_reservations.len()
            + self.volumes.len()
            + self.vms.len()
            + self.services.len()
            + self.address_pools.len()
            + self.exposures.len()
    }

    /// Whether the spec describes nothing (applying it removes everything).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
