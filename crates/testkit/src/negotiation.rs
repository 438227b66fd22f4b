//! Content negotiation on `Accept`: the double answers JSON only, so a request that accepts
//! nothing JSON-compatible (protobuf only, YAML only) gets 406 `NotAcceptable`, as kube-apiserver
//! answers a media type it cannot serve. Requests that list JSON among others (kubectl's
//! `application/json;as=Table;...,application/json`, client-go's
//! `application/vnd.kubernetes.protobuf, application/json`) get JSON.
//!
//! Request bodies (`POST`, `PUT`) must be JSON, or protobuf of the kinds the `protobuf` module
//! decodes (what `kubectl create namespace|configmap|secret` send), which the server turns into
//! JSON first; anything else is 415 `UnsupportedMediaType`, as kube-apiserver answers a format it
//! cannot decode.

use crate::status::ApiError;

/// Whether one media range of an `Accept` header is answered with JSON.
fn json_compatible(range: &str) -> bool {
    let media = range
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        media.as_str(),
        "" | "*/*" | "application/*" | "application/json"
    )
}

/// `Ok` when the response (JSON) is acceptable to a client sending `accept`; an absent or empty
/// header accepts anything.
pub(crate) fn check(accept: &str) -> Result<(), ApiError> {
    if accept.trim().is_empty() || accept.split(',').any(json_compatible) {
        return Ok(());
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    ))
}

/// `Ok` when a `POST`/`PUT` body of `content_type` can be decoded (JSON, or no type given).
pub(crate) fn check_body(content_type: &str) -> Result<(), ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.is_empty() || media.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json (got {media}: the API server double decodes JSON only)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::{check, check_body};

    #[test]
    fn bodies_must_be_json() {
        assert!(check_body("").is_ok());
        assert!(check_body("application/json; charset=utf-8").is_ok());
        let e = check_body("application/vnd.kubernetes.protobuf").expect_err("protobuf");
        assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
    }

    #[test]
    fn json_among_others_is_served() {
        for accept in [
            "",
            "*/*",
            "application/json",
            "application/vnd.kubernetes.protobuf, application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ] {
            assert!(check(accept).is_ok(), "{accept}");
        }
    }

    #[test]
    fn protobuf_or_yaml_only_is_not_acceptable() {
        for accept in [
            "application/vnd.kubernetes.protobuf",
            "application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
            "application/yaml",
        ] {
            let e = check(accept).expect_err(accept);
            assert_eq!((e.code, e.reason.as_str()), (406, "NotAcceptable"));
        }
    }
}
