//! The schema bundle: what the tests need from the upstream schema files, derived into two
//! compact JSON files committed under `crates/testkit/schemas/` and compiled into the crate, so
//! that the testkit needs nothing outside the repository.
//!
//! - `kubernetes.json`: for each CRD the catalog registers (the files of `load::CRD_DIRS` and
//!   `load::CRD_FILES`), its group, names, scope and served versions (subresources, printer
//!   columns, `openAPIV3Schema`); for the built-in kinds the double serves, the
//!   `components.schemas` entries of the Kubernetes OpenAPI documents reachable from them and
//!   from `ObjectMeta`.
//! - `linstor.json`: the LINSTOR REST OpenAPI document's `paths` (operations with their JSON
//!   request and response schemas) and `components` (`schemas`, `responses`).
//!
//! Each file starts with a `header` naming the command that made it and, for every upstream file
//! read, its path under the upstream directory, its sha256 and what `PROVENANCE.md` says about
//! it (repository, path there, commit, version). The sha256 must match `PROVENANCE.md`'s.
//!
//! Derived, not copied: every schema keeps only the keywords the validators read (see
//! [`CATALOG_KEYWORDS`] and [`LINSTOR_KEYWORDS`]); descriptions, examples, titles, CEL rules
//! (`x-kubernetes-validations`, not evaluated), the built-in documents' Go zero-value defaults
//! (ignored by the double), non-served CRD versions, unreachable definitions, operation
//! parameters and everything else the validators do not read are left out. Keys are written in
//! sorted order, so generating twice gives the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::CatalogError;
use super::load::{
    CORE_DOC, CORE_KINDS, CRD_DIRS, CRD_FILES, OBJECT_META, STORAGE_DOC, STORAGE_KINDS,
};
use super::locate;

/// The command that regenerates the bundle (from the repository's root).
pub const COMMAND: &str = "cargo run -p kubecloud-testkit --bin kubecloud-schema-bundle";

/// The bundle file of the Kubernetes schema catalog.
pub const CATALOG_FILE: &str = "kubernetes.json";

/// The bundle file of the LINSTOR REST OpenAPI document.
pub const LINSTOR_FILE: &str = "linstor.json";

/// The LINSTOR document, relative to the upstream directory.
const LINSTOR_DOC: &str = "linstor/rest_v1_openapi.yaml";

/// The committed catalog bundle, compiled in.
pub(crate) const CATALOG: &str = include_str!("../../schemas/kubernetes.json");

/// The committed LINSTOR bundle, compiled in.
pub(crate) const LINSTOR: &str = include_str!("../../schemas/linstor.json");

/// The schema keywords the catalog's compiler reads (`compile.rs`); a CRD schema keeps these,
/// a built-in one these but `default` (the built-in documents' defaults are Go zero values,
/// which the double ignores).
pub const CATALOG_KEYWORDS: &[&str] = &[
    "$ref",
    "additionalProperties",
    "allOf",
    "anyOf",
    "default",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "format",
    "items",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "not",
    "nullable",
    "oneOf",
    "pattern",
    "properties",
    "required",
    "type",
    "uniqueItems",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-preserve-unknown-fields",
];

/// The schema keywords the LINSTOR validator reads (`linstor/openapi.rs`); `default` is kept
/// only when it is `null` (the controller then accepts `null`).
pub const LINSTOR_KEYWORDS: &[&str] = &[
    "$ref",
    "additionalProperties",
    "allOf",
    "anyOf",
    "enum",
    "format",
    "items",
    "nullable",
    "oneOf",
    "properties",
    "required",
    "type",
];

/// The keys of a CRD `spec.versions` entry that are kept (besides `schema.openAPIV3Schema`).
const VERSION_KEYS: &[&str] = &[
    "additionalPrinterColumns",
    "deprecated",
    "deprecationWarning",
    "name",
    "served",
    "storage",
    "subresources",
];

/// The HTTP methods of an OpenAPI path item.
const METHODS: &[&str] = &[
    "delete", "get", "head", "options", "patch", "post", "put", "trace",
];

/// The directory of the committed bundle in the source tree.
pub fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// The committed bundle as compiled into this crate: `(file name, contents)`.
pub fn committed() -> [(&'static str, &'static str); 2] {
    [(CATALOG_FILE, CATALOG), (LINSTOR_FILE, LINSTOR)]
}

/// The upstream directory the generator reads: `$KUBECLOUD_UPSTREAM` if set, else the first
/// `shared/upstream` found walking up from this crate's manifest directory, then from the
/// current directory (the error lists every place tried).
pub fn upstream_dir() -> Result<PathBuf, CatalogError> {
    locate::upstream_dir()
}

/// Generates every bundle file from the upstream directory `upstream`: `(file name, contents)`.
///
/// Deterministic: the same upstream files give the same bytes.
pub fn generate(upstream: &Path) -> Result<Vec<(&'static str, String)>, CatalogError> {
    let provenance = Provenance::read(upstream)?;
    let (catalog, catalog_sources) = catalog_body(upstream, true)?;
    let catalog = with_header(catalog, &provenance, &catalog_sources)?;
    let (linstor, linstor_source) = linstor_body(upstream, true)?;
    let linstor = with_header(linstor, &provenance, &[linstor_source])?;
    Ok(vec![
        (CATALOG_FILE, to_text(&catalog, 3)),
        (LINSTOR_FILE, to_text(&linstor, 4)),
    ])
}

/// Writes `files` (as [`generate`] returns them) into `dir`, creating it.
pub fn write(dir: &Path, files: &[(&str, String)]) -> Result<(), CatalogError> {
    let io = |path: &Path, e: std::io::Error| CatalogError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// One upstream file read: its path under the upstream directory, its sha256, and, for a file
/// derived from another upstream file (`kubevirt/crds/`), the file it was derived from.
#[derive(Debug)]
pub(crate) struct Source {
    file: String,
    sha256: String,
    derived_from: Option<String>,
}

/// The catalog bundle's body (`builtIn` and `crds`) from the upstream directory, and the upstream
/// files read. Without `prune`, the body holds the documents as they are (every definition of
/// the core documents, every CRD whole): what the tests compare the bundle with.
pub(crate) fn catalog_body(
    upstream: &Path,
    prune: bool,
) -> Result<(Map<String, Value>, Vec<Source>), CatalogError> {
    let mut files = Vec::new();
    for sub in CRD_DIRS {
        files.extend(yaml_files(upstream, sub)?);
    }
    files.extend(CRD_FILES.iter().map(|f| (*f).to_owned()));
    let texts = files
        .iter()
        .map(|f| read(&upstream.join(f)))
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = parse_all(upstream, &files, &texts)?;

    let mut sources = Vec::new();
    let mut built_in = Map::new();
    for (doc, kinds) in [(CORE_DOC, CORE_KINDS), (STORAGE_DOC, STORAGE_KINDS)] {
        let path = upstream.join(doc);
        let text = read(&path)?;
        let value: Value = serde_json::from_str(&text).map_err(|e| CatalogError::Parse {
            file: path.clone(),
            reason: e.to_string(),
        })?;
        let definitions = if prune {
            let roots: Vec<&str> = std::iter::once(OBJECT_META)
                .chain(kinds.iter().map(|k| k.definition))
                .collect();
            let reachable =
                reachable_definitions(&value, &roots).map_err(|reason| CatalogError::Schema {
                    file: path.clone(),
                    reason,
                })?;
            Value::Object(reachable)
        } else {
            value
                .pointer("/components/schemas")
                .cloned()
                .unwrap_or_default()
        };
        built_in.insert(doc.to_owned(), definitions);
        sources.push(Source {
            file: doc.to_owned(),
            sha256: sha256(&text),
            derived_from: None,
        });
    }

    let mut crds = Vec::new();
    for ((file, text), docs) in files.iter().zip(&texts).zip(parsed) {
        let mut derived_from = None;
        for doc in docs {
            if file.starts_with("kubevirt/crds/") {
                // Derived by whoever collected the upstream files, from the virt-operator
                // validation named by the CRD's singular (PROVENANCE.md, "Derived files").
                let singular = doc.pointer("/spec/names/singular").and_then(Value::as_str);
                derived_from = singular.map(|s| format!("kubevirt/validations_generated/{s}.yaml"));
            }
            if !prune {
                crds.push(json!({"file": file, "crd": doc}));
            } else if let Some(crd) = crd_entry(upstream, file, &doc) {
                crds.push(json!({"file": file, "crd": crd}));
            }
        }
        sources.push(Source {
            file: file.clone(),
            sha256: sha256(text),
            derived_from,
        });
    }
    let mut body = Map::new();
    body.insert("builtIn".to_owned(), Value::Object(built_in));
    body.insert("crds".to_owned(), Value::Array(crds));
    Ok((body, sources))
}

/// The LINSTOR bundle's body (`openapi`: paths and components; without `prune`, the document as
/// it is) and the file read.
pub(crate) fn linstor_body(
    upstream: &Path,
    prune: bool,
) -> Result<(Map<String, Value>, Source), CatalogError> {
    let path = upstream.join(LINSTOR_DOC);
    let text = read(&path)?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| CatalogError::Parse {
        file: path.clone(),
        reason: e.to_string(),
    })?;
    let openapi = if prune { prune_linstor_doc(&doc) } else { doc };
    let mut body = Map::new();
    body.insert("openapi".to_owned(), openapi);
    Ok((
        body,
        Source {
            file: LINSTOR_DOC.to_owned(),
            sha256: sha256(&text),
            derived_from: None,
        },
    ))
}

/// The CRD document `doc` of `file` reduced to what registration reads, or `None` (with a
/// warning) if it is not a CRD.
fn crd_entry(upstream: &Path, file: &str, doc: &Value) -> Option<Value> {
    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        tracing::warn!(
            file = %upstream.join(file).display(),
            "skipping a document that is not a CRD"
        );
        return None;
    }
    let mut spec = Map::new();
    for key in ["group", "names", "scope"] {
        if let Some(v) = doc.pointer(&format!("/spec/{key}")) {
            spec.insert(key.to_owned(), v.clone());
        }
    }
    match doc.pointer("/spec/versions") {
        Some(Value::Array(versions)) => {
            let served = versions
                .iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
                .map(crd_version)
                .collect();
            spec.insert("versions".to_owned(), Value::Array(served));
        }
        Some(other) => {
            spec.insert("versions".to_owned(), other.clone());
        }
        None => {}
    }
    let mut crd = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = doc.get(key) {
            crd.insert(key.to_owned(), v.clone());
        }
    }
    if let Some(name) = doc.pointer("/metadata/name") {
        crd.insert("metadata".to_owned(), json!({"name": name}));
    }
    crd.insert("spec".to_owned(), Value::Object(spec));
    Some(Value::Object(crd))
}

/// One served version of a CRD: its names, flags, subresources, printer columns and schema.
fn crd_version(v: &Value) -> Value {
    let mut out = Map::new();
    for key in VERSION_KEYS {
        if let Some(x) = v.get(*key) {
            out.insert((*key).to_owned(), x.clone());
        }
    }
    if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
        let schema = prune_schema(schema, CATALOG_KEYWORDS, true);
        out.insert("schema".to_owned(), json!({ "openAPIV3Schema": schema }));
    }
    Value::Object(out)
}

/// The `components.schemas` entries of the OpenAPI document `doc` reachable from `roots`
/// through `$ref`s (a root that is missing is left for the compiler to report).
fn reachable_definitions(doc: &Value, roots: &[&str]) -> Result<Map<String, Value>, String> {
    let definitions = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or("no components.schemas")?;
    let mut out = Map::new();
    let mut queue: Vec<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while let Some(name) = queue.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(schema) = definitions.get(&name) else {
            continue;
        };
        let schema = prune_schema(schema, CATALOG_KEYWORDS, false);
        collect_refs(&schema, &mut queue);
        out.insert(name, schema);
    }
    Ok(out)
}

/// Every `$ref` to `#/components/schemas/<name>` in `v`, as `<name>`.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// `schema` with only the `keywords` the catalog's compiler reads, recursively through the
/// keywords that hold schemas; `default` only if `keep_default`.
fn prune_schema(schema: &Value, keywords: &[&str], keep_default: bool) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let sub = |v: &Value| prune_schema(v, keywords, keep_default);
    let mut out = Map::new();
    for (k, v) in map {
        let kept = match (k.as_str(), v) {
            ("default", _) if !keep_default => continue,
            (k, _) if !keywords.contains(&k) => continue,
            ("properties", Value::Object(props)) => {
                Value::Object(props.iter().map(|(n, p)| (n.clone(), sub(p))).collect())
            }
            ("additionalProperties" | "not", _) => sub(v),
            ("items", Value::Array(items)) | ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                Value::Array(items.iter().map(sub).collect())
            }
            ("items", _) => sub(v),
            _ => v.clone(),
        };
        out.insert(k.clone(), kept);
    }
    Value::Object(out)
}

/// A LINSTOR schema with only the keywords its validator reads ([`LINSTOR_KEYWORDS`], and
/// `default` when `null`). The validator accepts `null` for an empty schema: a schema that only
/// had other keys (a description) becomes `{"nullable": false}`, which refuses `null` as before.
fn prune_linstor_schema(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let kept = match (k.as_str(), v) {
            ("default", Value::Null) => Value::Null,
            (k, _) if !LINSTOR_KEYWORDS.contains(&k) => continue,
            ("properties", Value::Object(props)) => Value::Object(
                props
                    .iter()
                    .map(|(n, p)| (n.clone(), prune_linstor_schema(p)))
                    .collect(),
            ),
            ("additionalProperties" | "items", _) => prune_linstor_schema(v),
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                Value::Array(items.iter().map(prune_linstor_schema).collect())
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), kept);
    }
    if out.is_empty() && !map.is_empty() {
        out.insert("nullable".to_owned(), Value::Bool(false));
    }
    Value::Object(out)
}

/// A request body or response: its `$ref`, and its `application/json` schema, pruned.
fn prune_linstor_body(body: &Value) -> Value {
    let mut out = Map::new();
    if let Some(r) = body.get("$ref") {
        out.insert("$ref".to_owned(), r.clone());
    }
    if let Some(schema) = body.pointer("/content/application~1json/schema") {
        out.insert(
            "content".to_owned(),
            json!({"application/json": {"schema": prune_linstor_schema(schema)}}),
        );
    }
    Value::Object(out)
}

/// The LINSTOR document reduced to what the validator reads: operations (request body and
/// responses) and `components.schemas` and `components.responses`.
fn prune_linstor_doc(doc: &Value) -> Value {
    let mut paths = Map::new();
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        let mut ops = Map::new();
        for method in METHODS {
            let Some(op) = item.get(*method).filter(|op| op.is_object()) else {
                continue;
            };
            let mut out = Map::new();
            if let Some(body) = op.get("requestBody") {
                out.insert("requestBody".to_owned(), prune_linstor_body(body));
            }
            if let Some(responses) = op.get("responses").and_then(Value::as_object) {
                let responses = responses
                    .iter()
                    .map(|(status, r)| (status.clone(), prune_linstor_body(r)))
                    .collect();
                out.insert("responses".to_owned(), Value::Object(responses));
            }
            ops.insert((*method).to_owned(), Value::Object(out));
        }
        paths.insert(template.clone(), Value::Object(ops));
    }
    let map_of = |ptr: &str, f: fn(&Value) -> Value| -> Value {
        Value::Object(
            doc.pointer(ptr)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), f(v)))
                .collect(),
        )
    };
    json!({
        "paths": paths,
        "components": {
            "schemas": map_of("/components/schemas", prune_linstor_schema),
            "responses": map_of("/components/responses", prune_linstor_body),
        },
    })
}

/// `body` with a `header` naming the command and every source with its provenance.
fn with_header(
    body: Map<String, Value>,
    provenance: &Provenance,
    sources: &[Source],
) -> Result<Value, CatalogError> {
    let sources = sources
        .iter()
        .map(|s| provenance.describe(s))
        .collect::<Result<Vec<_>, _>>()?;
    let header = json!({
        "generatedBy": COMMAND,
        "note": "Derived from the upstream files below (paths relative to ../shared/upstream): only \
                 what the testkit's validators read, descriptions and CEL rules left out. Do not \
                 edit; regenerate.",
        "sources": sources,
    });
    // The header first, then the body's keys in order.
    let mut out = Map::new();
    out.insert("header".to_owned(), header);
    out.extend(body);
    Ok(Value::Object(out))
}

/// What `PROVENANCE.md` of the upstream directory says: its tables, by their first column.
struct Provenance {
    path: PathBuf,
    /// The "Files" tables: file path -> column -> cell.
    files: BTreeMap<String, BTreeMap<String, String>>,
    /// The "Snapshots" table: system -> column -> cell.
    systems: BTreeMap<String, BTreeMap<String, String>>,
    /// The Kubernetes section's repository, commit and version, if it names them.
    kubernetes: Option<(String, String, String)>,
}

impl Provenance {
    fn read(upstream: &Path) -> Result<Provenance, CatalogError> {
        let path = upstream.join("PROVENANCE.md");
        let text = read(&path)?;
        let mut files = BTreeMap::new();
        let mut systems = BTreeMap::new();
        let lines: Vec<&str> = text.lines().collect();
        let cells = |line: &str| -> Vec<String> {
            let line = line.trim().trim_start_matches('|').trim_end_matches('|');
            line.split('|').map(|c| c.trim().to_owned()).collect()
        };
        let mut i = 0;
        while i + 1 < lines.len() {
            let is_table = lines[i].trim_start().starts_with('|')
                && lines[i + 1].trim_start().starts_with("|---");
            if !is_table {
                i += 1;
                continue;
            }
            let header = cells(lines[i]);
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                let row = cells(lines[i]);
                let map: BTreeMap<String, String> =
                    header.iter().cloned().zip(row.iter().cloned()).collect();
                match header[0].as_str() {
                    "file" => {
                        files.insert(row[0].clone(), map);
                    }
                    "system" => {
                        systems.insert(row[0].clone(), map);
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        let re = regex::Regex::new(
            r"(\S+/\S+) at ([0-9a-f]{12,40}), which reports (v[0-9][0-9.]*[0-9])",
        )
        .expect("valid regex");
        let kubernetes = re
            .captures(&text)
            .map(|c| (c[1].to_owned(), c[2].to_owned(), c[3].to_owned()));
        Ok(Provenance {
            path,
            files,
            systems,
            kubernetes,
        })
    }

    /// The header entry of `source`: file, sha256 and provenance; an error if `PROVENANCE.md`
    /// has no row for it, or lists another sha256.
    fn describe(&self, source: &Source) -> Result<Value, CatalogError> {
        let bad = |reason: String| CatalogError::Provenance {
            file: self.path.clone(),
            reason,
        };
        let key = source.derived_from.as_deref().unwrap_or(&source.file);
        let row = self
            .files
            .get(key)
            .ok_or_else(|| bad(format!("no row for {key}")))?;
        if source.derived_from.is_none() {
            let listed = row.get("sha256").map(String::as_str).unwrap_or("");
            if listed != source.sha256 {
                return Err(bad(format!(
                    "{} has sha256 {}, PROVENANCE.md lists {listed:?}: update PROVENANCE.md",
                    source.file, source.sha256
                )));
            }
        }
        let system = source.file.split('/').next().unwrap_or("");
        let (repository, commit, version) = if system == "kubernetes" {
            let (repository, commit, version) = self
                .kubernetes
                .clone()
                .ok_or_else(|| bad("the Kubernetes section names no version".to_owned()))?;
            (repository, commit, version)
        } else {
            let snapshot = self
                .systems
                .get(system)
                .ok_or_else(|| bad(format!("no snapshot row for {system}")))?;
            let cell = |k: &str| {
                row.get(k)
                    .or_else(|| snapshot.get(k))
                    .cloned()
                    .unwrap_or_default()
            };
            (
                cell("repository"),
                cell("source commit and date"),
                snapshot.get("nearest tag").cloned().unwrap_or_default(),
            )
        };
        let mut out = Map::new();
        out.insert("file".to_owned(), json!(source.file));
        out.insert("sha256".to_owned(), json!(source.sha256));
        if let Some(from) = &source.derived_from {
            out.insert("derivedFrom".to_owned(), json!(from));
        }
        out.insert("repository".to_owned(), json!(repository));
        out.insert(
            "path".to_owned(),
            json!(row.get("path in repo").cloned().unwrap_or_default()),
        );
        out.insert("commit".to_owned(), json!(commit));
        out.insert("version".to_owned(), json!(version));
        Ok(Value::Object(out))
    }
}

/// `value` as the bundle's text: JSON with keys sorted (the header first), the outer `depth`
/// levels one entry per line and everything deeper compact, so that a regeneration's diff shows
/// which definitions, CRDs or operations changed.
fn to_text(value: &Value, depth: usize) -> String {
    let mut out = String::new();
    layout(value, depth, 0, &mut out);
    out.push('\n');
    out
}

fn layout(value: &Value, depth: usize, indent: usize, out: &mut String) {
    let pad = |n: usize| " ".repeat(n);
    match value {
        Value::Object(map) if depth > 0 && !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (k.as_str() != "header", k.as_str()));
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&compact(&json!(k)));
                out.push(':');
                layout(&map[*k], depth - 1, indent + 1, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(items) if depth > 0 && !items.is_empty() => {
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                layout(v, depth - 1, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        other => out.push_str(&compact(other)),
    }
}

/// `value` as compact JSON with every object's keys sorted.
fn compact(value: &Value) -> String {
    serde_json::to_string(&sorted(value)).expect("JSON values serialize")
}

/// `value` with every object's keys in sorted order (whatever map serde_json was built with).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| k.as_str());
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `*.yaml` files of `upstream/sub`, sorted, as paths relative to `upstream`.
fn yaml_files(upstream: &Path, sub: &str) -> Result<Vec<String>, CatalogError> {
    let dir = upstream.join(sub);
    let io = |e: std::io::Error| CatalogError::Io {
        path: dir.clone(),
        reason: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            files.push(format!("{sub}/{name}"));
        }
    }
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<String, CatalogError> {
    std::fs::read_to_string(path).map_err(|e| CatalogError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Every non-empty YAML document of `text`, as JSON values.
fn parse_yaml(path: &Path, text: &str) -> Result<Vec<Value>, CatalogError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| CatalogError::Parse {
        file: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(|v| !v.is_null()).collect())
}

/// Parses every file, on up to four threads, keeping the files' order.
fn parse_all(
    upstream: &Path,
    files: &[String],
    texts: &[String],
) -> Result<Vec<Vec<Value>>, CatalogError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let (Some(file), Some(text)) = (files.get(i), texts.get(i)) else {
                break;
            };
            done.push((i, parse_yaml(&upstream.join(file), text)));
        }
        done
    };
    let mut results: Vec<Option<Result<Vec<Value>, CatalogError>>> =
        (0..files.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().expect("schema parser thread panicked"));
        }
        for (i, r) in all {
            results[i] = Some(r);
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every file parsed"))
        .collect()
}
