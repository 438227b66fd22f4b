//! Unit tests of the schema module: the compiler and validator on small
//! hand-written CRD schemas, the ObjectMeta rules, locating the upstream dir (for the bundle's
//! generator), and the bundle compiling to exactly what the upstream files compile to.

use serde_json::{Value, json};

use super::compile::{Arena, Compiler};
use super::meta::{self, NameRule};
use super::{Catalog, CatalogError, FieldError, FieldErrorKind, bundle, load, locate, validate};

/// Compiles `schema` as a CRD root schema and validates `object` against it;
/// the errors come sorted by path (map order depends on serde_json features).
fn check(schema: Value, object: Value) -> Vec<FieldError> {
    let mut arena = Arena::default();
    let root = Compiler::crd(&mut arena)
        .schema(&schema, false)
        .expect("schema compiles");
    sorted(validate::validate(&arena, root, &object))
}

fn sorted(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    errors
}

fn paths(errors: &[FieldError]) -> Vec<(&str, FieldErrorKind)> {
    errors.iter().map(|e| (e.path.as_str(), e.kind)).collect()
}

fn spec_schema(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

#[test]
fn listed_properties_make_other_fields_unknown() {
    let schema = spec_schema(json!({"type": "object", "properties": {"a": {"type": "string"}}}));
    let errors = check(schema, json!({"spec": {"a": "x", "b": 1}}));
    assert_eq!(paths(&errors), [("spec.b", FieldErrorKind::Unknown)]);
    assert_eq!(
        errors[0].to_string(),
        ".spec.b: field not declared in schema"
    );
}

#[test]
fn an_object_declaring_nothing_keeps_nothing_in_a_crd() {
    let schema =
        spec_schema(json!({"type": "object", "properties": {"masquerade": {"type": "object"}}}));
    assert!(check(schema.clone(), json!({"spec": {"masquerade": {}}})).is_empty());
    let errors = check(schema, json!({"spec": {"masquerade": {"x": 1}}}));
    assert_eq!(
        paths(&errors),
        [("spec.masquerade.x", FieldErrorKind::Unknown)]
    );
}

#[test]
fn preserve_unknown_fields_accepts_anything_below() {
    let schema = spec_schema(json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"a": {"type": "integer"}}
    }));
    assert!(
        check(
            schema.clone(),
            json!({"spec": {"a": 1, "z": {"deep": [1, "x"]}}})
        )
        .is_empty()
    );
    // Declared fields are still checked.
    let errors = check(schema, json!({"spec": {"a": "one"}}));
    assert_eq!(paths(&errors), [("spec.a", FieldErrorKind::Invalid)]);
}

#[test]
fn type_errors_use_kube_openapi_wording() {
    let schema =
        spec_schema(json!({"type": "object", "properties": {"cores": {"type": "integer"}}}));
    let errors = check(schema, json!({"spec": {"cores": "2"}}));
    assert_eq!(
        errors[0].to_string(),
        r#"spec.cores: Invalid value: "string": spec.cores in body must be of type integer: "string""#
    );
}

#[test]
fn integers_are_numbers_but_fractions_are_not_integers() {
    let schema = spec_schema(json!({"type": "object", "properties": {
        "n": {"type": "number"}, "i": {"type": "integer"}
    }}));
    assert!(check(schema.clone(), json!({"spec": {"n": 3, "i": 3.0}})).is_empty());
    let errors = check(schema, json!({"spec": {"n": 1.5, "i": 1.5}}));
    assert_eq!(paths(&errors), [("spec.i", FieldErrorKind::Invalid)]);
}

#[test]
fn enum_reports_supported_values() {
    let schema = spec_schema(json!({"type": "object", "properties": {
        "policy": {"type": "string", "enum": ["Reboot", "Terminate"]}
    }}));
    let errors = check(schema, json!({"spec": {"policy": "Sometimes"}}));
    assert_eq!(
        errors[0].to_string(),
        r#"spec.policy: Unsupported value: "Sometimes": supported values: "Reboot", "Terminate""#
    );
}

#[test]
fn required_fields_missing_or_pruned_null_are_reported_unless_defaulted() {
    let schema = spec_schema(json!({
        "type": "object",
        "required": ["a", "b", "c"],
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "string"},
            "c": {"type": "string", "default": "x"}
        }
    }));
    let errors = check(schema, json!({"spec": {"b": null}}));
    assert_eq!(
        paths(&errors),
        [
            ("spec.a", FieldErrorKind::Required),
            ("spec.b", FieldErrorKind::Required)
        ]
    );
    assert_eq!(errors[0].to_string(), "spec.a: Required value");
}

#[test]
fn nullable_accepts_null_and_non_nullable_nulls_are_pruned_in_maps_only() {
    let schema = spec_schema(json!({"type": "object", "properties": {
        "n": {"type": "object", "nullable": true, "properties": {"x": {"type": "string"}}},
        "s": {"type": "string"},
        "list": {"type": "array", "items": {"type": "string"}}
    }}));
    assert!(check(schema.clone(), json!({"spec": {"n": null, "s": null}})).is_empty());
    let errors = check(schema, json!({"spec": {"list": ["a", null]}}));
    assert_eq!(paths(&errors), [("spec.list[1]", FieldErrorKind::Invalid)]);
}

#[test]
fn int_or_string_accepts_both_and_nothing_else() {
    let schema = spec_schema(json!({"type": "object", "properties": {"port": {
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": "^[0-9]+[a-z]*$"
    }}}));
    assert!(check(schema.clone(), json!({"spec": {"port": 80}})).is_empty());
    assert!(check(schema.clone(), json!({"spec": {"port": "80m"}})).is_empty());
    let errors = check(schema.clone(), json!({"spec": {"port": true}}));
    assert_eq!(paths(&errors), [("spec.port", FieldErrorKind::Invalid)]);
    assert!(
        errors[0].reason.contains("must be of type integer,string"),
        "{}",
        errors[0]
    );
    let errors = check(schema, json!({"spec": {"port": "http"}}));
    assert!(
        errors[0].reason.ends_with("should match '^[0-9]+[a-z]*$'"),
        "{}",
        errors[0]
    );
}

#[test]
fn additional_properties_schema_checks_map_values() {
    let schema = spec_schema(json!({"type": "object", "properties": {"m": {
        "type": "object", "additionalProperties": {"type": "integer", "minimum": 1}
    }}}));
    assert!(check(schema.clone(), json!({"spec": {"m": {"a": 1, "b": 2}}})).is_empty());
    let errors = check(schema, json!({"spec": {"m": {"a": 0, "b": "x"}}}));
    assert_eq!(
        paths(&errors),
        [
            ("spec.m.a", FieldErrorKind::Invalid),
            ("spec.m.b", FieldErrorKind::Invalid)
        ]
    );
    assert!(
        errors[0]
            .reason
            .ends_with("spec.m.a in body should be greater than or equal to 1")
    );
}

#[test]
fn bounds_lengths_and_item_counts() {
    let schema = spec_schema(json!({"type": "object", "properties": {
        "n": {"type": "integer", "maximum": 10, "exclusiveMinimum": true, "minimum": 0},
        "s": {"type": "string", "minLength": 2, "maxLength": 3},
        "l": {"type": "array", "maxItems": 1, "minItems": 1, "items": {"type": "string"}},
        "i32": {"type": "integer", "format": "int32"}
    }}));
    let errors = check(
        schema.clone(),
        json!({"spec": {"n": 0, "s": "abcd", "l": ["a", "b"], "i32": 3_000_000_000u64}}),
    );
    assert_eq!(
        paths(&errors),
        [
            ("spec.i32", FieldErrorKind::Invalid),
            ("spec.l", FieldErrorKind::Invalid),
            ("spec.n", FieldErrorKind::Invalid),
            ("spec.s", FieldErrorKind::Invalid),
        ]
    );
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text[1], "spec.l: Too many: 2: must have at most 1 items");
    assert_eq!(
        text[2],
        "spec.n: Invalid value: 0: spec.n in body should be greater than 0"
    );
    assert_eq!(text[3], "spec.s: Too long: may not be more than 3 bytes");
    let errors = check(schema, json!({"spec": {"n": 11, "s": "a", "l": []}}));
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn list_type_set_and_map_reject_duplicates() {
    let schema = spec_schema(json!({"type": "object", "properties": {
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}
    }}));
    let errors = check(
        schema,
        json!({"spec": {"set": ["a", "b", "a"], "map": [{"name": "x", "v": 1}, {"name": "x", "v": 2}]}}),
    );
    assert_eq!(
        paths(&errors),
        [
            ("spec.map[1]", FieldErrorKind::Invalid),
            ("spec.set[2]", FieldErrorKind::Invalid)
        ]
    );
    assert_eq!(
        errors[1].to_string(),
        r#"spec.set[2]: Duplicate value: "a""#
    );
}

#[test]
fn junctors_validate_values_without_declaring_fields() {
    let schema = spec_schema(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
        "not": {"properties": {"a": {"enum": ["forbidden"]}}, "required": ["a"]}
    }));
    assert!(check(schema.clone(), json!({"spec": {"a": "x"}})).is_empty());
    let both = check(schema.clone(), json!({"spec": {"a": "x", "b": "y"}}));
    assert_eq!(paths(&both), [("spec", FieldErrorKind::Invalid)]);
    assert!(both[0].reason.contains("(oneOf)"));
    let forbidden = check(schema, json!({"spec": {"a": "forbidden"}}));
    assert!(
        forbidden[0]
            .reason
            .contains("must not validate the schema (not)")
    );
}

#[test]
fn date_time_and_byte_formats() {
    let schema = spec_schema(json!({"type": "object", "properties": {
        "t": {"type": "string", "format": "date-time"},
        "b": {"type": "string", "format": "byte"}
    }}));
    assert!(
        check(
            schema.clone(),
            json!({"spec": {"t": "2024-01-02T03:04:05Z", "b": "aGk="}})
        )
        .is_empty()
    );
    assert!(
        check(
            schema.clone(),
            json!({"spec": {"t": "2024-01-02T03:04:05.123+02:00"}})
        )
        .is_empty()
    );
    let errors = check(schema, json!({"spec": {"t": "yesterday", "b": "hi!"}}));
    assert_eq!(
        paths(&errors),
        [
            ("spec.b", FieldErrorKind::Invalid),
            ("spec.t", FieldErrorKind::Invalid)
        ]
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind_and_allow_metadata() {
    let mut arena = Arena::default();
    let core = json!({
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}
        }
    });
    let meta = Compiler::built_in(&mut arena, core.as_object().unwrap())
        .definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .unwrap();
    arena.object_meta = Some(meta);
    let schema = spec_schema(json!({"type": "object", "properties": {"template": {
        "type": "object", "x-kubernetes-embedded-resource": true,
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    }}}));
    let root = Compiler::crd(&mut arena).schema(&schema, false).unwrap();
    let ok = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}});
    assert!(validate::validate(&arena, root, &ok).is_empty());
    let bad = json!({"spec": {"template": {"metadata": {"name": "P", "x": 1}}}});
    let errors = sorted(validate::validate(&arena, root, &bad));
    assert_eq!(
        paths(&errors),
        [
            ("spec.template.apiVersion", FieldErrorKind::Required),
            ("spec.template.kind", FieldErrorKind::Required),
            ("spec.template.metadata.name", FieldErrorKind::Invalid),
            ("spec.template.metadata.x", FieldErrorKind::Unknown),
        ]
    );
}

#[test]
fn recursive_refs_compile_once() {
    let mut arena = Arena::default();
    let defs = json!({
        "Tree": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}},
            "name": {"allOf": [{"$ref": "#/components/schemas/Name"}], "default": ""}
        }},
        "Name": {"type": "string"}
    });
    let root = Compiler::built_in(&mut arena, defs.as_object().unwrap())
        .definition("Tree")
        .unwrap();
    let tree = json!({"name": "a", "children": [{"name": "b", "children": [{"nme": "c"}]}]});
    let errors = validate::validate(&arena, root, &tree);
    assert_eq!(
        paths(&errors),
        [("children[0].children[0].nme", FieldErrorKind::Unknown)]
    );
}

#[test]
fn a_ref_to_nothing_is_a_compile_error() {
    let mut arena = Arena::default();
    let defs =
        json!({"A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}}});
    let err = Compiler::built_in(&mut arena, defs.as_object().unwrap())
        .definition("A")
        .unwrap_err();
    assert!(err.contains("\"B\""), "{err}");
}

#[test]
fn names_follow_the_dns_rules() {
    assert!(meta::dns1123_subdomain("my-vm.example").is_empty());
    assert_eq!(
        meta::dns1123_subdomain("My_VM"),
        [
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    );
    assert_eq!(meta::dns1123_subdomain(&"a".repeat(254)).len(), 1);
    assert!(meta::dns1123_label("kube-system").is_empty());
    assert!(!meta::dns1123_label("a.b").is_empty());
    assert!(meta::dns1035_label("web").is_empty());
    assert!(!meta::dns1035_label("1web").is_empty());
}

#[test]
fn label_keys_and_values() {
    assert!(meta::qualified_name("app.kubernetes.io/name").is_empty());
    assert!(meta::qualified_name("MyName").is_empty());
    assert_eq!(
        meta::qualified_name("/x"),
        ["prefix part must be non-empty"]
    );
    assert!(
        meta::qualified_name("Bad_Prefix/x")[0].starts_with("prefix part a lowercase RFC 1123")
    );
    assert!(meta::qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
    assert!(
        meta::qualified_name("bad key")[0]
            .contains("(e.g. 'MyName',  or 'my.name',  or '123-abc', ")
    );
    assert!(meta::label_value("").is_empty());
    assert!(meta::label_value("v1.2_x").is_empty());
    assert_eq!(
        meta::label_value(&"v".repeat(64)),
        ["must be no more than 63 characters"]
    );
    assert_eq!(meta::label_value("-x").len(), 1);
}

#[test]
fn object_meta_rules() {
    let mut errors = Vec::new();
    let m = json!({
        "generateName": "web-",
        "namespace": "Bad_NS",
        "labels": {"ok": "yes", "bad key": "bad value!"},
        "annotations": {"example.com/Note": "anything at all"},
        "finalizers": ["example.com/cleanup", "bad finalizer"]
    });
    meta::validate_object_meta(&m, NameRule::Subdomain, true, true, "metadata", &mut errors);
    let got: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        got,
        [
            "metadata.namespace",
            "metadata.labels",
            "metadata.labels",
            "metadata.finalizers[1]"
        ]
    );
    assert!(
        errors[2]
            .reason
            .starts_with(r#"Invalid value: "bad value!": a valid label"#)
    );

    let mut errors = Vec::new();
    meta::validate_object_meta(
        &json!({}),
        NameRule::Label,
        false,
        true,
        "metadata",
        &mut errors,
    );
    assert_eq!(
        errors[0].to_string(),
        "metadata.name: Required value: name or generateName is required"
    );
    let mut errors = Vec::new();
    meta::validate_object_meta(
        &json!({}),
        NameRule::Label,
        false,
        false,
        "x.metadata",
        &mut errors,
    );
    assert!(errors.is_empty(), "embedded metadata needs no name");
}

/// The bundle's generator (not the catalog, which reads only the bundle compiled in) finds the
/// upstream dir walking up from where it runs, or names every place it tried.
#[test]
fn the_upstream_dir_is_found_walking_up_or_every_place_is_named() {
    let base = std::env::temp_dir().join(format!("kubecloud-schema-locate-{}", std::process::id()));
    let upstream = base.join("shared/upstream");
    std::fs::create_dir_all(upstream.join("kubernetes")).unwrap();
    let start = base.join("main/crates/testkit");
    std::fs::create_dir_all(&start).unwrap();
    assert_eq!(
        locate::find_walking_up(std::slice::from_ref(&start)).unwrap(),
        upstream
    );

    let lonely = base.join("elsewhere/deep");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::remove_dir_all(upstream.join("kubernetes")).unwrap();
    match locate::find_walking_up(&[lonely.clone(), start]) {
        Err(CatalogError::NotFound { looked_in }) => {
            assert_eq!(looked_in[0], lonely.join("shared/upstream"));
            assert!(looked_in.contains(&base.join("main/shared/upstream")));
            assert!(looked_in.contains(&upstream));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Compiling the committed bundle gives node for node the schemas (and every resource type's
/// names, scope, subresources and printer columns) that compiling the upstream files whole
/// gives: what the bundle leaves out is nothing the validator reads. Needs the upstream dir
/// (`../shared/upstream` or `$KUBECLOUD_UPSTREAM`); skipped without it.
#[test]
fn the_bundle_compiles_to_what_the_upstream_files_compile_to() {
    let Ok(dir) = locate::upstream_dir() else {
        eprintln!("skipped: no upstream schema directory to compare the bundle with");
        return;
    };
    let (whole, _) = bundle::catalog_body(&dir, false).expect("upstream files");
    let whole = load::from_bundle(&Value::Object(whole), &dir).expect("upstream compiles");
    let bundled = Catalog::upstream().expect("bundle").types();
    assert_eq!(whole.len(), bundled.len(), "as many resource types");
    for (a, b) in whole.iter().zip(bundled) {
        assert_eq!(
            format!("{a:?}"),
            format!("{b:?}"),
            "{} {}",
            a.api_version(),
            a.kind
        );
    }
    let (a, b) = (&whole[0].schema.arena, &bundled[0].schema.arena);
    assert_eq!(a.object_meta, b.object_meta);
    let (a, b) = (a.describe(), b.describe());
    assert_eq!(a.len(), b.len(), "as many schema nodes");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "node {i}");
    }
}
