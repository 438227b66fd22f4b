//! Walks of a compiled schema that the API double needs besides validation: the
//! `x-kubernetes-list-type` at a path (for server-side apply), and structural defaulting.
//!
//! Defaulting follows apiextensions-apiserver's
//! `staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting/algorithm.go`
//! (`Default`): for every object the schema describes, each absent property with a `default`
//! (or present as `null` when the property is not nullable) gets a deep copy of it; then every
//! present property, every additional-properties value and every list item is defaulted in turn,
//! so a default inside a list item or inside a present parent applies, and one inside an absent
//! parent does not (unless the parent itself is defaulted, whose value is then defaulted too).

use serde_json::Value;

use super::compile::{Arena, Extra, ListType, NodeId};

/// One step from a schema node to a child: a map's field, or a list's items.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    /// A field of an object (a listed property, or an additional-properties value).
    Field(&'a str),
    /// The items of a list (whatever the position or key of the item).
    Item,
}

/// The node at `steps` below `root`, if the schema describes it.
pub(crate) fn node_at(arena: &Arena, root: NodeId, steps: &[Step<'_>]) -> Option<NodeId> {
    let mut id = root;
    for step in steps {
        let node = arena.node(id);
        id = match step {
            Step::Field(name) => match node.property(name) {
                Some(p) => p,
                None => match node.extra {
                    Extra::Schema(p) => p,
                    Extra::Allow | Extra::Deny => return None,
                },
            },
            Step::Item => node.items?,
        };
    }
    Some(id)
}

/// The `x-kubernetes-list-type` of the list at `steps` (`atomic` when unannotated, as
/// kube-openapi's `schemaconv` treats it for structured-merge-diff), or `None` when the schema
/// does not describe that path.
pub(crate) fn list_type_at(arena: &Arena, root: NodeId, steps: &[Step<'_>]) -> Option<ListType> {
    let id = node_at(arena, root, steps)?;
    Some(
        arena
            .node(id)
            .checks
            .as_ref()
            .map(|c| c.list_type.clone())
            .unwrap_or_default(),
    )
}

/// Structural defaulting of `value` against the node `id` (see the module docs).
pub(crate) fn default(arena: &Arena, id: NodeId, value: &mut Value) {
    let node = arena.node(id);
    match value {
        Value::Object(map) => {
            for (name, pid) in &node.properties {
                let prop = arena.node(*pid);
                let Some(d) = &prop.default else { continue };
                let absent = match map.get(&**name) {
                    None => true,
                    Some(Value::Null) => !prop.nullable,
                    Some(_) => false,
                };
                if absent {
                    map.insert(name.to_string(), (**d).clone());
                }
            }
            for (key, child) in map.iter_mut() {
                let schema = match node.property(key) {
                    Some(p) => p,
                    None => match node.extra {
                        Extra::Schema(p) => p,
                        Extra::Allow | Extra::Deny => continue,
                    },
                };
                let s = arena.node(schema);
                if child.is_null()
                    && !s.nullable
                    && let Some(d) = &s.default
                {
                    *child = (**d).clone();
                }
                default(arena, schema, child);
            }
        }
        Value::Array(items) => {
            let Some(item) = node.items else { return };
            let s = arena.node(item);
            for child in items.iter_mut() {
                if child.is_null()
                    && !s.nullable
                    && let Some(d) = &s.default
                {
                    *child = (**d).clone();
                }
                default(arena, item, child);
            }
        }
        _ => {}
    }
}
