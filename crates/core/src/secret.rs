//! Secret material (cloud-init user data, SSH keys, BGP passwords) that never shows in logs.

use std::fmt;

/// A string that must never appear in logs, `Debug` output or error messages: cloud-init user
/// data, SSH keys, passwords, tokens. Backends store it as a Kubernetes Secret, never inline.
///
/// `Debug` and `Display` print `[redacted]`; the value is only reachable through
/// [`SecretString::expose`], which makes every read greppable. It serializes as the plain string
/// (a spec file must carry it), so never log a serialized spec.
///
/// ```
/// use kubecloud_core::SecretString;
/// let password = SecretString::new("hunter2");
/// assert_eq!(format!("{password:?}"), "SecretString([redacted])");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps secret material.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call this only where the value is sent to its store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_display_leak_the_value() {
        let secret = SecretString::new("ssh-ed25519 AAAAC3Nza... user@host");
        let shown = format!("{secret:?} {secret} {:#?}", Some(&secret));
        assert!(!shown.contains("AAAA"), "{shown}");
    }
}
