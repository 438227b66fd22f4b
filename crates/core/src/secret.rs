//! Secret material (cloud-init user data, SSH keys, BGP passwords) that never shows in logs,
//! `Debug` output, error messages, plans or diffs.
//!
//! A secret is a type, not a field path: wherever a [`SecretString`] sits in a spec, at any
//! depth, it prints as a redaction marker with a short fingerprint, and it serializes as that
//! marker inside [`redacted`] (which plans and diffs use), so rotating a password shows as a
//! change without showing either value.
//!
//! The fingerprint is a keyed hash (HMAC-SHA-256, first 32 bits) under a key drawn at random
//! once per process: two values compare within one process (a plan's old and new value), but a
//! fingerprint in a log cannot be checked against guessed passwords offline, and means nothing
//! in another process.
//!
//! Crates: `hmac` + `sha2` (RustCrypto, pure Rust) for the keyed hash, `getrandom` for the key.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A string that must never appear in logs, `Debug` output or error messages: cloud-init user
/// data, SSH keys, passwords, tokens. Backends store it as a Kubernetes Secret, never inline.
///
/// `Debug` and `Display` print `[redacted <fingerprint>]`; the value is only reachable through
/// [`SecretString::expose`], which makes every read greppable. It serializes as the plain string
/// (a spec file must carry it), except inside [`redacted`], where it serializes as the marker.
///
/// ```
/// use kubecloud_core::SecretString;
/// let password = SecretString::new("hunter2");
/// assert!(format!("{password:?}").starts_with("SecretString([redacted "));
/// assert!(!format!("{password:?} {password}").contains("hunter2"));
/// assert_eq!(password.expose(), "hunter2");
/// // A different value has a different fingerprint (within this process).
/// assert_ne!(password.to_string(), SecretString::new("hunter3").to_string());
/// ```
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps secret material.
    ///
    /// ```
    /// let key = kubecloud_core::SecretString::new("ssh-ed25519 AAAA... me@host");
    /// assert!(!key.is_empty());
    /// ```
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call this only where the value is sent to its store.
    ///
    /// ```
    /// assert_eq!(kubecloud_core::SecretString::new("s3cret").expose(), "s3cret");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    ///
    /// ```
    /// assert!(kubecloud_core::SecretString::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret's length in bytes (not secret: limits are checked against it).
    ///
    /// ```
    /// assert_eq!(kubecloud_core::SecretString::new("abc").len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// A short fingerprint of the value: 8 hex digits of a keyed hash whose key is random per
    /// process. Equal values have equal fingerprints within one process; nothing about the
    /// value can be learnt from it.
    ///
    /// ```
    /// use kubecloud_core::SecretString;
    /// let a = SecretString::new("one");
    /// assert_eq!(a.fingerprint(), SecretString::new("one").fingerprint());
    /// assert_eq!(a.fingerprint().len(), 8);
    /// ```
    pub fn fingerprint(&self) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(process_key()).expect("HMAC takes a key of any size");
        mac.update(self.0.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The marker shown instead of the value: `[redacted <fingerprint>]`.
    ///
    /// ```
    /// let s = kubecloud_core::SecretString::new("x");
    /// assert_eq!(s.marker(), s.to_string());
    /// ```
    pub fn marker(&self) -> String {
        format!("[redacted {}]", self.fingerprint())
    }
}

/// The per-process key of [`SecretString::fingerprint`].
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // Without an OS random source the fingerprints are still one-way (HMAC), only
        // comparable across processes: acceptable, never fatal.
        if getrandom::fill(&mut key).is_err() {
            tracing::warn!("no OS randomness: secret fingerprints use a fixed key");
        }
        key
    })
}

thread_local! {
    static REDACTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`SecretString`] it serializes written as its marker
/// (`[redacted <fingerprint>]`) instead of its value: for plans, diffs and anything else shown
/// to a person or a log. Serialization is synchronous, so the scope is this call on this thread.
///
/// ```
/// use kubecloud_core::{SecretString, secret::redacted};
/// #[derive(serde::Serialize)]
/// struct Peer { password: Vec<Option<SecretString>> }
/// let peer = Peer { password: vec![Some(SecretString::new("hunter2"))] };
/// let shown = redacted(|| serde_json::to_string(&peer)).unwrap();
/// assert!(shown.contains("[redacted ") && !shown.contains("hunter2"));
/// // Outside the scope, the value is written (a spec file must carry it).
/// assert!(serde_json::to_string(&peer).unwrap().contains("hunter2"));
/// ```
pub fn redacted<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REDACTING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(REDACTING.with(|r| r.replace(true)));
    f()
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REDACTING.with(Cell::get) {
            serializer.serialize_str(&self.marker())
        } else {
            serializer.serialize_str(&self.0)
        }
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({})", self.marker())
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.marker())
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
        assert!(shown.contains(&secret.fingerprint()), "{shown}");
    }

    #[test]
    fn a_rotation_changes_the_fingerprint() {
        let old = SecretString::new("old-password");
        let new = SecretString::new("new-password");
        assert_ne!(old.fingerprint(), new.fingerprint());
        assert_eq!(old.fingerprint(), old.clone().fingerprint());
    }

    #[test]
    fn redaction_reaches_any_depth_and_ends_with_its_scope() {
        let nested = serde_json::json!({"a": [{"b": null}]});
        let deep = vec![vec![Some(SecretString::new("deep-secret"))]];
        let shown = redacted(|| serde_json::to_value((&nested, &deep))).unwrap();
        assert!(!shown.to_string().contains("deep-secret"), "{shown}");
        assert!(shown.to_string().contains("[redacted "), "{shown}");
        let plain = serde_json::to_value(&deep).unwrap();
        assert_eq!(
            plain[0][0], "deep-secret",
            "outside the scope the value is written"
        );
    }

    #[test]
    fn a_panic_inside_the_scope_ends_it() {
        let caught = std::panic::catch_unwind(|| redacted(|| panic!("boom")));
        assert!(caught.is_err());
        let plain = serde_json::to_value(SecretString::new("v")).unwrap();
        assert_eq!(plain, "v");
    }
}
