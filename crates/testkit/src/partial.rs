//! Metadata-only answers: `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
//! on a list (what client-go's metadata client and kube's `Api::list_metadata` send) and
//! `as=PartialObjectMetadata` on a get or a watch, answered as kube-apiserver answers them:
//! objects reduced to `kind`, `apiVersion` (`meta.k8s.io/v1`) and `metadata`, in a
//! `PartialObjectMetadataList` for a list. As on the real server, asking a list for single
//! objects (or a get for a list) is 406 `NotAcceptable`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::status::ApiError;

/// What the first JSON media range of `accept` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Partial {
    /// `as=PartialObjectMetadata`.
    Object,
    /// `as=PartialObjectMetadataList`.
    List,
}

/// `Some` when the first JSON media range of `accept` asks for metadata only (`meta.k8s.io`,
/// `v1` or `v1beta1`).
pub(crate) fn wanted(accept: &str) -> Option<Partial> {
    let range = accept
        .split(',')
        .map(|r| r.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .find(|r| r.starts_with("application/json") || r.starts_with("*/*"))?;
    let params: Vec<&str> = range.split(';').skip(1).collect();
    if !params.contains(&"g=meta.k8s.io")
        || !(params.contains(&"v=v1") || params.contains(&"v=v1beta1"))
    {
        return None;
    }
    if params.contains(&"as=PartialObjectMetadataList") {
        Some(Partial::List)
    } else if params.contains(&"as=PartialObjectMetadata") {
        Some(Partial::Object)
    } else {
        None
    }
}

/// The refusal of a list asked for single objects, or of a get or watch asked for a list.
pub(crate) fn mismatch(asked: Partial) -> ApiError {
    let (asked, fits) = match asked {
        Partial::List => ("PartialObjectMetadataList", "a list"),
        Partial::Object => ("PartialObjectMetadata", "a single object or a watch"),
    };
    ApiError::new(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json (as={asked} answers {fits} only)"
        ),
    )
}

/// One object reduced to its metadata.
pub(crate) fn object(full: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": full.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list's items reduced to their metadata, with the list's own metadata.
pub(crate) fn list(full: &Value) -> Value {
    let items: Vec<Value> = full
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(object).collect())
        .unwrap_or_default();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": full.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": items,
    })
}

/// One watch frame with its object reduced to metadata; `ERROR` and `BOOKMARK` frames pass
/// unchanged (a bookmark's object carries only metadata already).
pub(crate) fn watch_frame(frame: Bytes) -> Bytes {
    let Ok(mut event) = serde_json::from_slice::<Value>(&frame) else {
        return frame;
    };
    if matches!(event["type"].as_str(), Some("ERROR" | "BOOKMARK") | None) {
        return frame;
    }
    event["object"] = object(&event["object"]);
    let mut line = event.to_string();
    line.push('\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::{Partial, list, wanted};
    use serde_json::json;

    #[test]
    fn the_first_json_range_decides() {
        assert_eq!(
            wanted("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Some(Partial::List)
        );
        assert_eq!(
            wanted(
                "application/json; as=PartialObjectMetadata; g=meta.k8s.io; v=v1, application/json"
            ),
            Some(Partial::Object)
        );
        assert_eq!(wanted("application/json"), None);
        assert_eq!(
            wanted("application/json;as=PartialObjectMetadata;v=v1"),
            None
        );
        assert_eq!(
            wanted("application/json;as=Table;g=meta.k8s.io;v=v1"),
            None,
            "a Table is not metadata"
        );
    }

    #[test]
    fn a_list_keeps_only_metadata_and_the_revision() {
        let full = json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a", "labels": {"x": "y"}},
                       "spec": {"containers": []}, "status": {"phase": "Running"}}],
        });
        let partial = list(&full);
        assert_eq!(partial["kind"], "PartialObjectMetadataList");
        assert_eq!(partial["metadata"]["resourceVersion"], "7");
        assert_eq!(
            partial["items"][0],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "a", "labels": {"x": "y"}}})
        );
    }
}
