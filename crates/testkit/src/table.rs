//! Server-side printing: `meta.k8s.io/v1` `Table` answers to `get`, `list` and `watch` requests
//! whose `Accept` prefers `as=Table` (what `kubectl get` sends), as kube-apiserver answers them.
//!
//! Columns: `Name`, then a custom resource version's `additionalPrinterColumns` (JSONPath subset:
//! fields, `[n]` indexes and `[?(@.field=='value')]` filters, which is all the upstream CRDs use),
//! or `Age` when it has none. Built-in kinds get `Name` and `Age` (kube-apiserver has a printer
//! per built-in kind with more columns; the double does not).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::schema::ResourceType;

/// One column of a custom resource version's `additionalPrinterColumns`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PrinterColumn {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    json_path: String,
}

impl PrinterColumn {
    /// The columns of one entry of a CRD's `spec.versions`.
    pub(crate) fn of_crd_version(version: &Value) -> Vec<PrinterColumn> {
        let Some(columns) = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        let text =
            |c: &Value, key: &str| c.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        columns
            .iter()
            .map(|c| PrinterColumn {
                name: text(c, "name"),
                kind: text(c, "type"),
                format: text(c, "format"),
                description: text(c, "description"),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                json_path: text(c, "jsonPath"),
            })
            .collect()
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name, "type": self.kind, "format": self.format,
            "description": self.description, "priority": self.priority,
        })
    }

    fn cell(&self, object: &Value, now: jiff::Timestamp) -> Value {
        let Some(value) = find(object, &self.json_path) else {
            return Value::Null;
        };
        match (self.kind.as_str(), value) {
            ("string", Value::String(s)) => Value::String(s.clone()),
            ("string", other) => Value::String(other.to_string()),
            ("integer", v) if v.is_i64() || v.is_u64() => v.clone(),
            ("number", v) if v.is_number() => v.clone(),
            ("boolean", v) if v.is_boolean() => v.clone(),
            ("date", Value::String(s)) => Value::String(age(s, now)),
            _ => Value::Null,
        }
    }
}

/// Whether the first JSON media range of `accept` asks for a `meta.k8s.io` `Table`.
pub(crate) fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .map(|r| r.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .find(|r| r.starts_with("application/json") || r.starts_with("*/*"))
        .is_some_and(|r| {
            let params: Vec<&str> = r.split(';').skip(1).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && (params.contains(&"v=v1") || params.contains(&"v=v1beta1"))
        })
}

fn name_column() -> Value {
    json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    })
}

fn age_column() -> PrinterColumn {
    PrinterColumn {
        name: "Age".into(),
        kind: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }
}

fn columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    if rt.printer_columns.is_empty() {
        vec![age_column()]
    } else {
        rt.printer_columns.clone()
    }
}

/// The `object` of a row: per `includeObject` (`None`, `Object`, default `Metadata`).
fn row_object(object: &Value, include: Option<&str>) -> Option<Value> {
    match include {
        Some("None") => None,
        Some("Object") => Some(object.clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

/// A `Table` of `objects` (one object, or a list's items) with the list's `metadata`.
pub(crate) fn table(
    rt: &ResourceType,
    objects: &[Value],
    list_meta: Value,
    include: Option<&str>,
) -> Value {
    let now = jiff::Timestamp::now();
    let cols = columns(rt);
    let mut defs = vec![name_column()];
    defs.extend(cols.iter().map(PrinterColumn::definition));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(cols.iter().map(|c| c.cell(o, now)));
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(obj) = row_object(o, include) {
                row.insert("object".into(), obj);
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": defs, "rows": rows,
    })
}

/// A `get` or `list` answer as a `Table`.
pub(crate) fn from_answer(rt: &ResourceType, answer: &Value, include: Option<&str>) -> Value {
    match answer.get("items").and_then(Value::as_array) {
        Some(items) => table(
            rt,
            items,
            answer.get("metadata").cloned().unwrap_or_else(|| json!({})),
            include,
        ),
        None => {
            let rv = &answer["metadata"]["resourceVersion"];
            table(
                rt,
                std::slice::from_ref(answer),
                json!({"resourceVersion": rv}),
                include,
            )
        }
    }
}

/// One watch frame (`{"type", "object"}` JSON line) with its object as a one-row `Table`;
/// `ERROR` and `BOOKMARK` frames pass unchanged.
pub(crate) fn watch_frame(rt: &ResourceType, frame: Bytes, include: Option<&str>) -> Bytes {
    let Ok(mut event) = serde_json::from_slice::<Value>(&frame) else {
        return frame;
    };
    if matches!(event["type"].as_str(), Some("ERROR" | "BOOKMARK") | None) {
        return frame;
    }
    let object = event["object"].take();
    let rv = object["metadata"]["resourceVersion"].clone();
    event["object"] = table(
        rt,
        std::slice::from_ref(&object),
        json!({"resourceVersion": rv}),
        include,
    );
    let mut line = event.to_string();
    line.push('\n');
    Bytes::from(line)
}

/// `kubectl`'s human-readable age of an RFC 3339 timestamp (apimachinery's `HumanDuration`).
fn age(timestamp: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = timestamp.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    let secs = now.as_second() - t.as_second();
    human_duration(secs)
}

fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if minutes < 10 {
        return with(minutes, "m", secs % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

/// The first value at a printer column's JSONPath (`.a.b`, `.a[0].b`,
/// `.a[?(@.type=='Ready')].status`).
fn find<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            current = current.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items = current.as_array()?;
            current = if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(['\'', '"']);
                items
                    .iter()
                    .find(|i| i.get(field.trim()).and_then(Value::as_str) == Some(want))?
            } else {
                items.get(inner.trim().parse::<usize>().ok()?)?
            };
        } else {
            return None;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_indexes_and_filters() {
        let o = json!({"status": {"ready": true, "interfaces": [{"ipAddress": "10.0.0.5"}],
            "conditions": [{"type": "Paused", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(find(&o, ".status.ready"), Some(&json!(true)));
        assert_eq!(
            find(&o, ".status.interfaces[0].ipAddress"),
            Some(&json!("10.0.0.5"))
        );
        assert_eq!(
            find(&o, ".status.conditions[?(@.type=='Ready')].status"),
            Some(&json!("True"))
        );
        assert_eq!(find(&o, ".status.missing"), None);
        assert_eq!(find(&o, ".status.interfaces[3].ipAddress"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(""));
    }

    #[test]
    fn virtual_machines_print_their_status() {
        let catalog = crate::schema::Catalog::upstream().expect("catalog");
        let rt = catalog
            .by_kind("kubevirt.io/v1", "VirtualMachine")
            .expect("VM");
        let vm = json!({"metadata": {"name": "vm1", "creationTimestamp": "2020-01-01T00:00:00Z", "resourceVersion": "7"},
            "status": {"printableStatus": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let t = from_answer(rt, &vm, None);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names[..4], ["Name", "Age", "Status", "Ready"]);
        assert_eq!(t["rows"][0]["cells"][0], "vm1");
        assert_eq!(t["rows"][0]["cells"][2], "Running");
        assert_eq!(t["rows"][0]["cells"][3], "True");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
