//! Field paths and sets, and their `fieldsV1` encoding.
//!
//! A set holds the paths a manager owns: leaves (scalars, atomic lists, empty maps) and, for
//! associative lists, the list items themselves. `fieldsV1` encodes it as a tree of
//! `f:<field>`, `k:<key json>`, `v:<value json>` and `i:<index>` entries, with `"."` marking a
//! node that is a member of the set and also has members below it.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElem {
    /// A field of a map (`f:name`).
    Field(String),
    /// An item of an associative list, by its key fields as canonical JSON (`k:{"name":"a"}`).
    Key(String),
    /// An item of a set list, by its value as JSON (`v:"a"`).
    Value(String),
    /// An item of a list by position (`i:0`), only read from foreign `fieldsV1`.
    Index(usize),
}

/// A path from the object root.
pub(crate) type Path = Vec<PathElem>;

/// How a list is merged and owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced and owned as a whole (the default for custom resources).
    Atomic,
    /// A set of scalars; each value owned separately.
    Set,
    /// A list of maps identified by the given key fields; each item owned separately.
    Map(Vec<String>),
}

/// Prints a path the way structured-merge-diff does: `.spec.containers[name="a"].image`.
pub(crate) struct Display<'a>(pub &'a [PathElem]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.0 {
            match e {
                PathElem::Field(n) => write!(f, ".{n}")?,
                PathElem::Key(k) => {
                    let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                    let parts: Vec<String> =
                        parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, "[{}]", parts.join(","))?
                }
                PathElem::Value(v) => write!(f, "[={v}]")?,
                PathElem::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A set of owned paths.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FieldSet(pub BTreeSet<Path>);

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `p` is in the set, or an ancestor or descendant of `p` is.
    pub fn related(&self, p: &Path) -> Vec<Path> {
        self.0
            .iter()
            .filter(|q| q.starts_with(p) || p.starts_with(q))
            .cloned()
            .collect()
    }

    /// Whether any member is `p` or below `p`, or above it.
    pub fn touches(&self, p: &Path) -> bool {
        self.0.iter().any(|q| q.starts_with(p) || p.starts_with(q))
    }

    /// Encodes the set as a `fieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for e in path {
                let key = encode_elem(e);
                node = node
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("fieldsV1 nodes are objects");
            }
            // Mark membership; the marker is dropped again below for leaves.
            node.insert(".".into(), Value::Object(Map::new()));
        }
        strip_leaf_markers(&mut root);
        Value::Object(root)
    }

    /// Decodes a `fieldsV1` object.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut out = BTreeSet::new();
        if let Some(m) = v.as_object() {
            decode(m, &mut Vec::new(), &mut out);
        }
        FieldSet(out)
    }
}

fn strip_leaf_markers(node: &mut Map<String, Value>) {
    for (k, child) in node.iter_mut() {
        if k == "." {
            continue;
        }
        if let Some(c) = child.as_object_mut() {
            if c.len() == 1 && c.contains_key(".") {
                c.clear();
            } else {
                strip_leaf_markers(c);
            }
        }
    }
}

fn decode(m: &Map<String, Value>, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    for (k, child) in m {
        if k == "." {
            out.insert(prefix.clone());
            continue;
        }
        let Some(elem) = decode_elem(k) else { continue };
        prefix.push(elem);
        match child.as_object() {
            Some(c) if !c.is_empty() => decode(c, prefix, out),
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

fn encode_elem(e: &PathElem) -> String {
    match e {
        PathElem::Field(n) => format!("f:{n}"),
        PathElem::Key(k) => format!("k:{k}"),
        PathElem::Value(v) => format!("v:{v}"),
        PathElem::Index(i) => format!("i:{i}"),
    }
}

fn decode_elem(s: &str) -> Option<PathElem> {
    let (tag, rest) = s.split_at_checked(2)?;
    Some(match tag {
        "f:" => PathElem::Field(rest.to_string()),
        "k:" => PathElem::Key(canonical(rest)),
        "v:" => PathElem::Value(canonical(rest)),
        "i:" => PathElem::Index(rest.parse().ok()?),
        _ => return None,
    })
}

/// Re-serialises JSON so that equal keys compare equal (serde_json maps are sorted).
fn canonical(json: &str) -> String {
    serde_json::from_str::<Value>(json)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| json.to_string())
}

/// The JSON of an item's key fields, in key order.
pub(crate) fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    Some(Value::Object(m).to_string())
}

/// Whether `item` serialises to `json`.
fn same_json(item: &Value, json: &str) -> bool {
    serde_json::from_str::<Value>(json).is_ok_and(|v| v == *item)
}

/// The value at `path`, if present.
pub(crate) fn value_at<'a>(
    root: &'a Value,
    path: &[PathElem],
    lists: &dyn Fn(&[PathElem]) -> ListKind,
) -> Option<&'a Value> {
    let mut cur = root;
    for (i, e) in path.iter().enumerate() {
        cur = match e {
            PathElem::Field(n) => cur.as_object()?.get(n)?,
            PathElem::Key(k) => {
                let ListKind::Map(keys) = lists(&path[..i]) else {
                    return None;
                };
                cur.as_array()?
                    .iter()
                    .find(|item| item_key(item, &keys).as_deref() == Some(k.as_str()))?
            }
            PathElem::Value(v) => cur.as_array()?.iter().find(|item| same_json(item, v))?,
            PathElem::Index(n) => cur.as_array()?.get(*n)?,
        };
    }
    Some(cur)
}

/// Removes the value at `path`; true if something was removed.
pub(crate) fn remove_at(
    root: &mut Value,
    path: &[PathElem],
    lists: &dyn Fn(&[PathElem]) -> ListKind,
) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut cur = root;
    for (i, e) in parent_path.iter().enumerate() {
        let next = match e {
            PathElem::Field(n) => cur.as_object_mut().and_then(|m| m.get_mut(n)),
            PathElem::Key(k) => {
                let ListKind::Map(keys) = lists(&parent_path[..i]) else {
                    return false;
                };
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut()
                        .find(|item| item_key(item, &keys).as_deref() == Some(k.as_str()))
                })
            }
            PathElem::Value(v) => cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|item| same_json(item, v))),
            PathElem::Index(n) => cur.as_array_mut().and_then(|a| a.get_mut(*n)),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match last {
        PathElem::Field(n) => cur.as_object_mut().and_then(|m| m.remove(n)).is_some(),
        PathElem::Key(k) => {
            let ListKind::Map(keys) = lists(parent_path) else {
                return false;
            };
            let Some(a) = cur.as_array_mut() else {
                return false;
            };
            let before = a.len();
            a.retain(|item| item_key(item, &keys).as_deref() != Some(k.as_str()));
            a.len() != before
        }
        PathElem::Value(v) => {
            let Some(a) = cur.as_array_mut() else {
                return false;
            };
            let before = a.len();
            a.retain(|item| !same_json(item, v));
            a.len() != before
        }
        PathElem::Index(n) => match cur.as_array_mut() {
            Some(a) if *n < a.len() => {
                a.remove(*n);
                true
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElem {
        PathElem::Field(n.into())
    }

    #[test]
    fn fields_v1_round_trips_with_dot_markers() {
        let set = FieldSet(
            [
                vec![f("metadata"), f("labels"), f("app")],
                vec![
                    f("spec"),
                    f("ports"),
                    PathElem::Key(r#"{"port":80}"#.into()),
                ],
                vec![
                    f("spec"),
                    f("ports"),
                    PathElem::Key(r#"{"port":80}"#.into()),
                    f("port"),
                ],
                vec![f("spec"), f("running")],
            ]
            .into_iter()
            .collect(),
        );
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}, "f:port": {}}}, "f:running": {}}
            })
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
    }

    #[test]
    fn paths_print_like_structured_merge_diff() {
        let p = vec![
            f("spec"),
            f("containers"),
            PathElem::Key(r#"{"name":"a"}"#.into()),
            f("image"),
        ];
        assert_eq!(
            Display(&p).to_string(),
            r#".spec.containers[name="a"].image"#
        );
    }
}
