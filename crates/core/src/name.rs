//! Names as Kubernetes accepts them, and the tenant they belong to.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Labels on a resource (Kubernetes label rules apply).
pub type Labels = BTreeMap<String, String>;

/// The longest resource name kubecloud accepts: a DNS-1123 label.
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `value` is a DNS-1123 label (lowercase alphanumerics and `-`, starting and ending
/// alphanumeric, at most 63 characters), the rule every kubecloud resource name follows so that
/// it is a valid name for every object a backend derives from it.
///
/// `field` names the field in the error.
///
/// ```
/// use kubecloud_core::validate_name;
/// assert!(validate_name("name", "web-1").is_ok());
/// let err = validate_name("vms[0].name", "Web_1").unwrap_err();
/// assert_eq!(err.invalid_field(), Some("vms[0].name"));
/// ```
pub fn validate_name(field: &str, value: &str) -> Result<()> {
    if let Some(reason) = dns_label_problem(value, MAX_NAME_LEN) {
        return Err(Error::invalid(field, format!("{} {reason}", quote(value))));
    }
    Ok(())
}

/// The most characters of a user's value an error message repeats ([`quote`], [`shorten`]).
pub const QUOTE_MAX: usize = 63;

/// `value` quoted for an error message: whole if it has at most [`QUOTE_MAX`] characters,
/// else its first [`QUOTE_MAX`] characters, `…` and its length, so a megabyte of input is not
/// echoed back whole.
///
/// ```
/// use kubecloud_core::quote;
/// assert_eq!(quote("web"), "\"web\"");
/// let long = "a".repeat(1_000_000);
/// let quoted = quote(&long);
/// assert!(quoted.ends_with("\"… (1000000 bytes)"), "{quoted}");
/// assert!(quoted.len() < 100);
/// ```
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_MAX) {
        None => format!("{value:?}"),
        Some((at, _)) => format!("{:?}… ({} bytes)", &value[..at], value.len()),
    }
}

/// `value` cut to its first [`QUOTE_MAX`] characters followed by `…` when longer, unquoted: for
/// user input that becomes part of a field path (a label key, a map key).
///
/// ```
/// use kubecloud_core::shorten;
/// assert_eq!(shorten("app"), "app");
/// assert_eq!(shorten(&"k".repeat(100)).chars().count(), 64);
/// ```
pub fn shorten(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(QUOTE_MAX) {
        None => std::borrow::Cow::Borrowed(value),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", &value[..at])),
    }
}

/// Label-key prefixes (and their subdomains) that kubecloud and the systems under it set on the
/// objects they create: a spec may not set them, or they would be overwritten (and the next
/// apply would see the difference again).
pub const RESERVED_LABEL_PREFIXES: &[&str] = &["kubecloud.io", "kubevirt.io", "ovn.kubernetes.io"];

/// Whole label keys kubecloud sets on everything it creates: a spec may not set them.
pub const RESERVED_LABEL_KEYS: &[&str] = &["app.kubernetes.io/managed-by"];

/// Whether `key` is a label key a spec may not set: one of [`RESERVED_LABEL_KEYS`], or a key whose
/// prefix is one of [`RESERVED_LABEL_PREFIXES`] or a subdomain of one.
///
/// ```
/// use kubecloud_core::is_reserved_label;
/// assert!(is_reserved_label("kubecloud.io/tenant"));
/// assert!(is_reserved_label("vm.kubevirt.io/name"));
/// assert!(is_reserved_label("app.kubernetes.io/managed-by"));
/// assert!(!is_reserved_label("app.kubernetes.io/name"));
/// assert!(!is_reserved_label("example.com/kubecloud.io"));
/// ```
pub fn is_reserved_label(key: &str) -> bool {
    if RESERVED_LABEL_KEYS.contains(&key) {
        return true;
    }
    let Some((prefix, _)) = key.rsplit_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    RESERVED_LABEL_PREFIXES.iter().any(|reserved| {
        prefix == *reserved
            || prefix
                .strip_suffix(reserved)
                .is_some_and(|sub| sub.ends_with('.'))
    })
}

/// [`validate_labels`], and refuses [reserved keys](is_reserved_label): for the labels a spec
/// sets on its resources (and the selectors that pick them), not for node selectors, which name
/// the cluster's own node labels.
///
/// ```
/// use kubecloud_core::{validate_user_labels, Labels};
/// let mut labels = Labels::new();
/// labels.insert("app".into(), "web".into());
/// assert!(validate_user_labels("labels", &labels).is_ok());
/// labels.insert("kubecloud.io/tenant".into(), "other".into());
/// let err = validate_user_labels("labels", &labels).unwrap_err();
/// assert_eq!(err.invalid_field(), Some("labels.kubecloud.io/tenant"));
/// ```
pub fn validate_user_labels(field: &str, labels: &Labels) -> Result<()> {
    validate_labels(field, labels)?;
    if let Some(key) = labels.keys().find(|k| is_reserved_label(k)) {
        return Err(Error::invalid(
            format!("{field}.{key}"),
            format!("the label key {key:?} is reserved for kubecloud and the systems it drives"),
        ));
    }
    Ok(())
}

fn dns_label_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > max {
        return Some(format!("must be at most {max} characters"));
    }
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Some("must consist of lowercase letters, digits and '-'".into());
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// Checks labels against Kubernetes' rules: keys are an optional DNS subdomain prefix and `/`
/// and a name of at most 63 characters; values are at most 63 characters of alphanumerics,
/// `-`, `_` and `.`, starting and ending alphanumeric (or empty).
///
/// ```
/// use kubecloud_core::{validate_labels, Labels};
/// let mut labels = Labels::new();
/// labels.insert("app.kubernetes.io/name".into(), "web".into());
/// assert!(validate_labels("labels", &labels).is_ok());
/// labels.insert("bad key!".into(), "x".into());
/// assert!(validate_labels("labels", &labels).is_err());
/// ```
pub fn validate_labels(field: &str, labels: &Labels) -> Result<()> {
    for (key, value) in labels {
        // Kubernetes: a key's prefix is at most 253 and its name at most 63 characters.
        if key.len() > 253 + 1 + 63 {
            return Err(Error::invalid(
                format!("{field}.{}", shorten(key)),
                format!("label key of {} bytes is too long", key.len()),
            ));
        }
        let (prefix, name) = match key.rsplit_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, key.as_str()),
        };
        if let Some(prefix) = prefix {
            let ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .split('.')
                    .all(|part| dns_label_problem(part, 63).is_none());
            if !ok {
                return Err(Error::invalid(
                    format!("{field}.{key}"),
                    "label key prefix must be a DNS subdomain",
                ));
            }
        }
        if !is_label_value(name) || name.is_empty() {
            return Err(Error::invalid(
                format!("{field}.{key}"),
                "label key name must be 1-63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
            ));
        }
        if !is_label_value(value) {
            return Err(Error::invalid(
                format!("{field}.{key}"),
                format!(
                    "label value {} must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
                    quote(value)
                ),
            ));
        }
    }
    Ok(())
}

fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let bytes = value.as_bytes();
    value.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// A tenant: the unit of ownership and isolation. Every resource belongs to exactly one tenant,
/// and a tenant's name is a valid Kubernetes namespace name (its namespace on the real stack).
///
/// A `Tenant` can only be built from a valid name, so holding one proves the name was checked.
///
/// ```
/// use kubecloud_core::Tenant;
/// let acme: Tenant = "acme".parse()?;
/// assert_eq!(acme.as_str(), "acme");
/// assert!(Tenant::new("kube-system").is_err(), "reserved prefix");
/// assert!(Tenant::new("Acme").is_err());
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Tenant(String);

impl Tenant {
    /// Validates `name` and makes a tenant of it. Names starting with `kube-` are reserved for
    /// Kubernetes itself, as are `default`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        validate_name("tenant", &name)?;
        if name.starts_with("kube-") || name == "default" {
            return Err(Error::invalid(
                "tenant",
                format!("{name:?} is reserved for Kubernetes"),
            ));
        }
        Ok(Self(name))
    }

    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tenant({})", self.0)
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tenant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Tenant {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(de)?;
        Tenant::new(name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_matching_the_dns_label_grammar_are_accepted(name in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            prop_assert!(validate_name("name", &name).is_ok());
        }

        #[test]
        fn names_with_a_foreign_character_are_refused(
            head in "[a-z]{0,10}",
            bad in "[A-Z_.!@ /]",
            tail in "[a-z]{0,10}",
        ) {
            let name = format!("{head}{bad}{tail}");
            let err = validate_name("spec.name", &name).unwrap_err();
            prop_assert_eq!(err.invalid_field(), Some("spec.name"));
        }

        #[test]
        fn names_longer_than_a_label_are_refused(name in "[a-z]{64,100}") {
            prop_assert!(validate_name("name", &name).is_err());
        }

        #[test]
        fn names_with_dashes_at_the_edges_are_refused(core in "[a-z0-9]{0,10}") {
            let leading = format!("-{core}");
            let trailing = format!("{core}-");
            prop_assert!(validate_name("name", &leading).is_err());
            prop_assert!(validate_name("name", &trailing).is_err());
        }

        #[test]
        fn every_valid_tenant_round_trips_through_serde(name in "[a-j][a-z0-9-]{0,40}[a-z0-9]") {
            let tenant = Tenant::new(name.clone()).unwrap();
            let json = serde_json::to_string(&tenant).unwrap();
            let back: Tenant = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.as_str(), name.as_str());
        }
    }

    #[test]
    fn empty_name_is_refused_with_the_reason() {
        let err = validate_name("name", "").unwrap_err();
        assert!(err.to_string().contains("must not be empty"), "{err}");
    }

    #[test]
    fn deserializing_an_invalid_tenant_fails() {
        assert!(serde_json::from_str::<Tenant>("\"Not_Valid\"").is_err());
    }

    #[test]
    fn label_values_follow_kubernetes_rules() {
        let mut labels = Labels::new();
        labels.insert("tier".into(), "".into());
        labels.insert("example.com/role".into(), "web.front_1".into());
        assert!(validate_labels("labels", &labels).is_ok());
        labels.insert("tier".into(), "-bad".into());
        let err = validate_labels("labels", &labels).unwrap_err();
        assert_eq!(err.invalid_field(), Some("labels.tier"));
        let mut labels = Labels::new();
        labels.insert("Bad..Prefix/x".into(), "y".into());
        assert!(validate_labels("labels", &labels).is_err());
    }
}
