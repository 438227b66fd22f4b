//! Validation errors (worded as kube-apiserver words them) and catalog load errors.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// What kind of rule a field broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The field is not declared in the schema (strict field validation).
    Unknown,
    /// A required field is missing.
    Required,
    /// The value is wrong: type, enum, pattern, format, bounds, length, duplicates.
    Invalid,
}

/// One violation found by [`ResourceType::validate`](super::ResourceType::validate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, like `spec.template.spec.domain.cpu.cores` or
    /// `spec.addresses[0]`; map entries are `.key`; empty for the object itself.
    pub path: String,
    /// What is wrong, worded as kube-apiserver words it, e.g. `Required value`,
    /// `Unsupported value: "x": supported values: "a", "b"` or
    /// `field not declared in schema`.
    pub reason: String,
    /// The kind of rule broken.
    pub kind: FieldErrorKind,
}

impl FieldError {
    /// A field that the schema does not declare.
    pub(crate) fn unknown(path: &str) -> Self {
        FieldError {
            path: path.to_owned(),
            reason: "field not declared in schema".to_owned(),
            kind: FieldErrorKind::Unknown,
        }
    }

    /// A missing required field; `detail` may be empty.
    pub(crate) fn required(path: &str, detail: &str) -> Self {
        FieldError {
            path: path.to_owned(),
            reason: with_detail("Required value".to_owned(), detail),
            kind: FieldErrorKind::Required,
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub(crate) fn invalid(path: &str, value: &Value, detail: &str) -> Self {
        Self::with_value(path, "Invalid value", value, detail)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub(crate) fn not_supported(path: &str, value: &Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(render_value).collect();
        let detail = format!("supported values: {}", list.join(", "));
        Self::with_value(path, "Unsupported value", value, &detail)
    }

    /// `Too long: may not be more than <max> bytes`.
    pub(crate) fn too_long(path: &str, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        FieldError {
            path: path.to_owned(),
            reason: format!("Too long: may not be more than {max} {unit}"),
            kind: FieldErrorKind::Invalid,
        }
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub(crate) fn too_many(path: &str, actual: usize, max: u64) -> Self {
        let detail = format!("must have at most {max} items");
        Self::with_value(path, "Too many", &Value::from(actual), &detail)
    }

    /// `Duplicate value: <value>`.
    pub(crate) fn duplicate(path: &str, value: &Value) -> Self {
        Self::with_value(path, "Duplicate value", value, "")
    }

    fn with_value(path: &str, what: &str, value: &Value, detail: &str) -> Self {
        FieldError {
            path: path.to_owned(),
            reason: with_detail(format!("{what}: {}", render_value(value)), detail),
            kind: FieldErrorKind::Invalid,
        }
    }
}

fn with_detail(mut head: String, detail: &str) -> String {
    if !detail.is_empty() {
        head.push_str(": ");
        head.push_str(detail);
    }
    head
}

/// Renders a bad value the way `field.Error` does: strings quoted, numbers and
/// booleans bare, `null` as `"null"`, anything else as compact JSON.
pub(crate) fn render_value(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_owned(),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldError {
    /// `spec.foo: Unsupported value: "x": supported values: "a", "b"`,
    /// `spec.bar: Required value`, or `.spec.baz: field not declared in schema`
    /// (the structured-merge-diff wording kube-apiserver uses for unknown fields).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.path.is_empty()) {
            (_, true) => f.write_str(&self.reason),
            (FieldErrorKind::Unknown, false) => write!(f, ".{}: {}", self.path, self.reason),
            (_, false) => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

impl std::error::Error for FieldError {}

/// Why the upstream catalog (or the schema bundle) could not be loaded or generated.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// No upstream schema directory was found.
    #[error(
        "upstream schema directory not found (set KUBECLOUD_UPSTREAM); looked in: {}",
        .looked_in.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Every directory that was tried, in order.
        looked_in: Vec<PathBuf>,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}: {reason}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A file is not valid YAML or JSON.
    #[error("cannot parse {}: {reason}", .file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A file parsed but does not hold what was expected (a CRD without names,
    /// a `$ref` to nothing, a missing core schema, ...).
    #[error("bad schema in {}: {reason}", .file.display())]
    Schema {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The upstream directory's `PROVENANCE.md` does not describe a file the schema bundle is
    /// generated from (no row, or another sha256).
    #[error("{}: {reason}", .file.display())]
    Provenance {
        /// The `PROVENANCE.md` file.
        file: PathBuf,
        /// What is missing or different.
        reason: String,
    },
    /// Two files register the same resource.
    #[error("resource registered twice: {resource}")]
    Duplicate {
        /// The resource, e.g. `kubevirt.io/v1/virtualmachines`.
        resource: String,
    },
}
