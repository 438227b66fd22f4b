//! Server-side apply and field management (`metadata.managedFields`).
//!
//! Every write records which manager owns which fields. An apply (`application/apply-patch+yaml`)
//! merges the applied configuration into the live object, fails with 409 when it would change a
//! field another manager owns (unless forced, which moves the ownership), and removes the fields
//! the manager applied before but no longer applies, unless another manager owns them. Any other
//! write (create, update, patch) gives its manager the fields it changed and takes them from the
//! others, without conflicts.
//!
//! Lists merge as the kind's schema declares (see [`Lists`]): `x-kubernetes-list-type: map` lists
//! item by item by their `x-kubernetes-list-map-keys` (field sets name them `k:{"type":"Ready"}`,
//! conflicts `.status.conditions[type="Ready"].status`), `set` lists value by value (`v:"a"`),
//! `atomic` or unannotated lists as a whole, for custom resources and built-in kinds alike
//! (structured-merge-diff's `typed` merge over kube-openapi's schema conversion).

pub(crate) mod fieldset;

use serde_json::{Map, Value, json};

use crate::meta;
use crate::schema::{ListType, ResourceType, Step};
use crate::status::ApiError;
use fieldset::{Display, FieldSet, ListKind, Path, PathElem, item_key, remove_at, value_at};

/// Which operation a managedFields entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Which part of the object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource; `status` is excluded when the type has a status subresource.
    Main { has_status_subresource: bool },
    /// The `status` subresource: only `status`.
    Status,
}

impl Scope {
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Main { .. } => None,
            Scope::Status => Some("status"),
        }
    }

    /// Whether the field at `path` (one or two steps deep) is tracked in this scope.
    /// `metadata` itself is walked through but never owned.
    fn tracks(self, path: &[PathElem]) -> bool {
        let Some(PathElem::Field(top)) = path.first() else {
            return true;
        };
        match (self, top.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, t) => t == "status",
            (
                Scope::Main {
                    has_status_subresource,
                },
                "status",
            ) => !has_status_subresource,
            (Scope::Main { .. }, "metadata") => match path.get(1) {
                Some(PathElem::Field(f)) => {
                    matches!(
                        f.as_str(),
                        "labels" | "annotations" | "ownerReferences" | "finalizers"
                    )
                }
                _ => true,
            },
            _ => true,
        }
    }
}

/// How lists are merged for a kind: as its schema declares them (`x-kubernetes-list-type` and
/// `x-kubernetes-list-map-keys`, which the built-in kinds' OpenAPI carries too), atomic where the
/// schema says nothing, as kube-openapi's `pkg/schemaconv/smd.go` (`getListElementRelationship`)
/// converts a schema for structured-merge-diff.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lists<'a> {
    schema: Option<&'a ResourceType>,
}

impl<'a> Lists<'a> {
    /// The lists of `rt`'s schema.
    pub fn of(rt: &'a ResourceType) -> Self {
        Lists { schema: Some(rt) }
    }

    /// No schema: every list atomic but `metadata`'s.
    #[cfg(test)]
    pub fn none() -> Self {
        Lists { schema: None }
    }

    pub fn kind(&self, path: &[PathElem]) -> ListKind {
        let names: Vec<&str> = path
            .iter()
            .filter_map(|e| match e {
                PathElem::Field(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        match names.as_slice() {
            ["metadata", "ownerReferences"] => return ListKind::Map(vec!["uid".into()]),
            ["metadata", "finalizers"] => return ListKind::Set,
            _ => {}
        }
        let Some(rt) = self.schema else {
            return ListKind::Atomic;
        };
        let steps: Vec<Step<'_>> = path
            .iter()
            .map(|e| match e {
                PathElem::Field(n) => Step::Field(n),
                _ => Step::Item,
            })
            .collect();
        match rt.list_type_at(&steps) {
            Some(ListType::Map(keys)) if !keys.is_empty() => ListKind::Map(keys),
            Some(ListType::Set) => ListKind::Set,
            _ => ListKind::Atomic,
        }
    }

    fn as_fn(&self) -> impl Fn(&[PathElem]) -> ListKind + '_ {
        move |p: &[PathElem]| self.kind(p)
    }
}

/// The leaves and associative-list items of `value` within `scope`.
pub(crate) fn field_set(value: &Value, scope: Scope, lists: Lists<'_>) -> FieldSet {
    let mut out = FieldSet::default();
    collect(value, &mut Vec::new(), scope, lists, &mut out);
    out
}

fn collect(value: &Value, path: &mut Path, scope: Scope, lists: Lists<'_>, out: &mut FieldSet) {
    if path.len() <= 2 && !scope.tracks(path) {
        return;
    }
    let is_metadata_root = path.len() == 1 && path[0] == PathElem::Field("metadata".into());
    match value {
        Value::Object(m) if !m.is_empty() || path.is_empty() || is_metadata_root => {
            for (k, v) in m {
                path.push(PathElem::Field(k.clone()));
                collect(v, path, scope, lists, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match lists.kind(path) {
            ListKind::Atomic => {
                out.0.insert(path.clone());
            }
            ListKind::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(PathElem::Value(item.to_string()));
                    out.0.insert(p);
                }
            }
            ListKind::Map(keys) => {
                for item in items {
                    let Some(k) = item_key(item, &keys) else {
                        out.0.insert(path.clone());
                        continue;
                    };
                    path.push(PathElem::Key(k));
                    out.0.insert(path.clone());
                    if let Some(m) = item.as_object() {
                        for (f, v) in m {
                            path.push(PathElem::Field(f.clone()));
                            collect(v, path, scope, lists, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ if path.is_empty() || is_metadata_root => {}
        _ => {
            out.0.insert(path.clone());
        }
    }
}

/// Merges an applied configuration into the live object: maps field by field, associative lists
/// item by item, everything else replaced. `null` in the applied configuration removes the field.
pub(crate) fn merge(live: &mut Value, applied: &Value, path: &mut Path, lists: Lists<'_>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                if av.is_null() {
                    l.remove(k);
                    continue;
                }
                path.push(PathElem::Field(k.clone()));
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, path, lists),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(l), Value::Array(a)) => match lists.kind(path) {
            ListKind::Map(keys) => {
                for item in a {
                    let key = item_key(item, &keys);
                    match l
                        .iter_mut()
                        .find(|x| key.is_some() && item_key(x, &keys) == key)
                    {
                        Some(existing) => {
                            path.push(PathElem::Key(key.unwrap_or_default()));
                            merge(existing, item, path, lists);
                            path.pop();
                        }
                        None => l.push(item.clone()),
                    }
                }
            }
            ListKind::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListKind::Atomic => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn same_owner(&self, manager: &str, op: Operation, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource.as_deref() == subresource
    }

    /// How kube-apiserver names a manager in conflict messages.
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(sub) = &self.subresource {
            v["subresource"] = Value::String(sub.clone());
        }
        v
    }
}

/// The managed fields of one object.
#[derive(Clone, Debug, Default)]
pub(crate) struct Managed(pub Vec<Entry>);

/// One field another manager owns with a different value.
struct Conflict {
    entry: usize,
    path: Path,
}

impl Managed {
    /// Reads `metadata.managedFields`.
    pub fn from_object(object: &Value) -> Managed {
        let entries = object["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Managed(
            entries
                .iter()
                .filter_map(|e| {
                    Some(Entry {
                        manager: e["manager"].as_str()?.to_string(),
                        operation: if e["operation"] == "Apply" {
                            Operation::Apply
                        } else {
                            Operation::Update
                        },
                        api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                        time: e["time"].as_str().unwrap_or_default().to_string(),
                        subresource: e["subresource"].as_str().map(String::from),
                        fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
                    })
                })
                .collect(),
        )
    }

    /// Writes `metadata.managedFields` (dropping entries that own nothing).
    pub fn write_to(&self, object: &mut Value) {
        let entries: Vec<Value> = self
            .0
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(Entry::to_json)
            .collect();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if entries.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), Value::Array(entries));
            }
        }
    }

    fn position(&self, manager: &str, op: Operation, subresource: Option<&str>) -> Option<usize> {
        self.0
            .iter()
            .position(|e| e.same_owner(manager, op, subresource))
    }

    fn upsert(
        &mut self,
        manager: &str,
        op: Operation,
        subresource: Option<&str>,
        api_version: &str,
    ) -> &mut Entry {
        let i = match self.position(manager, op, subresource) {
            Some(i) => i,
            None => {
                self.0.push(Entry {
                    manager: manager.to_string(),
                    operation: op,
                    api_version: api_version.to_string(),
                    time: String::new(),
                    subresource: subresource.map(String::from),
                    fields: FieldSet::default(),
                });
                self.0.len() - 1
            }
        };
        let e = &mut self.0[i];
        e.api_version = api_version.to_string();
        e.time = meta::now();
        e
    }

    /// Records a non-apply write: the manager gets the fields whose value changed, the other
    /// managers lose them, and nobody keeps a field that no longer exists.
    pub fn record_update(
        &mut self,
        manager: &str,
        scope: Scope,
        api_version: &str,
        old: &Value,
        new: &Value,
        lists: Lists<'_>,
    ) {
        let lf = lists.as_fn();
        let new_set = field_set(new, scope, lists);
        let changed: Vec<Path> = new_set
            .0
            .iter()
            .filter(|p| value_at(old, p, &lf) != value_at(new, p, &lf))
            .cloned()
            .collect();
        let sub = scope.subresource();
        for e in &mut self.0 {
            let mine = e.same_owner(manager, Operation::Update, sub);
            e.fields.0.retain(|q| {
                let now = value_at(new, q, &lf);
                now.is_some() && (mine || now == value_at(old, q, &lf))
            });
        }
        if !changed.is_empty() {
            let entry = self.upsert(manager, Operation::Update, sub, api_version);
            entry.fields.0.extend(changed);
        }
    }

    /// Server-side apply of `applied` (already restricted to `scope`) onto `live` by `manager`.
    /// Returns the merged object with updated managed fields, or a 409 listing the conflicts.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        manager: &str,
        force: bool,
        scope: Scope,
        api_version: &str,
        live: &Value,
        applied: &Value,
        lists: Lists<'_>,
    ) -> Result<Value, ApiError> {
        let lf = lists.as_fn();
        let sub = scope.subresource();
        let new_set = field_set(applied, scope, lists);
        let me = self.position(manager, Operation::Apply, sub);

        let mut merged = live.clone();
        merge(&mut merged, applied, &mut Vec::new(), lists);

        // Conflicts: fields others own whose value this apply changes.
        let mut conflicts = Vec::new();
        for (i, e) in self.0.iter().enumerate() {
            if Some(i) == me {
                continue;
            }
            for p in &new_set.0 {
                for q in e.fields.related(p) {
                    let deeper = if q.len() >= p.len() {
                        q.clone()
                    } else {
                        p.clone()
                    };
                    // Conflicts are between leaves (structured-merge-diff compares the changed
                    // leaves with each manager's set): an associative item both own is no
                    // conflict while it stays; its changed fields are, one by one.
                    let (before, after) = (
                        value_at(live, &deeper, &lf),
                        value_at(&merged, &deeper, &lf),
                    );
                    let item = matches!(deeper.last(), Some(PathElem::Key(_) | PathElem::Value(_)));
                    if item && after.is_some() {
                        continue;
                    }
                    if before.is_some()
                        && before != after
                        && !conflicts
                            .iter()
                            .any(|c: &Conflict| c.entry == i && c.path == deeper)
                    {
                        conflicts.push(Conflict {
                            entry: i,
                            path: deeper,
                        });
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                return Err(self.conflict_error(&conflicts));
            }
            for c in &conflicts {
                let e = &mut self.0[c.entry];
                e.fields
                    .0
                    .retain(|q| !(q.starts_with(&c.path) || c.path.starts_with(q)));
            }
        }

        // Fields this manager applied before and no longer applies go, unless someone else owns them.
        if let Some(i) = me {
            let previous = self.0[i].fields.clone();
            let mut stale: Vec<&Path> = previous
                .0
                .iter()
                .filter(|p| !new_set.0.contains(*p))
                .collect();
            // Items before their fields: an associative item goes whole; the fields that
            // identify an item that stays (its keys) are not removed on their own.
            stale.sort_by_key(|p| p.len());
            for p in stale {
                if is_key_field(p) {
                    continue;
                }
                if new_set.touches(p) && new_set.0.iter().any(|n| n.starts_with(p)) {
                    continue;
                }
                let owned_elsewhere = self
                    .0
                    .iter()
                    .enumerate()
                    .any(|(j, e)| j != i && e.fields.touches(p));
                if !owned_elsewhere && remove_at(&mut merged, p, &lf) {
                    prune_empty_parents(&mut merged, p, &self.0, i, &lf);
                }
            }
        }

        let entry = self.upsert(manager, Operation::Apply, sub, api_version);
        entry.fields = new_set;
        Ok(merged)
    }

    fn conflict_error(&self, conflicts: &[Conflict]) -> ApiError {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", self.0[c.entry].printed()),
                    "field": Display(&c.path).to_string(),
                })
            })
            .collect();
        let message = if conflicts.len() == 1 {
            let c = &conflicts[0];
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                self.0[c.entry].printed(),
                Display(&c.path)
            )
        } else {
            let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
            for c in conflicts {
                let m = self.0[c.entry].printed();
                let p = Display(&c.path).to_string();
                match by_manager.iter_mut().find(|(x, _)| *x == m) {
                    Some((_, ps)) => ps.push(p),
                    None => by_manager.push((m, vec![p])),
                }
            }
            by_manager.sort();
            let mut lines = Vec::new();
            for (m, ps) in by_manager {
                lines.push(format!("conflicts with {m}:"));
                lines.extend(ps.into_iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        ApiError {
            details: json!({"causes": causes}),
            ..ApiError::new(409, "Conflict", message)
        }
    }
}

/// Whether `path` is one of the key fields of an associative list item (`[type="A"].type`).
fn is_key_field(path: &[PathElem]) -> bool {
    match path {
        [.., PathElem::Key(k), PathElem::Field(f)] => {
            serde_json::from_str::<Map<String, Value>>(k).is_ok_and(|m| m.contains_key(f))
        }
        _ => false,
    }
}

/// After removing `removed`, drops maps left empty above it (below the top level) that no other
/// manager owns anything in.
fn prune_empty_parents(
    merged: &mut Value,
    removed: &[PathElem],
    entries: &[Entry],
    me: usize,
    lf: &dyn Fn(&[PathElem]) -> ListKind,
) {
    let mut parent = removed.to_vec();
    while parent.len() > 2 {
        parent.pop();
        let empty = matches!(value_at(merged, &parent, lf), Some(Value::Object(m)) if m.is_empty());
        let owned = entries
            .iter()
            .enumerate()
            .any(|(j, e)| j != me && e.fields.touches(&parent));
        if !empty || owned || !matches!(parent.last(), Some(PathElem::Field(_))) {
            break;
        }
        remove_at(merged, &parent, lf);
    }
}

/// Keeps only `status` of an applied or written object (status subresource writes).
pub(crate) fn only_status(object: &Value) -> Value {
    let mut m = Map::new();
    for k in ["apiVersion", "kind", "metadata", "status"] {
        if let Some(v) = object.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        has_status_subresource: true,
    };

    fn lists() -> Lists<'static> {
        Lists::none()
    }

    #[test]
    fn apply_records_only_tracked_fields() {
        let obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"x": "1"}},
                         "spec": {"a": 1, "l": [1, 2]}, "status": {"s": 1}});
        let set = field_set(&obj, MAIN, lists());
        let printed: Vec<String> = set.0.iter().map(|p| Display(p).to_string()).collect();
        assert_eq!(printed, vec![".metadata.labels.x", ".spec.a", ".spec.l"]);
    }

    #[test]
    fn second_manager_conflicts_then_forces() {
        let mut m = Managed::default();
        let empty = json!({"metadata": {"name": "a"}});
        let a = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1, "x": "a"}});
        let live = m
            .apply("alice", false, MAIN, "v1", &empty, &a, lists())
            .unwrap();
        let b = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2, "x": "a"}});
        let err = m
            .apply("bob", false, MAIN, "v1", &live, &b, lists())
            .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
        );
        let live = m
            .apply("bob", true, MAIN, "v1", &live, &b, lists())
            .unwrap();
        assert_eq!(live["spec"]["replicas"], 2);
        // alice lost replicas but still shares x
        let alice = &m.0[0].fields;
        assert!(
            !alice
                .0
                .iter()
                .any(|p| Display(p).to_string() == ".spec.replicas")
        );
        assert!(alice.0.iter().any(|p| Display(p).to_string() == ".spec.x"));
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_shared() {
        let mut m = Managed::default();
        let empty = json!({"metadata": {"name": "a"}});
        let first = json!({"metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}});
        let live = m
            .apply("alice", false, MAIN, "v1", &empty, &first, lists())
            .unwrap();
        let second = json!({"metadata": {"name": "a"}, "spec": {"a": 1}});
        let live = m
            .apply("alice", false, MAIN, "v1", &live, &second, lists())
            .unwrap();
        assert_eq!(live["spec"], json!({"a": 1}));
    }

    #[test]
    fn updates_move_ownership_without_conflicts() {
        let mut m = Managed::default();
        let empty = json!({"metadata": {"name": "a"}});
        let a = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let live = m
            .apply("alice", false, MAIN, "v1", &empty, &a, lists())
            .unwrap();
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(3);
        m.record_update("kubectl-edit", MAIN, "v1", &live, &edited, lists());
        assert!(m.0[0].fields.is_empty());
        assert_eq!(m.0[1].manager, "kubectl-edit");
    }
}
