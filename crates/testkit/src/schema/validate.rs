//! Walking an object against a compiled schema, collecting every violation
//! with kube-apiserver's wording.

use serde_json::{Map, Value};

use super::FieldError;
use super::compile::{Arena, Checks, Extra, Format, ListType, Node, NodeId, Types};
use super::meta;

/// Validates `value` against the schema `root`; returns every violation.
pub(crate) fn validate(arena: &Arena, root: NodeId, value: &Value) -> Vec<FieldError> {
    let mut v = Validator {
        arena,
        errors: Vec::new(),
        path: String::new(),
    };
    if value.is_object() {
        v.node(root, value);
    } else {
        v.type_error(value, Types::OBJECT);
    }
    v.errors
}

struct Validator<'a> {
    arena: &'a Arena,
    errors: Vec<FieldError>,
    /// Path of the value being checked, e.g. `spec.volumes[0].name`.
    path: String,
}

/// The JSON type of a value, as the schema names it.
fn type_of(value: &Value) -> (Types, &'static str) {
    match value {
        Value::Null => (Types::default(), "null"),
        Value::Bool(_) => (Types::BOOLEAN, "boolean"),
        Value::Number(n) if is_integer(n) => (Types::INTEGER, "integer"),
        Value::Number(_) => (Types::NUMBER, "number"),
        Value::String(_) => (Types::STRING, "string"),
        Value::Array(_) => (Types::ARRAY, "array"),
        Value::Object(_) => (Types::OBJECT, "object"),
    }
}

/// Whether a JSON number is an integer (`3.0` counts, as in kube-openapi).
fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

impl Validator<'_> {
    fn sub(&self) -> Validator<'_> {
        Validator {
            arena: self.arena,
            errors: Vec::new(),
            path: self.path.clone(),
        }
    }

    /// Whether `value` passes the schema `id` (for anyOf/oneOf/not).
    fn passes(&self, id: NodeId, value: &Value) -> bool {
        let mut sub = self.sub();
        sub.node(id, value);
        sub.errors.is_empty()
    }

    fn push_field(&mut self, name: &str) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        len
    }

    fn push_index(&mut self, i: usize) -> usize {
        let len = self.path.len();
        self.path.push('[');
        self.path.push_str(&i.to_string());
        self.path.push(']');
        len
    }

    /// `<path> in body`, as kube-openapi names the field in its messages.
    fn in_body(&self) -> String {
        format!("{} in body", self.path)
    }

    fn invalid(&mut self, value: &Value, detail: &str) {
        let e = FieldError::invalid(&self.path, value, detail);
        self.errors.push(e);
    }

    fn type_error(&mut self, value: &Value, expected: Types) {
        let (_, actual) = type_of(value);
        let detail = format!(
            "{} must be of type {}: {actual:?}",
            self.in_body(),
            expected.names()
        );
        self.invalid(&Value::from(actual), &detail);
    }

    fn node(&mut self, id: NodeId, value: &Value) {
        let node = self.arena.node(id);
        if value.is_null() {
            if !node.nullable && !node.types.is_any() {
                self.type_error(value, node.types);
            }
            return;
        }
        let (actual, _) = type_of(value);
        let mut allowed = node.types;
        if node.int_or_string {
            allowed = Types::INTEGER.with(Types::STRING);
        }
        let type_ok = allowed.is_any()
            || allowed.contains(actual)
            || (actual == Types::INTEGER && allowed.contains(Types::NUMBER));
        if !type_ok {
            self.type_error(value, allowed);
            return;
        }
        match value {
            Value::Object(map) => self.object(node, map),
            Value::Array(items) => self.array(node, items),
            _ => {}
        }
        if let Some(checks) = &node.checks {
            self.checks(checks, value);
        }
    }

    fn object(&mut self, node: &Node, map: &Map<String, Value>) {
        for name in &node.required {
            let present = match map.get(&**name) {
                None => false,
                // A null the schema does not allow is pruned before validation.
                Some(Value::Null) => node
                    .property(name)
                    .is_some_and(|p| self.arena.node(p).nullable),
                Some(_) => true,
            };
            let defaulted = node
                .property(name)
                .is_some_and(|p| self.arena.node(p).default.is_some());
            if !present && !defaulted {
                let len = self.push_field(name);
                self.errors.push(FieldError::required(&self.path, ""));
                self.path.truncate(len);
            }
        }
        if node.embedded_resource {
            self.embedded_type_meta(map);
        }
        for (key, child) in map {
            let embedded_meta = node.embedded_resource && key == "metadata";
            let schema = match node.property(key) {
                // An embedded resource's metadata is ObjectMeta whatever the CRD says.
                _ if embedded_meta && self.arena.object_meta.is_some() => self.arena.object_meta,
                Some(id) => Some(id),
                None if node.embedded_resource && (key == "apiVersion" || key == "kind") => None,
                None if embedded_meta => None,
                None => match node.extra {
                    Extra::Schema(id) => Some(id),
                    Extra::Allow => None,
                    Extra::Deny => {
                        let len = self.push_field(key);
                        self.errors.push(FieldError::unknown(&self.path));
                        self.path.truncate(len);
                        continue;
                    }
                },
            };
            let Some(schema) = schema else { continue };
            if child.is_null() && !self.arena.node(schema).nullable {
                // kube-apiserver prunes non-nullable nulls (or defaults them).
                continue;
            }
            let len = self.push_field(key);
            self.node(schema, child);
            if embedded_meta && child.is_object() {
                meta::validate_object_meta(
                    child,
                    meta::NameRule::Subdomain,
                    true,
                    false,
                    &self.path.clone(),
                    &mut self.errors,
                );
            }
            self.path.truncate(len);
        }
    }

    /// `x-kubernetes-embedded-resource`: apiVersion and kind are required strings.
    fn embedded_type_meta(&mut self, map: &Map<String, Value>) {
        for key in ["apiVersion", "kind"] {
            let len = self.push_field(key);
            match map.get(key) {
                None => self
                    .errors
                    .push(FieldError::required(&self.path, "must not be empty")),
                Some(Value::String(s)) if s.is_empty() => {
                    self.invalid(&Value::from(""), "must not be empty")
                }
                Some(Value::String(_)) => {}
                Some(other) => self.invalid(other, "must be a string"),
            }
            self.path.truncate(len);
        }
    }

    fn array(&mut self, node: &Node, items: &[Value]) {
        if let Some(item_schema) = node.items {
            for (i, item) in items.iter().enumerate() {
                let len = self.push_index(i);
                self.node(item_schema, item);
                self.path.truncate(len);
            }
        }
    }

    fn checks(&mut self, c: &Checks, value: &Value) {
        match value {
            Value::String(s) => self.string_checks(c, value, s),
            Value::Number(n) => self.number_checks(c, value, n),
            Value::Array(items) => self.array_checks(c, items),
            Value::Object(map) => {
                let n = map.len() as u64;
                if let Some(min) = c.min_properties.filter(|&m| n < m) {
                    let detail =
                        format!("{} should have at least {min} properties", self.in_body());
                    self.invalid(&Value::from(n), &detail);
                }
                if let Some(max) = c.max_properties.filter(|&m| n > m) {
                    let detail = format!("{} should have at most {max} properties", self.in_body());
                    self.invalid(&Value::from(n), &detail);
                }
            }
            _ => {}
        }
        if let Some(values) = &c.enum_values
            && !values.iter().any(|e| json_eq(e, value))
        {
            self.errors
                .push(FieldError::not_supported(&self.path, value, values));
        }
        self.junctors(c, value);
    }

    fn string_checks(&mut self, c: &Checks, value: &Value, s: &str) {
        let chars = s.chars().count() as u64;
        if let Some(max) = c.max_length.filter(|&m| chars > m) {
            self.errors.push(FieldError::too_long(&self.path, max));
        }
        if let Some(min) = c.min_length.filter(|&m| chars < m) {
            let detail = format!("{} should be at least {min} chars long", self.in_body());
            self.invalid(value, &detail);
        }
        if let Some(p) = &c.pattern
            && let Some(re) = p.regex()
            && !re.is_match(s)
        {
            let detail = format!("{} should match '{}'", self.in_body(), p.source);
            self.invalid(value, &detail);
        }
        let format_ok = match c.format {
            Format::DateTime => is_date_time(s),
            Format::Byte => is_base64(s),
            _ => true,
        };
        if !format_ok {
            let name = if c.format == Format::Byte {
                "byte"
            } else {
                "date-time"
            };
            let detail = format!("{} must be of type {name}: {s:?}", self.in_body());
            self.invalid(value, &detail);
        }
    }

    fn number_checks(&mut self, c: &Checks, value: &Value, n: &serde_json::Number) {
        let Some(x) = n.as_f64() else { return };
        if let Some(max) = c.maximum {
            let bad = if c.exclusive_maximum {
                x >= max
            } else {
                x > max
            };
            if bad {
                let op = if c.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                let detail = format!("{} should be {op} {max}", self.in_body());
                self.invalid(value, &detail);
            }
        }
        if let Some(min) = c.minimum {
            let bad = if c.exclusive_minimum {
                x <= min
            } else {
                x < min
            };
            if bad {
                let op = if c.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                let detail = format!("{} should be {op} {min}", self.in_body());
                self.invalid(value, &detail);
            }
        }
        if let Some(m) = c.multiple_of.filter(|&m| m > 0.0 && (x / m).fract() != 0.0) {
            let detail = format!("{} should be a multiple of {m}", self.in_body());
            self.invalid(value, &detail);
        }
        let range = match c.format {
            Format::Int32 => Some((f64::from(i32::MIN), f64::from(i32::MAX), "int32")),
            Format::Int64 => Some((i64::MIN as f64, i64::MAX as f64, "int64")),
            _ => None,
        };
        if let Some((lo, hi, name)) = range {
            let in_range = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => name == "int64" || i32::try_from(i).is_ok(),
                (None, Some(_)) => false,
                (None, None) => x >= lo && x <= hi,
            };
            if !in_range {
                let detail = format!("{} must be of type {name}", self.in_body());
                self.invalid(value, &detail);
            }
        }
    }

    fn array_checks(&mut self, c: &Checks, items: &[Value]) {
        let n = items.len();
        if let Some(max) = c.max_items.filter(|&m| n as u64 > m) {
            self.errors.push(FieldError::too_many(&self.path, n, max));
        }
        if let Some(min) = c.min_items.filter(|&m| (n as u64) < m) {
            let detail = format!("{} should have at least {min} items", self.in_body());
            self.invalid(&Value::from(n), &detail);
        }
        let keys: Option<&[String]> = match &c.list_type {
            ListType::Set => Some(&[]),
            ListType::Map(keys) => Some(keys),
            ListType::Atomic if c.unique_items => Some(&[]),
            ListType::Atomic => None,
        };
        let Some(keys) = keys else { return };
        let mut seen: Vec<Value> = Vec::with_capacity(n);
        for (i, item) in items.iter().enumerate() {
            let id = if keys.is_empty() {
                item.clone()
            } else {
                let mut m = Map::new();
                for k in keys {
                    if let Some(v) = item.get(k) {
                        m.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(m)
            };
            if seen.iter().any(|s| json_eq(s, &id)) {
                let len = self.push_index(i);
                self.errors.push(FieldError::duplicate(&self.path, &id));
                self.path.truncate(len);
            } else {
                seen.push(id);
            }
        }
    }

    fn junctors(&mut self, c: &Checks, value: &Value) {
        for &id in &c.all_of {
            self.node(id, value);
        }
        if !c.any_of.is_empty() && !c.any_of.iter().any(|&id| self.passes(id, value)) {
            let detail = format!(
                "{} must validate at least one schema (anyOf)",
                self.in_body()
            );
            self.invalid(value, &detail);
        }
        if !c.one_of.is_empty() {
            let passing = c
                .one_of
                .iter()
                .filter(|&&id| self.passes(id, value))
                .count();
            if passing != 1 {
                let detail = format!(
                    "{} must validate one and only one schema (oneOf). Found {passing} valid alternatives",
                    self.in_body()
                );
                self.invalid(value, &detail);
            }
        }
        if let Some(id) = c.not
            && self.passes(id, value)
        {
            let detail = format!("{} must not validate the schema (not)", self.in_body());
            self.invalid(value, &detail);
        }
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Loose RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// Standard base64 with padding, as Go's `encoding/base64.StdEncoding` decodes
/// `[]byte` fields (`\r` and `\n` are ignored).
fn is_base64(s: &str) -> bool {
    let b: Vec<u8> = s.bytes().filter(|c| *c != b'\r' && *c != b'\n').collect();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return false;
    }
    b[..b.len() - pad]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}
