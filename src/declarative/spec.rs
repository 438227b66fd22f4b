//! [`TenantSpec`]: a whole tenant, described once.

use serde::{Deserialize, Serialize};

use super::plan::Desired;

use kubecloud_core::{
    AddressPoolSpec, Error, ExposureSpec, IpReservationSpec, Quota, Result, SecurityGroupSpec,
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
    /// The tenant's quota, set by apply when it differs from the tenant's (absent: the quota is
    /// left as it is). A plan taking the tenant past it is refused before anything is sent.
    ///
    /// ```
    /// let spec = kubecloud::TenantSpec::from_yaml("quota: { vms: 4, storage: 100Gi, tiers: { fast: { volumes: 2 } } }")?;
    /// assert_eq!(spec.quota.unwrap().vms, Some(4));
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

impl TenantSpec {
    /// Reads a spec from YAML (or JSON, which is YAML; a leading byte-order mark is skipped).
    /// An error names the field path (`vms[0].cloudInit.sshKeys`), the line and column and what
    /// was wrong, never the source text: a spec carries secrets, and a snippet of the lines
    /// around an error, or the offending value, would show them.
    ///
    /// ```
    /// let err = kubecloud::TenantSpec::from_yaml("vms:\n  - name: web\n    cpu: hunter2\n").unwrap_err();
    /// assert_eq!(err.invalid_field(), Some("vms[0].cpu"));
    /// assert!(err.to_string().contains("line 3") && !err.to_string().contains("hunter2"), "{err}");
    /// ```
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        let yaml = yaml.strip_prefix('\u{feff}').unwrap_or(yaml);
        let options = serde_saphyr::options! { with_snippet: false };
        let mut path = None;
        serde_saphyr::with_deserializer_from_str_with_options(yaml, options, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                path = Some(e.path().to_string());
                e.into_inner()
            })
        })
        .map_err(|e| parse_error(path.as_deref(), &e))
    }

    /// The spec as YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self).map_err(|e| Error::invalid("spec", e.to_string()))
    }

    /// A spec of one resource (see [`Desired`]).
    pub(crate) fn of_one(desired: Desired) -> Self {
        let mut spec = Self::default();
        match desired {
            Desired::Vpc(s) => spec.vpcs.push(s),
            Desired::Subnet(s) => spec.subnets.push(s),
            Desired::SecurityGroup(s) => spec.security_groups.push(s),
            Desired::IpReservation(s) => spec.ip_reservations.push(s),
            Desired::Volume(s) => spec.volumes.push(s),
            Desired::Vm(s) => spec.vms.push(s),
            Desired::Service(s) => spec.services.push(s),
            Desired::AddressPool(s) => spec.address_pools.push(s),
            Desired::Exposure(s) => spec.exposures.push(s),
        }
        spec
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

/// A parse error as `Error::invalid`: the field path (`spec` at the top), where, and what, with
/// every value the parser quoted left out (it may be a secret, or a megabyte long).
fn parse_error(path: Option<&str>, err: &serde_saphyr::Error) -> Error {
    use serde_saphyr::Error as E;
    let field = match path {
        // Keys in the path are the user's (a label key may be a megabyte): each part cut alone,
        // so the structure (`vms[0].labels.<key>`) stays readable.
        Some(p) if !p.is_empty() && p != "." => p
            .split('.')
            .map(kubecloud_core::shorten)
            .collect::<Vec<_>>()
            .join("."),
        _ => "spec".to_string(),
    };
    let what = match err {
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, found {}", kind_only(unexpected)),
        E::SerdeUnknownField {
            field, expected, ..
        } => format!(
            "unknown field {}, expected one of: {}",
            kubecloud_core::quote(field),
            expected.join(", ")
        ),
        E::SerdeMissingField { field, .. } => format!("missing field {field:?}"),
        E::SerdeUnknownVariant { expected, .. } => {
            format!("unknown variant, expected one of: {}", expected.join(", "))
        }
        other => scrub(&other.to_string()),
    };
    let at = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    Error::invalid(field, format!("{what}{at}"))
}

/// `string "hunter2"` -> `a string`: serde's description of a value without the value.
fn kind_only(unexpected: &str) -> String {
    let kind = unexpected
        .split(['"', '`', '\''])
        .next()
        .unwrap_or_default()
        .trim();
    if kind.is_empty() {
        "another value".into()
    } else {
        kind.into()
    }
}

/// A parser message with every quoted part (a value or a key from the source) replaced by `…`,
/// and no more than one line.
fn scrub(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let mut out = String::with_capacity(first.len());
    let mut quote = None;
    for c in first.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if matches!(c, '"' | '`' | '\'') => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    if quote.is_some() {
        out.push('…');
    }
    // The parser appends its own position; ours follows in one form.
    out.split(" at line ")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each broken spec holds the secret `hunter2-s3cret` near the error; the message must name
    /// the field and the line, and never carry the secret or other source text.
    #[test]
    fn parse_errors_name_the_field_and_line_without_source_text() {
        let cases = [
            // A type error in a secret field.
            (
                "vms:\n  - name: web\n    cloudInit:\n      sshKeys: hunter2-s3cret\n",
                "vms[0].cloudInit.sshKeys",
                4,
            ),
            // A number where a password goes: serde would quote the number.
            (
                "addressPools:\n  - name: p\n    addresses: []\n    advertisement:\n      bgp:\n        peers:\n          - {name: r, myAsn: 1, peerAsn: 2, address: 10.0.0.1, password: [hunter2-s3cret]}\n",
                "addressPools[0].advertisement.bgp.peers[0].password",
                7,
            ),
            // A syntax error on a line next to a secret.
            (
                "vms:\n  - name: web\n    cloudInit: {userData: hunter2-s3cret}\n    labels: {a: [}\n",
                "",
                0,
            ),
            // An unknown field whose value is a secret.
            (
                "vms:\n  - name: web\n    pasword: hunter2-s3cret\n",
                "vms[0].pasword",
                3,
            ),
        ];
        for (yaml, field, line) in cases {
            let err = TenantSpec::from_yaml(yaml).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(err.is_invalid_input(), "{shown}");
            if !field.is_empty() {
                assert_eq!(err.invalid_field(), Some(field), "{shown}");
            }
            if line > 0 {
                assert!(shown.contains(&format!("line {line},")), "{shown}");
            }
        }
    }

    #[test]
    fn a_byte_order_mark_and_json_are_read() {
        let spec = TenantSpec::from_yaml("\u{feff}{\"vpcs\": [{\"name\": \"main\"}]}").unwrap();
        assert_eq!(spec.vpcs[0].name, "main");
    }

    #[test]
    fn a_long_unknown_key_is_quoted_as_a_prefix() {
        let key = "k".repeat(1_000);
        let err = TenantSpec::from_yaml(&format!("{key}: 1\n")).unwrap_err();
        assert!(err.to_string().len() < 1_000, "{err}");
        assert!(err.to_string().contains("1000 bytes"), "{err}");
    }
}
