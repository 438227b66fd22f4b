//! `Status` bodies: the errors the double answers with, worded as kube-apiserver words them.

use serde_json::{Value, json};
use std::fmt;

use crate::schema::{FieldError, FieldErrorKind, ResourceType};

/// An API error, as the double sends it: an HTTP status code and a `meta.k8s.io/v1` `Status` body.
///
/// The in-process [`Cluster`](crate::Cluster) handle returns the same errors the HTTP layer
/// would serialise, so a simulated controller sees exactly what a client would.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code (404, 409, 422, ...).
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: String,
    /// `Status.message`, worded like kube-apiserver's.
    pub message: String,
    /// `Status.details`, or `Value::Null` when there are none.
    pub details: Value,
    /// Seconds for a `Retry-After` header (and `details.retryAfterSeconds`), if any.
    pub retry_after: Option<u32>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `resource.group` as kube-apiserver prints it (`virtualmachines.kubevirt.io`, `services`).
pub(crate) fn qualified_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// `Kind.group` as kube-apiserver prints it in Invalid errors (`VirtualMachine.kubevirt.io`).
pub(crate) fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

impl ApiError {
    /// A bare error with a code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    /// The `Status` object sent as the response body (and in watch `ERROR` events).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }

    /// True for 404.
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    /// True for 409 (AlreadyExists or Conflict).
    pub fn is_conflict(&self) -> bool {
        self.code == 409
    }

    /// 404 `<resource>.<group> "<name>" not found`.
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: json!({"name": name, "group": group, "kind": plural}),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified_resource(group, plural)),
            )
        }
    }

    /// 409 `<resource>.<group> "<name>" already exists`.
    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError {
            details: json!({"name": name, "group": group, "kind": plural}),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!(
                    "{} \"{name}\" already exists",
                    qualified_resource(group, plural)
                ),
            )
        }
    }

    /// 409 Conflict on a stale resourceVersion (optimistic concurrency).
    pub(crate) fn conflict(group: &str, plural: &str, name: &str, detail: &str) -> Self {
        ApiError {
            details: json!({"name": name, "group": group, "kind": plural}),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                    qualified_resource(group, plural)
                ),
            )
        }
    }

    /// The usual optimistic-concurrency conflict.
    pub(crate) fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with one cause per field error.
    pub(crate) fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors.iter().map(cause_of).collect();
        let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        ApiError {
            details: json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
            ..ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: {list}",
                    qualified_kind(&rt.group, &rt.kind)
                ),
            )
        }
    }

    /// 422 Invalid built from (field, cause reason, message-without-field) triples.
    pub(crate) fn invalid_fields(
        group: &str,
        kind: &str,
        name: &str,
        fields: &[(String, &str, String)],
    ) -> Self {
        let causes: Vec<Value> = fields
            .iter()
            .map(|(field, reason, msg)| json!({"reason": reason, "message": msg, "field": field}))
            .collect();
        let rendered: Vec<String> = fields.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        ApiError {
            details: json!({"name": name, "group": group, "kind": kind, "causes": causes}),
            ..ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: {list}",
                    qualified_kind(group, kind)
                ),
            )
        }
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 403 Forbidden (used for creating in a terminating namespace).
    pub(crate) fn namespace_terminating(
        group: &str,
        plural: &str,
        name: &str,
        namespace: &str,
    ) -> Self {
        ApiError {
            details: json!({
                "name": name, "group": group, "kind": plural,
                "causes": [{"reason": "NamespaceTerminating",
                            "message": format!("namespace {namespace} is being terminated"),
                            "field": "metadata.namespace"}]
            }),
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    qualified_resource(group, plural)
                ),
            )
        }
    }

    /// 403 Forbidden from an admission plugin (`admission.NewForbidden`):
    /// `<resource> "<name>" is forbidden: <message>`.
    pub(crate) fn forbidden(group: &str, plural: &str, name: &str, message: String) -> Self {
        let resource = qualified_resource(group, plural);
        let text = if name.is_empty() {
            format!("{resource} is forbidden: {message}")
        } else {
            format!("{resource} \"{name}\" is forbidden: {message}")
        };
        ApiError {
            details: json!({"name": name, "group": group, "kind": plural}),
            ..ApiError::new(403, "Forbidden", text)
        }
    }

    /// 405 MethodNotAllowed.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 415 UnsupportedMediaType, as answered for strategic merge patches on custom resources.
    pub(crate) fn unsupported_patch(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml \
                 (got {content_type})"
            ),
        )
    }

    /// 410 Expired: a watch or continue token older than the retained history.
    pub(crate) fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 500 InternalError.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError {
            details: json!({"causes": [{"message": message.into()}]}),
            ..ApiError::new(
                500,
                "InternalError",
                "an error on the server has prevented the request from succeeding",
            )
        }
    }
}

/// `details.causes[]` entry for one schema error, as kube-apiserver builds it from a field.Error.
fn cause_of(e: &FieldError) -> Value {
    let full = e.to_string();
    let message = full
        .strip_prefix(&format!("{}: ", e.path))
        .unwrap_or(&full)
        .to_string();
    let reason = match e.kind {
        FieldErrorKind::Required => "FieldValueRequired",
        FieldErrorKind::Unknown => "FieldValueInvalid",
        FieldErrorKind::Invalid if message.starts_with("Unsupported value") => {
            "FieldValueNotSupported"
        }
        FieldErrorKind::Invalid if message.starts_with("Duplicate value") => "FieldValueDuplicate",
        FieldErrorKind::Invalid if message.starts_with("Too long") => "FieldValueTooLong",
        FieldErrorKind::Invalid if message.starts_with("Too many") => "FieldValueTooMany",
        FieldErrorKind::Invalid if message.starts_with("Forbidden") => "FieldValueForbidden",
        _ => "FieldValueInvalid",
    };
    json!({"reason": reason, "message": message, "field": e.path})
}
