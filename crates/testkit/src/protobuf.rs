//! Decoding the Kubernetes protobuf encoding of a few built-in kinds into JSON, so that
//! `kubectl create namespace|configmap|secret`, which send protobuf bodies, work.
//!
//! The envelope is the magic `k8s\0` and a `runtime.Unknown` (`typeMeta` = 1, `raw` = 2); `raw`
//! holds the object (`k8s.io/api/core/v1/generated.proto`). Decoded: `Namespace`, `ConfigMap`,
//! `Secret`, and the `ObjectMeta` fields a client sets (name, generateName, namespace,
//! resourceVersion, labels, annotations, finalizers); fields the server sets (uid, timestamps,
//! generation, selfLink, status) are ignored. Any other kind or field is refused with 415, as a
//! server that cannot decode a body answers.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

fn refuse(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json (got {MEDIA_TYPE}: the API server double decodes Namespace, \
             ConfigMap and Secret only; {why})"
        ),
    )
}

/// One field of a message: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of a message, in order.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(&mut b)?),
            2 => {
                let len = usize::try_from(varint(&mut b)?).map_err(refuse)?;
                if len > b.len() {
                    return Err(refuse("truncated message"));
                }
                let (v, rest) = b.split_at(len);
                b = rest;
                Field::Bytes(v)
            }
            other => {
                return Err(refuse(format!(
                    "wire type {other} is not used by these kinds"
                )));
            }
        };
        out.push((number, field));
    }
    Ok(out)
}

fn varint(b: &mut &[u8]) -> Result<u64, ApiError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or_else(|| refuse("truncated varint"))?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(refuse("varint too long"))
}

fn bytes<'a>(f: &Field<'a>, what: &str) -> Result<&'a [u8], ApiError> {
    match f {
        Field::Bytes(b) => Ok(b),
        Field::Varint(_) => Err(refuse(format!("{what} is not length-delimited"))),
    }
}

fn string(f: &Field<'_>, what: &str) -> Result<String, ApiError> {
    String::from_utf8(bytes(f, what)?.to_vec()).map_err(|_| refuse(format!("{what} is not UTF-8")))
}

/// A `map<string, string>` (or `map<string, bytes>` as base64, when `binary`) entry into `into`.
fn map_entry(f: &Field<'_>, binary: bool, into: &mut Map<String, Value>) -> Result<(), ApiError> {
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(bytes(f, "a map entry")?)? {
        match n {
            1 => key = string(&f, "a map key")?,
            2 if binary => {
                value = Value::String(
                    base64::engine::general_purpose::STANDARD.encode(bytes(&f, "a map value")?),
                );
            }
            2 => value = Value::String(string(&f, "a map value")?),
            _ => return Err(refuse(format!("field {n} of a map entry"))),
        }
    }
    into.insert(key, value);
    Ok(())
}

fn set_nonempty(o: &mut Map<String, Value>, key: &str, s: String) {
    if !s.is_empty() {
        o.insert(key.into(), Value::String(s));
    }
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, f) in fields(b)? {
        match n {
            1 => set_nonempty(&mut m, "name", string(&f, "metadata.name")?),
            2 => set_nonempty(&mut m, "generateName", string(&f, "metadata.generateName")?),
            3 => set_nonempty(&mut m, "namespace", string(&f, "metadata.namespace")?),
            // selfLink, uid, generation, creationTimestamp, deletionTimestamp: set by the server.
            4 | 5 | 7 | 8 | 9 => {}
            6 => set_nonempty(
                &mut m,
                "resourceVersion",
                string(&f, "metadata.resourceVersion")?,
            ),
            11 => map_entry(&f, false, &mut labels)?,
            12 => map_entry(&f, false, &mut annotations)?,
            14 => finalizers.push(Value::String(string(&f, "metadata.finalizers")?)),
            _ => return Err(refuse(format!("field {n} of ObjectMeta"))),
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

fn boolean(f: &Field<'_>, what: &str) -> Result<bool, ApiError> {
    match f {
        Field::Varint(v) => Ok(*v != 0),
        Field::Bytes(_) => Err(refuse(format!("{what} is not a varint"))),
    }
}

/// The object in `raw` of `kind`, as JSON (without apiVersion and kind).
fn object(kind: &str, raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut o = Map::new();
    let (mut data, mut binary_data, mut string_data) = (Map::new(), Map::new(), Map::new());
    for (n, f) in fields(raw)? {
        match (kind, n) {
            (_, 1) => {
                o.insert("metadata".into(), object_meta(bytes(&f, "metadata")?)?);
            }
            ("Namespace", 2) => {
                let mut finalizers = Vec::new();
                for (n, f) in fields(bytes(&f, "spec")?)? {
                    match n {
                        1 => finalizers.push(Value::String(string(&f, "spec.finalizers")?)),
                        _ => return Err(refuse(format!("field {n} of NamespaceSpec"))),
                    }
                }
                if !finalizers.is_empty() {
                    o.insert("spec".into(), json!({ "finalizers": finalizers }));
                }
            }
            // NamespaceStatus: set by the server.
            ("Namespace", 3) => {}
            ("ConfigMap", 2) => map_entry(&f, false, &mut data)?,
            ("ConfigMap", 3) => map_entry(&f, true, &mut binary_data)?,
            ("ConfigMap", 4) | ("Secret", 5) => {
                o.insert("immutable".into(), Value::Bool(boolean(&f, "immutable")?));
            }
            ("Secret", 2) => map_entry(&f, true, &mut data)?,
            ("Secret", 3) => set_nonempty(&mut o, "type", string(&f, "type")?),
            ("Secret", 4) => map_entry(&f, false, &mut string_data)?,
            _ => return Err(refuse(format!("field {n} of {kind}"))),
        }
    }
    for (key, m) in [
        ("data", data),
        ("binaryData", binary_data),
        ("stringData", string_data),
    ] {
        if !m.is_empty() {
            o.insert(key.into(), Value::Object(m));
        }
    }
    Ok(o)
}

/// A protobuf body as the JSON object it encodes.
pub(crate) fn to_json(body: &[u8]) -> Result<Value, ApiError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| refuse("no k8s protobuf envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(unknown)? {
        match n {
            1 => {
                for (n, f) in fields(bytes(&f, "typeMeta")?)? {
                    match n {
                        1 => api_version = string(&f, "apiVersion")?,
                        2 => kind = string(&f, "kind")?,
                        _ => return Err(refuse(format!("field {n} of TypeMeta"))),
                    }
                }
            }
            2 => raw = bytes(&f, "raw")?,
            // contentEncoding, contentType: empty for objects.
            3 | 4 => {}
            _ => return Err(refuse(format!("field {n} of runtime.Unknown"))),
        }
    }
    if api_version != "v1" || !matches!(kind.as_str(), "Namespace" | "ConfigMap" | "Secret") {
        return Err(refuse(format!("this body is a {api_version} {kind}")));
    }
    let mut o = object(&kind, raw)?;
    o.insert("apiVersion".into(), Value::String(api_version));
    o.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(n << 3 | 2).expect("small field number")];
        out.push(u8::try_from(payload.len()).expect("short payload"));
        out.extend_from_slice(payload);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, b"v1"), field(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), field(1, &type_meta), field(2, raw)].concat()
    }

    #[test]
    fn decodes_a_secret() {
        let meta = [
            field(1, b"s1"),
            field(3, b""),
            field(5, b""),
            field(11, &entry("app", b"web")),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            field(2, &entry("password", b"hunter2")),
            field(3, b"Opaque"),
        ]
        .concat();
        let got = to_json(&envelope("Secret", &raw)).expect("decoded");
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "s1", "labels": {"app": "web"}},
                   "data": {"password": "aHVudGVyMg=="}})
        );
    }

    #[test]
    fn refuses_other_kinds_and_unknown_fields() {
        let e = to_json(&envelope("Service", &field(1, &field(1, b"x")))).expect_err("Service");
        assert_eq!(e.code, 415);
        assert!(e.message.contains("v1 Service"), "{}", e.message);
        let e = to_json(&envelope("ConfigMap", &field(9, b"?"))).expect_err("field 9");
        assert!(e.message.contains("field 9 of ConfigMap"), "{}", e.message);
        assert_eq!(to_json(b"{}").expect_err("no envelope").code, 415);
    }
}
