//! Events as client-go's event recorder writes them: one `Event` per object, reason and message
//! (named `<object>.<16 hex digits>`), its `count` and `lastTimestamp` bumped when the same
//! event repeats (client-go's `EventCorrelator` aggregation, simplified to exact repeats).

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::controllers::ControllerError;

/// `Normal` or `Warning`.
pub(crate) const NORMAL: &str = "Normal";
pub(crate) const WARNING: &str = "Warning";

/// Records `reason`/`message` about `object` (its `apiVersion`, `kind` and metadata are read)
/// from `component`.
pub(crate) fn record(
    api: &Cluster,
    object: &Value,
    kind_of_event: &str,
    reason: &str,
    message: &str,
    component: &str,
) -> Result<(), ControllerError> {
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{uid}/{reason}/{message}").as_bytes());
    let suffix: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let event_name = format!("{name}.{suffix}");
    let now = crate::meta::now();
    if let Some(mut existing) = api.get_opt("v1", "Event", Some(ns), &event_name)? {
        let count = existing["count"].as_i64().unwrap_or(1) + 1;
        existing["count"] = json!(count);
        existing["lastTimestamp"] = json!(now);
        api.replace(existing)?;
        return Ok(());
    }
    let mut involved = json!({
        "apiVersion": object["apiVersion"], "kind": object["kind"],
        "namespace": object["metadata"]["namespace"], "name": name, "uid": uid,
        "resourceVersion": object["metadata"]["resourceVersion"],
    });
    if let Some(m) = involved.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    api.create(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name, "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": kind_of_event,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }))?;
    Ok(())
}
