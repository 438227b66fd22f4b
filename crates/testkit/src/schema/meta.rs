//! ObjectMeta rules kube-apiserver enforces beyond the schema: name and
//! generateName format, namespace format, label and annotation keys and values.
//! Messages are those of `k8s.io/apimachinery/pkg/util/validation`.

use serde_json::Value;

use super::FieldError;

/// Which format an object's name must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 subdomain (most kinds, every custom resource).
    Subdomain,
    /// RFC 1123 label (Namespace).
    Label,
    /// RFC 1035 label (Service).
    Dns1035Label,
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
/// Total size limit of all annotation keys and values.
const ANNOTATIONS_MAX_BYTES: u64 = 256 * 1024;

/// `RegexError` of apimachinery: the message, examples and the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: String = examples
        .iter()
        .map(|e| format!("'{e}', "))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("{msg} (e.g. {examples}regex used for validation is '{fmt}')")
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

/// Messages for a value that is not an RFC 1123 subdomain (none if it is one).
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 253 {
        msgs.push(max_len_error(253));
    }
    if !s.split('.').all(is_label) {
        msgs.push(regex_error(SUBDOMAIN_MSG, SUBDOMAIN_FMT, &["example.com"]));
    }
    msgs
}

/// Messages for a value that is not an RFC 1123 label.
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push(max_len_error(63));
    }
    if !is_label(s) {
        msgs.push(regex_error(LABEL_MSG, LABEL_FMT, &["my-name", "123-abc"]));
    }
    msgs
}

/// Messages for a value that is not an RFC 1035 label.
pub(crate) fn dns1035_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push(max_len_error(63));
    }
    if !(is_label(s) && s.as_bytes()[0].is_ascii_lowercase()) {
        msgs.push(regex_error(
            DNS1035_MSG,
            DNS1035_FMT,
            &["my-name", "abc-123"],
        ));
    }
    msgs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, or empty when `allow_empty`.
fn is_qualified_part(s: &str, allow_empty: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return allow_empty;
    }
    b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Messages for a value that is not a qualified name (`[prefix/]name`), as label
/// and annotation keys must be.
pub(crate) fn qualified_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                msgs.push("prefix part must be non-empty".to_owned());
            } else {
                msgs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            msgs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_MSG, QUALIFIED_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return msgs;
        }
    };
    if name.is_empty() {
        msgs.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            msgs.push(format!("name part {}", max_len_error(63)));
        }
        if !is_qualified_part(name, false) {
            msgs.push(format!(
                "name part {}",
                regex_error(
                    QUALIFIED_MSG,
                    QUALIFIED_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
        }
    }
    msgs
}

/// Messages for a value that is not a valid label value.
pub(crate) fn label_value(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push(max_len_error(63));
    }
    if !is_qualified_part(s, true) {
        msgs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    msgs
}

fn name_messages(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => dns1123_subdomain(name),
        NameRule::Label => dns1123_label(name),
        NameRule::Dns1035Label => dns1035_label(name),
    }
}

/// `maskTrailingDash` of apimachinery: a generateName may end in `-`.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let mut masked: String = name.chars().collect();
        masked.pop();
        masked.pop();
        masked.push('a');
        masked
    } else {
        name.to_owned()
    }
}

/// Checks the ObjectMeta `meta` found at `path`. `root` is true for an
/// object's own metadata (then a name or generateName is required) and false
/// for an embedded resource's.
pub(crate) fn validate_object_meta(
    meta: &Value,
    rule: NameRule,
    namespaced: bool,
    root: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let field = |name: &str| format!("{path}.{name}");
    let text = |key: &str| meta.get(key).and_then(Value::as_str).unwrap_or("");
    let name = text("name");
    let generate_name = text("generateName");
    if !generate_name.is_empty() {
        for msg in name_messages(rule, &mask_trailing_dash(generate_name)) {
            errors.push(FieldError::invalid(
                &field("generateName"),
                &Value::from(generate_name),
                &msg,
            ));
        }
    }
    if name.is_empty() {
        if root && generate_name.is_empty() {
            errors.push(FieldError::required(
                &field("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_messages(rule, name) {
            errors.push(FieldError::invalid(
                &field("name"),
                &Value::from(name),
                &msg,
            ));
        }
    }
    let namespace = text("namespace");
    if namespaced && !namespace.is_empty() {
        for msg in dns1123_label(namespace) {
            errors.push(FieldError::invalid(
                &field("namespace"),
                &Value::from(namespace),
                &msg,
            ));
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        let at = field("labels");
        for (key, value) in labels {
            for msg in qualified_name(key) {
                errors.push(FieldError::invalid(&at, &Value::from(key.as_str()), &msg));
            }
            if let Some(v) = value.as_str() {
                for msg in label_value(v) {
                    errors.push(FieldError::invalid(&at, value, &msg));
                }
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let at = field("annotations");
        let mut total = 0u64;
        for (key, value) in annotations {
            for msg in qualified_name(&key.to_lowercase()) {
                errors.push(FieldError::invalid(&at, &Value::from(key.as_str()), &msg));
            }
            total += (key.len() + value.as_str().map_or(0, str::len)) as u64;
        }
        if total > ANNOTATIONS_MAX_BYTES {
            errors.push(FieldError::too_long(&at, ANNOTATIONS_MAX_BYTES));
        }
    }
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        for (i, f) in finalizers.iter().enumerate() {
            let Some(f) = f.as_str() else { continue };
            for msg in qualified_name(f) {
                errors.push(FieldError::invalid(
                    &format!("{path}.finalizers[{i}]"),
                    &Value::from(f),
                    &msg,
                ));
            }
        }
    }
}
