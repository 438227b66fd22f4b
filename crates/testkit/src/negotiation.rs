//! Content negotiation on `Accept`: the double answers JSON only, so a request that accepts
//! nothing JSON-compatible (protobuf only, YAML only) gets 406 `NotAcceptable`, as kube-apiserver
//! answers a media type it cannot serve. Requests that list JSON among others (kubectl's
//! `application/json;as=Table;...,application/json`, client-go's
//! `application/vnd.kubernetes.protobuf, application/json`) get JSON.

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

#[cfg(test)]
mod tests {
    use super::check;

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
