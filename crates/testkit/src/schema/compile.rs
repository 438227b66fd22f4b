//! Compiling OpenAPI v3 schemas (CRD `openAPIV3Schema` and the core
//! `components.schemas`) into a flat arena of [`Node`]s that the validator walks.
//!
//! One arena holds every schema of a catalog; `$ref`s become node ids, so
//! recursive and shared definitions (ObjectMeta) are compiled once.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

/// Index of a node in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeId(u32);

/// Every compiled schema node of a catalog.
#[derive(Default)]
pub(crate) struct Arena {
    nodes: Vec<Node>,
    /// The ObjectMeta schema, used for root and embedded `metadata`.
    pub(crate) object_meta: Option<NodeId>,
}

impl Arena {
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    fn push(&mut self, node: Node) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).expect("fewer than 2^32 schema nodes"));
        self.nodes.push(node);
        id
    }

    /// Makes `metadata` of the object schema `root` the ObjectMeta schema (a
    /// CRD's own `metadata` is only `type: object`).
    pub(crate) fn use_object_meta(&mut self, root: NodeId) {
        let Some(meta) = self.object_meta else { return };
        let node = &mut self.nodes[root.0 as usize];
        match node
            .properties
            .binary_search_by(|(k, _)| (**k).cmp("metadata"))
        {
            Ok(i) => node.properties[i].1 = meta,
            Err(i) => node.properties.insert(i, ("metadata".into(), meta)),
        }
    }
}

/// The JSON types a node accepts, as a bit set; empty means any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Types(u8);

impl Types {
    pub(crate) const OBJECT: Types = Types(1);
    pub(crate) const ARRAY: Types = Types(2);
    pub(crate) const STRING: Types = Types(4);
    pub(crate) const INTEGER: Types = Types(8);
    pub(crate) const NUMBER: Types = Types(16);
    pub(crate) const BOOLEAN: Types = Types(32);

    pub(crate) fn is_any(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn contains(self, other: Types) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn with(self, other: Types) -> Types {
        Types(self.0 | other.0)
    }

    fn from_name(name: &str) -> Option<Types> {
        Some(match name {
            "object" => Types::OBJECT,
            "array" => Types::ARRAY,
            "string" => Types::STRING,
            "integer" => Types::INTEGER,
            "number" => Types::NUMBER,
            "boolean" => Types::BOOLEAN,
            _ => return None,
        })
    }

    /// The schema type names, for messages (`integer`, `string`, ...).
    pub(crate) fn names(self) -> String {
        let all = [
            (Types::OBJECT, "object"),
            (Types::ARRAY, "array"),
            (Types::INTEGER, "integer"),
            (Types::STRING, "string"),
            (Types::NUMBER, "number"),
            (Types::BOOLEAN, "boolean"),
        ];
        let names: Vec<&str> = all
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect();
        names.join(",")
    }
}

/// What a node says about keys it does not list in `properties`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Extra {
    /// Keys not listed are unknown fields.
    Deny,
    /// Keys not listed are accepted unchecked.
    Allow,
    /// Keys not listed are checked against this schema (a map's values).
    Schema(NodeId),
}

/// `x-kubernetes-list-type`.
#[derive(Clone, Debug, Default)]
pub(crate) enum ListType {
    /// `atomic` or absent: no uniqueness rule.
    #[default]
    Atomic,
    /// `set`: items must be unique.
    Set,
    /// `map`: the tuple of these key fields must be unique.
    Map(Vec<String>),
}

/// `format` values the validator checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Format {
    /// Absent or not checked.
    #[default]
    None,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// RFC 3339 date-time (checked loosely).
    DateTime,
    /// Standard base64 with padding.
    Byte,
}

impl Format {
    fn parse(s: &str) -> Format {
        match s {
            "int32" => Format::Int32,
            "int64" => Format::Int64,
            "date-time" => Format::DateTime,
            "byte" => Format::Byte,
            _ => Format::None,
        }
    }
}

/// A `pattern`, compiled to a regex on first use.
pub(crate) struct Pattern {
    pub(crate) source: String,
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// The compiled regex, or `None` if the pattern is not valid for the `regex`
    /// crate (then it is not checked, and a warning is logged once).
    pub(crate) fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| match Regex::new(&self.source) {
                Ok(re) => Some(re),
                Err(e) => {
                    tracing::warn!(pattern = %self.source, error = %e, "schema pattern not checked");
                    None
                }
            })
            .as_ref()
    }
}

/// Value checks that most nodes do not have, kept out of line.
#[derive(Default)]
pub(crate) struct Checks {
    pub(crate) enum_values: Option<Vec<Value>>,
    pub(crate) pattern: Option<Pattern>,
    pub(crate) format: Format,
    pub(crate) minimum: Option<f64>,
    pub(crate) maximum: Option<f64>,
    pub(crate) exclusive_minimum: bool,
    pub(crate) exclusive_maximum: bool,
    pub(crate) multiple_of: Option<f64>,
    pub(crate) min_length: Option<u64>,
    pub(crate) max_length: Option<u64>,
    pub(crate) min_items: Option<u64>,
    pub(crate) max_items: Option<u64>,
    pub(crate) unique_items: bool,
    pub(crate) min_properties: Option<u64>,
    pub(crate) max_properties: Option<u64>,
    pub(crate) list_type: ListType,
    pub(crate) all_of: Vec<NodeId>,
    pub(crate) any_of: Vec<NodeId>,
    pub(crate) one_of: Vec<NodeId>,
    pub(crate) not: Option<NodeId>,
}

/// One compiled schema.
pub(crate) struct Node {
    pub(crate) types: Types,
    pub(crate) nullable: bool,
    pub(crate) int_or_string: bool,
    pub(crate) embedded_resource: bool,
    /// Listed properties, sorted by name.
    pub(crate) properties: Vec<(Box<str>, NodeId)>,
    pub(crate) extra: Extra,
    pub(crate) required: Vec<Box<str>>,
    pub(crate) items: Option<NodeId>,
    pub(crate) default: Option<Box<Value>>,
    pub(crate) checks: Option<Box<Checks>>,
}

impl Node {
    fn any() -> Node {
        Node {
            types: Types::default(),
            nullable: true,
            int_or_string: false,
            embedded_resource: false,
            properties: Vec::new(),
            extra: Extra::Allow,
            required: Vec::new(),
            items: None,
            default: None,
            checks: None,
        }
    }

    pub(crate) fn property(&self, name: &str) -> Option<NodeId> {
        self.properties
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| self.properties[i].1)
    }
}

/// Which flavour of schema is being compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// A CRD structural schema: an object with no `properties`, no
    /// `additionalProperties` and no `x-kubernetes-preserve-unknown-fields`
    /// has no fields at all (kube-apiserver prunes them), `null` is only
    /// accepted where `nullable: true`.
    Crd,
    /// The API server's OpenAPI for built-in types (Go structs): an object
    /// without `properties` is free-form, `null` decodes to the zero value.
    BuiltIn,
}

/// Compiles schemas into an arena.
pub(crate) struct Compiler<'a> {
    arena: &'a mut Arena,
    dialect: Dialect,
    /// `components.schemas` of the document, for `$ref`s.
    definitions: Option<&'a Map<String, Value>>,
    /// Definitions compiled so far (or being compiled: recursion).
    compiled: HashMap<String, NodeId>,
}

/// A compile error's message.
pub(crate) type CompileError = String;

const REF_PREFIX: &str = "#/components/schemas/";

impl<'a> Compiler<'a> {
    /// A compiler for CRD schemas (no `$ref`s).
    pub(crate) fn crd(arena: &'a mut Arena) -> Self {
        Compiler {
            arena,
            dialect: Dialect::Crd,
            definitions: None,
            compiled: HashMap::new(),
        }
    }

    /// A compiler for an OpenAPI document's `components.schemas`.
    pub(crate) fn built_in(arena: &'a mut Arena, definitions: &'a Map<String, Value>) -> Self {
        Compiler {
            arena,
            dialect: Dialect::BuiltIn,
            definitions: Some(definitions),
            compiled: HashMap::new(),
        }
    }

    /// Compiles the definition `name` of the document (and what it refers to).
    pub(crate) fn definition(&mut self, name: &str) -> Result<NodeId, CompileError> {
        if let Some(&id) = self.compiled.get(name) {
            return Ok(id);
        }
        let schema = self
            .definitions
            .and_then(|d| d.get(name))
            .ok_or_else(|| format!("no schema named {name:?} in components.schemas"))?;
        // Reserve the id first so that recursive references resolve to it.
        let id = self.arena.push(Node::any());
        self.compiled.insert(name.to_owned(), id);
        let node = self.node(schema, false)?;
        self.arena.nodes[id.0 as usize] = node;
        Ok(id)
    }

    /// Compiles one schema; `in_junctor` is true under allOf/anyOf/oneOf/not,
    /// where a structural schema only validates values and declares no fields.
    pub(crate) fn schema(&mut self, s: &Value, in_junctor: bool) -> Result<NodeId, CompileError> {
        if let Some(target) = self.alias(s)? {
            return self.definition(target);
        }
        let node = self.node(s, in_junctor)?;
        Ok(self.arena.push(node))
    }

    /// The definition `s` stands for, if it is only a `$ref` or an `allOf` with a
    /// single `$ref` (how the built-in OpenAPI attaches a default or description).
    fn alias<'s>(&self, s: &'s Value) -> Result<Option<&'s str>, CompileError> {
        let Some(map) = s.as_object() else {
            return Ok(None);
        };
        let reference = map.get("$ref").or_else(|| {
            let all_of = map.get("allOf")?.as_array()?;
            let structural = ["type", "properties", "items", "additionalProperties"];
            if all_of.len() == 1 && !structural.iter().any(|k| map.contains_key(*k)) {
                all_of[0].get("$ref")
            } else {
                None
            }
        });
        match reference {
            None => Ok(None),
            Some(Value::String(r)) => match r.strip_prefix(REF_PREFIX) {
                Some(name) if self.definitions.is_some() => Ok(Some(name)),
                _ => Err(format!("unsupported $ref {r:?}")),
            },
            Some(other) => Err(format!("$ref must be a string, got {other}")),
        }
    }

    fn node(&mut self, s: &Value, in_junctor: bool) -> Result<Node, CompileError> {
        let map = match s {
            Value::Object(map) => map,
            Value::Bool(true) => return Ok(Node::any()),
            other => return Err(format!("schema must be an object, got {other}")),
        };
        let flag = |k: &str| map.get(k).and_then(Value::as_bool).unwrap_or(false);
        let types = match map.get("type") {
            None => Types::default(),
            Some(Value::String(t)) => {
                Types::from_name(t).ok_or_else(|| format!("unknown type {t:?}"))?
            }
            Some(Value::Array(ts)) => ts.iter().try_fold(Types::default(), |acc, t| {
                t.as_str()
                    .and_then(Types::from_name)
                    .map(|t| acc.with(t))
                    .ok_or_else(|| format!("unknown type {t}"))
            })?,
            Some(other) => return Err(format!("type must be a string, got {other}")),
        };
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        let embedded_resource = flag("x-kubernetes-embedded-resource");

        let mut properties = Vec::new();
        if let Some(props) = map.get("properties") {
            let props = props.as_object().ok_or("properties must be an object")?;
            for (name, prop) in props {
                let id = self.schema(prop, in_junctor)?;
                properties.push((name.as_str().into(), id));
            }
            properties.sort_by(|a: &(Box<str>, NodeId), b| a.0.cmp(&b.0));
        }

        let declared = match map.get("additionalProperties") {
            Some(Value::Bool(false)) => Some(Extra::Deny),
            Some(Value::Bool(true)) => Some(Extra::Allow),
            Some(schema @ Value::Object(_)) => {
                Some(Extra::Schema(self.schema(schema, in_junctor)?))
            }
            Some(other) => return Err(format!("bad additionalProperties {other}")),
            None => None,
        };
        let extra = match declared {
            Some(extra) => extra,
            None if preserve || in_junctor => Extra::Allow,
            None if !properties.is_empty() => Extra::Deny,
            // In a structural schema an object that declares nothing keeps nothing.
            None if self.dialect == Dialect::Crd && types == Types::OBJECT => Extra::Deny,
            None => Extra::Allow,
        };

        let items = match map.get("items") {
            Some(items @ Value::Object(_)) => Some(self.schema(items, in_junctor)?),
            Some(Value::Array(tuple)) if !tuple.is_empty() => {
                Some(self.schema(&tuple[0], in_junctor)?)
            }
            _ => None,
        };

        let required = match map.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).map(Into::into).collect(),
            _ => Vec::new(),
        };

        Ok(Node {
            types,
            nullable: self.dialect == Dialect::BuiltIn || flag("nullable"),
            int_or_string: flag("x-kubernetes-int-or-string"),
            embedded_resource,
            properties,
            extra,
            required,
            items,
            // The built-in OpenAPI lists Go zero values as defaults (`name: ""` on a
            // required name); only a CRD default is applied by the server.
            default: match self.dialect {
                Dialect::Crd => map.get("default").cloned().map(Box::new),
                Dialect::BuiltIn => None,
            },
            checks: self.checks(map)?,
        })
    }

    fn checks(&mut self, map: &Map<String, Value>) -> Result<Option<Box<Checks>>, CompileError> {
        let num = |k: &str| map.get(k).and_then(Value::as_f64);
        let count = |k: &str| map.get(k).and_then(Value::as_u64);
        let flag = |k: &str| map.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut c = Checks {
            enum_values: map.get("enum").and_then(Value::as_array).cloned(),
            pattern: map.get("pattern").and_then(Value::as_str).map(|p| Pattern {
                source: p.to_owned(),
                compiled: OnceLock::new(),
            }),
            format: map
                .get("format")
                .and_then(Value::as_str)
                .map_or(Format::None, Format::parse),
            minimum: num("minimum"),
            maximum: num("maximum"),
            exclusive_minimum: flag("exclusiveMinimum"),
            exclusive_maximum: flag("exclusiveMaximum"),
            multiple_of: num("multipleOf"),
            min_length: count("minLength"),
            max_length: count("maxLength"),
            min_items: count("minItems"),
            max_items: count("maxItems"),
            unique_items: flag("uniqueItems"),
            min_properties: count("minProperties"),
            max_properties: count("maxProperties"),
            list_type: match map.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map(
                    map.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| {
                            keys.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => ListType::Atomic,
            },
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
        };
        for (key, out) in [
            ("allOf", &mut c.all_of),
            ("anyOf", &mut c.any_of),
            ("oneOf", &mut c.one_of),
        ] {
            if let Some(list) = map.get(key) {
                let list = list
                    .as_array()
                    .ok_or_else(|| format!("{key} must be a list"))?;
                for s in list {
                    out.push(self.schema(s, true)?);
                }
            }
        }
        if let Some(not) = map.get("not") {
            c.not = Some(self.schema(not, true)?);
        }
        let empty = c.enum_values.is_none()
            && c.pattern.is_none()
            && c.format == Format::None
            && c.minimum.is_none()
            && c.maximum.is_none()
            && c.multiple_of.is_none()
            && c.min_length.is_none()
            && c.max_length.is_none()
            && c.min_items.is_none()
            && c.max_items.is_none()
            && !c.unique_items
            && c.min_properties.is_none()
            && c.max_properties.is_none()
            && matches!(c.list_type, ListType::Atomic)
            && c.all_of.is_empty()
            && c.any_of.is_empty()
            && c.one_of.is_empty()
            && c.not.is_none();
        Ok(if empty { None } else { Some(Box::new(c)) })
    }
}

#[cfg(test)]
impl Arena {
    /// Every node, one line each with every field: two arenas compiled from equivalent schemas
    /// describe the same.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| {
                let checks = n.checks.as_ref().map(|c| {
                    format!(
                        "enum={:?} pattern={:?} format={:?} min={:?} max={:?} exclusive={}/{} \
                         multiple={:?} length={:?}..{:?} items={:?}..{:?} unique={} \
                         properties={:?}..{:?} list={:?} all={:?} any={:?} one={:?} not={:?}",
                        c.enum_values,
                        c.pattern.as_ref().map(|p| &p.source),
                        c.format,
                        c.minimum,
                        c.maximum,
                        c.exclusive_minimum,
                        c.exclusive_maximum,
                        c.multiple_of,
                        c.min_length,
                        c.max_length,
                        c.min_items,
                        c.max_items,
                        c.unique_items,
                        c.min_properties,
                        c.max_properties,
                        c.list_type,
                        c.all_of,
                        c.any_of,
                        c.one_of,
                        c.not,
                    )
                });
                format!(
                    "types={:?} nullable={} int_or_string={} embedded={} properties={:?} \
                     extra={:?} required={:?} items={:?} default={:?} checks={checks:?}",
                    n.types,
                    n.nullable,
                    n.int_or_string,
                    n.embedded_resource,
                    n.properties,
                    n.extra,
                    n.required,
                    n.items,
                    n.default,
                )
            })
            .collect()
    }
}

impl Arena {
    /// A new arena holding only a copy of `source`'s ObjectMeta schema (and what it refers to),
    /// as its `object_meta`: the base for compiling a CRD registered at run time.
    pub(crate) fn with_object_meta_of(source: &Arena) -> Arena {
        let mut arena = Arena::default();
        if let Some(meta) = source.object_meta {
            let mut copied = HashMap::new();
            arena.object_meta = Some(arena.copy_from(source, meta, &mut copied));
        }
        arena
    }

    /// Copies node `id` of `source` and every node it refers to; `copied` maps ids already
    /// copied (recursive definitions) to their new ids.
    fn copy_from(
        &mut self,
        source: &Arena,
        id: NodeId,
        copied: &mut HashMap<u32, NodeId>,
    ) -> NodeId {
        if let Some(&new) = copied.get(&id.0) {
            return new;
        }
        // Reserve the id first so that recursive references resolve to it.
        let new = self.push(Node::any());
        copied.insert(id.0, new);
        let n = source.node(id);
        let mut map = |id: NodeId| self.copy_from(source, id, copied);
        let properties = n
            .properties
            .iter()
            .map(|(k, id)| (k.clone(), map(*id)))
            .collect();
        let extra = match n.extra {
            Extra::Schema(id) => Extra::Schema(map(id)),
            other => other,
        };
        let items = n.items.map(&mut map);
        let checks = n.checks.as_ref().map(|c| {
            Box::new(Checks {
                enum_values: c.enum_values.clone(),
                pattern: c.pattern.as_ref().map(|p| Pattern {
                    source: p.source.clone(),
                    compiled: OnceLock::new(),
                }),
                format: c.format,
                minimum: c.minimum,
                maximum: c.maximum,
                exclusive_minimum: c.exclusive_minimum,
                exclusive_maximum: c.exclusive_maximum,
                multiple_of: c.multiple_of,
                min_length: c.min_length,
                max_length: c.max_length,
                min_items: c.min_items,
                max_items: c.max_items,
                unique_items: c.unique_items,
                min_properties: c.min_properties,
                max_properties: c.max_properties,
                list_type: c.list_type.clone(),
                all_of: c.all_of.iter().map(|id| map(*id)).collect(),
                any_of: c.any_of.iter().map(|id| map(*id)).collect(),
                one_of: c.one_of.iter().map(|id| map(*id)).collect(),
                not: c.not.map(&mut map),
            })
        });
        let node = Node {
            types: n.types,
            nullable: n.nullable,
            int_or_string: n.int_or_string,
            embedded_resource: n.embedded_resource,
            properties,
            extra,
            required: n.required.clone(),
            items,
            default: n.default.clone(),
            checks,
        };
        self.nodes[new.0 as usize] = node;
        new
    }
}
