//! The one mapping from LINSTOR answers (`ApiCallRc` lists, HTTP statuses, transport failures) to
//! [`kubecloud_core::Error`], keeping LINSTOR's message, cause and details.
//!
//! `ret_code` is a signed 64-bit field: the two top bits are the type (11 error, 10 warning,
//! 01 info, 00 success), bits `0x0300_0000` the operation, bits `0x007C_0000` the object and the
//! low 15 bits the code (`shared/upstream/linstor/NOTES.md`). An answer is a failure when any
//! entry's type is *error*; warnings and infos ride along with successes.

use std::fmt;

use kubecloud_core::{Error, ResourceKind};
use serde::{Deserialize, Serialize};

use super::BACKEND;

/// One entry of an `ApiCallRc` list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCallRc {
    /// The masked return code.
    pub ret_code: i64,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// Why it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// More detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<String>,
    /// Error report ids on the controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_report_ids: Vec<String>,
}

const TYPE_MASK: u64 = 0xC000_0000_0000_0000;
const TYPE_ERROR: u64 = 0xC000_0000_0000_0000;
const TYPE_WARN: u64 = 0x8000_0000_0000_0000;
const CODE_MASK: u64 = 0x7FFF;

/// LINSTOR return codes this crate acts on.
pub mod codes {
    /// `FAIL_INVLD_VLM_SIZE`.
    pub const INVLD_VLM_SIZE: u64 = 206;
    /// `FAIL_INVLD_PLACE_COUNT`.
    pub const INVLD_PLACE_COUNT: u64 = 219;
    /// `FAIL_NOT_FOUND_NODE`.
    pub const NOT_FOUND_NODE: u64 = 300;
    /// `FAIL_NOT_FOUND_RSC_DFN`.
    pub const NOT_FOUND_RSC_DFN: u64 = 301;
    /// `FAIL_NOT_FOUND_STOR_POOL`.
    pub const NOT_FOUND_STOR_POOL: u64 = 310;
    /// `FAIL_NOT_FOUND_SNAPSHOT_DFN`.
    pub const NOT_FOUND_SNAPSHOT_DFN: u64 = 313;
    /// `FAIL_NOT_FOUND_RSC_GRP`.
    pub const NOT_FOUND_RSC_GRP: u64 = 317;
    /// `FAIL_EXISTS_RSC_DFN`.
    pub const EXISTS_RSC_DFN: u64 = 501;
    /// `FAIL_EXISTS_SNAPSHOT_DFN`.
    pub const EXISTS_SNAPSHOT_DFN: u64 = 514;
    /// `FAIL_EXISTS_RSC_GRP`.
    pub const EXISTS_RSC_GRP: u64 = 522;
    /// `FAIL_NOT_ENOUGH_FREE_SPACE`.
    pub const NOT_ENOUGH_FREE_SPACE: u64 = 980;
    /// `FAIL_RSC_BUSY`.
    pub const RSC_BUSY: u64 = 992;
    /// `FAIL_NOT_CONNECTED`.
    pub const NOT_CONNECTED: u64 = 995;
    /// `FAIL_NOT_ENOUGH_NODES`.
    pub const NOT_ENOUGH_NODES: u64 = 996;
    /// `FAIL_IN_USE`.
    pub const IN_USE: u64 = 997;
    /// `FAIL_UNKNOWN_ERROR`.
    pub const UNKNOWN_ERROR: u64 = 998;
    /// `FAIL_IMPL_ERROR`.
    pub const IMPL_ERROR: u64 = 999;
}

impl ApiCallRc {
    fn bits(&self) -> u64 {
        self.ret_code as u64
    }

    /// Whether the entry reports an error (type bits 11; warnings have only the top bit).
    pub fn is_error(&self) -> bool {
        self.bits() & TYPE_MASK == TYPE_ERROR
    }

    /// Whether the entry is a warning.
    pub fn is_warning(&self) -> bool {
        self.bits() & TYPE_MASK == TYPE_WARN
    }

    /// The 15-bit code.
    pub fn code(&self) -> u64 {
        self.bits() & CODE_MASK
    }
}

/// LINSTOR's own account of a failure, kept as the `source()` of the core error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinstorError {
    /// The HTTP status.
    pub status: u16,
    /// The entries of the answer (errors first).
    pub entries: Vec<ApiCallRc>,
}

impl fmt::Display for LinstorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LINSTOR answered {}", self.status)?;
        for e in self.entries.iter().filter(|e| e.is_error()) {
            write!(f, "; {} (code {})", e.message, e.code())?;
            if let Some(c) = &e.cause {
                write!(f, "; cause: {c}")?;
            }
            if let Some(d) = &e.details {
                write!(f, "; details: {d}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for LinstorError {}

/// What a request was about, for the error.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The kind of domain resource.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
}

impl Subject {
    /// A subject.
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

/// The first error entry of `entries`, if any.
pub fn first_error(entries: &[ApiCallRc]) -> Option<&ApiCallRc> {
    entries.iter().find(|e| e.is_error())
}

/// Maps a failed answer (HTTP `status`, its `ApiCallRc` entries) about `subject` to a core error.
///
/// - 300-399 (`FAIL_NOT_FOUND_*`): not found; the object comes from the code (snapshot, storage pool
///   or resource group → storage pool, else the subject's kind);
/// - 500-599 (`FAIL_EXISTS_*`): already exists;
/// - `FAIL_NOT_ENOUGH_NODES`, `FAIL_NOT_ENOUGH_FREE_SPACE`, 800-899 (number pools): exhausted;
/// - `FAIL_IN_USE`, `FAIL_RSC_BUSY`: conflict;
/// - 200-299 (`FAIL_INVLD_*`): invalid input, naming `size` or `replicas` where the code says so;
/// - 400-499 and sign-in failures: permanent backend error (access denied);
/// - `FAIL_NOT_CONNECTED`, `FAIL_UNKNOWN_ERROR`, `FAIL_IMPL_ERROR`, SQL failures (100-199), and any
///   5xx/429 without a recognised entry: temporary backend error (retry);
/// - anything else: permanent backend error.
///
/// The reasons carry LINSTOR's message; the whole answer stays in `source()`.
pub fn from_answer(status: u16, entries: Vec<ApiCallRc>, subject: &Subject) -> Error {
    let source = LinstorError { status, entries };
    let Some(rc) = first_error(&source.entries).cloned() else {
        let temporary = status == 429 || status >= 500;
        return Error::backend(
            BACKEND,
            format!(
                "LINSTOR answered {status} for {} {:?}",
                subject.kind, subject.name
            ),
            temporary,
            source,
        );
    };
    let reason = match &rc.cause {
        Some(cause) if !cause.is_empty() => format!("{} ({cause})", rc.message),
        _ => rc.message.clone(),
    };
    let kind_of_code = |code: u64| match code {
        codes::NOT_FOUND_SNAPSHOT_DFN | 314 | 315 => ResourceKind::Snapshot,
        309 | codes::NOT_FOUND_STOR_POOL | 311 | codes::NOT_FOUND_RSC_GRP => {
            ResourceKind::StoragePool
        }
        codes::NOT_FOUND_NODE => ResourceKind::Node,
        _ => subject.kind,
    };
    match rc.code() {
        code @ 300..=399 => Error::not_found(kind_of_code(code), &subject.name),
        codes::EXISTS_SNAPSHOT_DFN | 516 => {
            Error::already_exists(ResourceKind::Snapshot, &subject.name)
        }
        500..=599 => Error::already_exists(subject.kind, &subject.name),
        codes::NOT_ENOUGH_NODES | codes::NOT_ENOUGH_FREE_SPACE | 800..=899 => {
            let details = rc
                .details
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            Error::exhausted(
                ResourceKind::StoragePool,
                &subject.name,
                format!("{reason}{details}"),
            )
        }
        codes::IN_USE | codes::RSC_BUSY => Error::conflict(subject.kind, &subject.name, reason),
        codes::INVLD_VLM_SIZE => Error::invalid("size", reason),
        codes::INVLD_PLACE_COUNT => Error::invalid("replicas", reason),
        200..=299 => Error::invalid("spec", reason),
        400..=499 => Error::backend(BACKEND, format!("access denied: {reason}"), false, source),
        100..=199 | codes::NOT_CONNECTED | codes::UNKNOWN_ERROR | codes::IMPL_ERROR => {
            Error::backend(BACKEND, reason, true, source)
        }
        _ => Error::backend(BACKEND, reason, false, source),
    }
}

/// The TLS failure somewhere in `err`'s chain of causes, if any (`io::Error`'s `source()` skips
/// the error it wraps, so its `get_ref()` is followed instead).
fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => e.source(),
        };
    }
    None
}

/// Maps a transport failure (connect, TLS, timeout, a connection closed mid-answer, a body that is
/// not JSON) to a core error: everything but a bad body or a bad request is temporary.
///
/// A TLS failure is permanent (retrying cannot fix a certificate): the controller's certificate
/// failing verification (wrong or missing CA, wrong name, expired) says "certificate
/// verification failed"; other TLS errors (the controller refusing the client certificate, say)
/// say "TLS handshake failed". The rustls error stays in `source()`.
pub fn from_transport(err: reqwest::Error, subject: &Subject) -> Error {
    if let Some(tls) = tls_failure(&err) {
        let what = match tls {
            rustls::Error::InvalidCertificate(_) => {
                "TLS certificate verification of the LINSTOR controller failed"
            }
            _ => "TLS handshake with the LINSTOR controller failed",
        };
        return Error::backend(
            BACKEND,
            format!(
                "{what} ({tls}) for {} {:?}; give the CA that signed its certificate with tls()/ca()",
                subject.kind, subject.name
            ),
            false,
            err,
        );
    }
    let temporary = err.is_timeout() || err.is_connect() || err.is_request() || err.is_body();
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_decode() {
        "sent an answer that could not be read"
    } else {
        "failed"
    };
    Error::backend(
        BACKEND,
        format!(
            "LINSTOR request for {} {:?} {what}",
            subject.kind, subject.name
        ),
        temporary,
        err,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(bits: u64, message: &str) -> ApiCallRc {
        ApiCallRc {
            ret_code: bits as i64,
            message: message.into(),
            ..ApiCallRc::default()
        }
    }

    const ERR: u64 = 0xC000_0000_0000_0000;
    const WARN: u64 = 0x8000_0000_0000_0000;

    #[test]
    fn warnings_are_not_errors_though_bit_63_is_set() {
        let warn = rc(WARN | 3000, "not found, nothing to delete");
        assert!(warn.is_warning() && !warn.is_error());
        assert!(warn.ret_code < 0, "warnings are negative on the wire");
        assert!(first_error(&[warn]).is_none());
    }

    #[test]
    fn codes_map_to_meaningful_errors_keeping_the_message() {
        let vol = Subject::new(ResourceKind::Volume, "data");
        let e = from_answer(
            500,
            vec![rc(ERR | 0x38_0000 | 996, "Not enough available nodes")],
            &vol,
        );
        assert!(
            matches!(&e, Error::Exhausted { reason, .. } if reason.contains("Not enough available nodes"))
        );
        let e = from_answer(
            404,
            vec![rc(ERR | 313, "Snapshot not found")],
            &Subject::new(ResourceKind::Volume, "s"),
        );
        assert!(matches!(
            e,
            Error::NotFound {
                kind: ResourceKind::Snapshot,
                ..
            }
        ));
        let e = from_answer(404, vec![rc(ERR | 317, "Resource group not found")], &vol);
        assert!(matches!(
            e,
            Error::NotFound {
                kind: ResourceKind::StoragePool,
                ..
            }
        ));
        let e = from_answer(500, vec![rc(ERR | 501, "exists")], &vol);
        assert!(e.is_already_exists());
        let e = from_answer(500, vec![rc(ERR | 997, "in use")], &vol);
        assert!(matches!(e, Error::Conflict { .. }));
        let e = from_answer(500, vec![rc(ERR | 206, "Deflating is not supported")], &vol);
        assert_eq!(e.invalid_field(), Some("size"));
        let e = from_answer(500, vec![rc(ERR | 998, "unknown")], &vol);
        assert!(e.is_temporary());
        let e = from_answer(403, vec![rc(ERR | 401, "denied")], &vol);
        assert!(!e.is_temporary());
        let e = from_answer(503, vec![], &vol);
        assert!(
            e.is_temporary(),
            "a proxy's 503 without entries is temporary"
        );
        let source =
            std::error::Error::source(&from_answer(500, vec![rc(ERR | 998, "boom")], &vol))
                .expect("source kept")
                .to_string();
        assert!(source.contains("boom"));
    }
}
