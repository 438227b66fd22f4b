//! List bodies without `metadata.managedFields`.
//!
//! kube-apiserver returns every object of a list with its `managedFields`: one entry per field
//! manager, each a tree of every field that manager set (`fieldsV1`), often as large as the
//! object itself. Nothing in kubecloud reads them from a list, yet decoding them (a
//! `serde_json::Value` map per field) was most of the CPU of a plan. [`without_managed_fields`]
//! cuts them out of the JSON text before it is decoded, in one pass that only looks at the
//! places the key occurs.

use memchr::memmem;

/// The key, with its quotes, as it appears in JSON text.
const KEY: &[u8] = b"\"managedFields\"";

/// `body` (a JSON document) with every `"managedFields": [...]` member removed, along with the
/// comma that separated it from its neighbour. Only members whose value is an array are
/// removed — the shape of `ObjectMeta.managedFields` — so a map key of that name holding a
/// string (a ConfigMap's or a Secret's data) stays. Occurrences inside strings (escaped as
/// `\"managedFields\"`) are not members and stay too. Text that is not valid JSON is returned
/// with whatever could be removed; decoding it fails as it would have.
pub(crate) fn without_managed_fields(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let finder = memmem::Finder::new(KEY);
    let mut found = finder.find_iter(body).peekable();
    if found.peek().is_none() {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    // Everything before `copied` has been copied (or deliberately skipped).
    let mut copied = 0;
    for at in found {
        if at < copied || !is_member(body, at) {
            continue;
        }
        let Some(value) = value_start(body, at + KEY.len()) else {
            continue;
        };
        if body[value] != b'[' {
            continue;
        }
        let Some(end) = skip_array(body, value) else {
            break;
        };
        out.extend_from_slice(&body[copied..at]);
        // The separating comma: the one before the member if any, else the one after it.
        while out.last().is_some_and(u8::is_ascii_whitespace) {
            out.pop();
        }
        copied = end;
        if out.last() == Some(&b',') {
            out.pop();
        } else {
            let next = skip_whitespace(body, end);
            if body.get(next) == Some(&b',') {
                copied = next + 1;
            }
        }
    }
    out.extend_from_slice(&body[copied..]);
    std::borrow::Cow::Owned(out)
}

/// Whether the quote at `at` opens a string (it is not escaped) that is followed by `:`, that
/// is, a member's key. An unescaped quote followed by a letter opens a string in valid JSON.
fn is_member(body: &[u8], at: usize) -> bool {
    let backslashes = body[..at].iter().rev().take_while(|&&b| b == b'\\').count();
    backslashes % 2 == 0 && body.get(skip_whitespace(body, at + KEY.len())) == Some(&b':')
}

/// Where the value of the member whose key ends at `after_key` starts.
fn value_start(body: &[u8], after_key: usize) -> Option<usize> {
    let colon = skip_whitespace(body, after_key);
    let value = skip_whitespace(body, colon + 1);
    (value < body.len()).then_some(value)
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end (one past the closing bracket) of the array opening at `start`. Brackets inside
/// strings do not count; in valid JSON, arrays and objects nest properly, so counting `[` and
/// `]` alone finds the closing one.
fn skip_array(body: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    loop {
        at += memchr::memchr3(b'"', b'[', b']', &body[at..])?;
        match body[at] {
            b'"' => at = skip_string(body, at)?,
            b'[' => {
                depth += 1;
                at += 1;
            }
            _ => {
                depth -= 1;
                at += 1;
                if depth == 0 {
                    return Some(at);
                }
            }
        }
    }
}

/// The end (one past the closing quote) of the string opening at `start`.
fn skip_string(body: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', body.get(at..)?)?;
        if body[at] == b'\\' {
            at += 2;
        } else {
            return Some(at + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without_managed_fields;
    use serde_json::{Value, json};

    fn strip(value: &Value) -> Value {
        let text = serde_json::to_vec_pretty(value).unwrap();
        let compact = serde_json::to_vec(value).unwrap();
        let pretty: Value = serde_json::from_slice(&without_managed_fields(&text)).unwrap();
        let plain: Value = serde_json::from_slice(&without_managed_fields(&compact)).unwrap();
        assert_eq!(pretty, plain, "the same with and without whitespace");
        plain
    }

    fn fields(manager: &str) -> Value {
        json!([{
            "manager": manager,
            "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:a]\"[{": {}}}, "f:spec": {".": {}}},
        }])
    }

    #[test]
    fn managed_fields_go_wherever_they_sit_among_the_members() {
        let list = json!({
            "kind": "List",
            "items": [
                {"metadata": {"managedFields": fields("a"), "name": "first"}},
                {"metadata": {"name": "middle", "managedFields": fields("b"), "uid": "u"}},
                {"metadata": {"name": "last", "managedFields": fields("c")}},
                {"metadata": {"managedFields": fields("d")}},
                {"metadata": {"name": "none"}},
            ],
        });
        assert_eq!(
            strip(&list),
            json!({
                "kind": "List",
                "items": [
                    {"metadata": {"name": "first"}},
                    {"metadata": {"name": "middle", "uid": "u"}},
                    {"metadata": {"name": "last"}},
                    {"metadata": {}},
                    {"metadata": {"name": "none"}},
                ],
            })
        );
    }

    #[test]
    fn the_name_inside_strings_and_as_a_key_of_string_data_stays() {
        let object = json!({
            "metadata": {
                "name": "x",
                "annotations": {"note": "\"managedFields\": [1]", "\\": "\\\"managedFields\":[]"},
                "managedFields": fields("kubecloud"),
            },
            "data": {"managedFields": "a string", "other": "\"managedFields\""},
        });
        assert_eq!(
            strip(&object),
            json!({
                "metadata": {
                    "name": "x",
                    "annotations": {"note": "\"managedFields\": [1]", "\\": "\\\"managedFields\":[]"},
                },
                "data": {"managedFields": "a string", "other": "\"managedFields\""},
            })
        );
    }

    #[test]
    fn a_body_without_them_is_not_copied() {
        let text = br#"{"items":[{"metadata":{"name":"a"}}]}"#;
        assert!(matches!(
            without_managed_fields(text),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn text_cut_short_is_left_for_the_decoder_to_refuse() {
        let text = br#"{"items":[{"metadata":{"name":"a","managedFields":[{"manager":"k"#;
        assert!(serde_json::from_slice::<Value>(&without_managed_fields(text)).is_err());
    }
}
