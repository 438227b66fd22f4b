//! The one mapping from `kube::Error` (status codes and `Status` bodies) to
//! [`kubecloud_core::Error`].

use kubecloud_core::{Error, ResourceKind};

/// Maps a Kubernetes API error about the object `name` of `kind` to a core error:
/// 404 → not found, 409 `AlreadyExists` → already exists, 409 `Conflict` (a stale
/// resourceVersion or an apply conflict) → temporary backend error (re-read and retry),
/// 422 → invalid input naming the field the server named, 429/5xx and transport failures →
/// temporary backend errors, everything else → permanent backend errors. The server's message
/// stays in `source()`.
pub fn from_kube(backend: &str, kind: ResourceKind, name: &str, err: kube::Error) -> Error {
    match &err {
        kube::Error::Api(status) => {
            let code = status.code;
            let reason = status.reason.clone();
            match (code, reason.as_str()) {
                (404, _) => Error::not_found(kind, name),
                (403, "Forbidden") => match crate::quota::exceeded(&status.message) {
                    // The tenant is the request's namespace; the writer fills it in
                    // (`in_namespace`), the message does not carry it.
                    Some((resource, requested, used, limit)) => Error::QuotaExceeded {
                        tenant: String::new(),
                        resource,
                        limit,
                        used,
                        requested,
                    },
                    None => Error::backend(
                        backend,
                        format!("API server answered {code} for {kind} {name:?}"),
                        false,
                        err,
                    ),
                },
                (409, "AlreadyExists") => Error::already_exists(kind, name),
                (409, _) => Error::backend(
                    backend,
                    format!("conflict writing {kind} {name:?}"),
                    true,
                    err,
                ),
                (422, _) | (400, "BadRequest") => {
                    let field = status
                        .details
                        .as_ref()
                        .and_then(|d| d.causes.first())
                        .map(|c| c.field.clone())
                        .filter(|f| !f.is_empty())
                        .unwrap_or_else(|| "spec".to_string());
                    let message = status.message.clone();
                    Error::invalid(field, format!("refused by the API server: {message}"))
                }
                (429, _) | (500..=599, _) => Error::backend(
                    backend,
                    format!("API server answered {code} for {kind} {name:?}"),
                    true,
                    err,
                ),
                _ => Error::backend(
                    backend,
                    format!("API server answered {code} for {kind} {name:?}"),
                    false,
                    err,
                ),
            }
        }
        kube::Error::SerdeError(e) => {
            Error::backend(backend, format!("reading {kind} {name:?}: {e}"), false, err)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => {
            Error::backend(
                backend,
                format!("transport failure for {kind} {name:?}"),
                true,
                err,
            )
        }
        _ => Error::backend(
            backend,
            format!("client failure for {kind} {name:?}"),
            false,
            err,
        ),
    }
}

/// Names the tenant of an [`Error::QuotaExceeded`] mapped by [`from_kube`] after a write into
/// `namespace` (a tenant's namespace is named after it); other errors pass through.
pub fn in_namespace(err: Error, namespace: Option<&str>) -> Error {
    match (err, namespace) {
        (
            Error::QuotaExceeded {
                tenant,
                resource,
                limit,
                used,
                requested,
            },
            Some(ns),
        ) if tenant.is_empty() => Error::QuotaExceeded {
            tenant: ns.to_string(),
            resource,
            limit,
            used,
            requested,
        },
        (err, _) => err,
    }
}

/// Whether a `Status` answer means "gone" (404), for deletes that should be idempotent.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}
