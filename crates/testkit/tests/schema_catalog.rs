//! The upstream schema catalog: what it registers, and how it validates real
//! objects of the kinds kubecloud sends.

use kubecloud_testkit::schema::{Catalog, FieldError, FieldErrorKind, ResourceType};
use serde_json::{Value, json};

fn catalog() -> &'static Catalog {
    Catalog::upstream().expect("upstream schemas load")
}

fn kind(api_version: &str, kind: &str) -> &'static ResourceType {
    catalog()
        .by_kind(api_version, kind)
        .unwrap_or_else(|| panic!("{api_version} {kind} is registered"))
}

/// Validates and returns the errors sorted by path.
fn errors_of(t: &ResourceType, object: &Value) -> Vec<FieldError> {
    let mut errors = t.validate(object).expect_err("object is invalid");
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    errors
}

fn assert_valid(t: &ResourceType, object: &Value) {
    if let Err(errors) = t.validate(object) {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!(
            "{} {} rejected:\n{}",
            t.api_version(),
            t.kind,
            text.join("\n")
        );
    }
}

fn vm() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web-1", "namespace": "tenant-a", "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {"kubevirt.io/vm": "web-1"}},
                "spec": {
                    "domain": {
                        "cpu": {"cores": 2},
                        "memory": {"guest": "2Gi"},
                        "resources": {"requests": {"memory": "2Gi"}},
                        "devices": {
                            "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                            "interfaces": [{"name": "default", "masquerade": {}}]
                        }
                    },
                    "networks": [{"name": "default", "pod": {}}],
                    "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:40"}}]
                }
            }
        }
    })
}

#[test]
fn the_catalog_registers_the_kinds_kubecloud_uses() {
    let c = catalog();
    let vm = c.by_plural("kubevirt.io", "v1", "virtualmachines").unwrap();
    assert_eq!(
        (
            vm.kind.as_str(),
            vm.namespaced,
            vm.status_subresource,
            vm.storage_version
        ),
        ("VirtualMachine", true, true, true)
    );
    assert_eq!(vm.short_names, ["vm", "vms"]);
    assert_eq!(vm.list_kind, "VirtualMachineList");
    assert_eq!(vm.singular, "virtualmachine");
    assert_eq!(
        vm.verbs,
        [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]
    );
    let old = kind("kubevirt.io/v1alpha3", "VirtualMachine");
    assert!(!old.storage_version && old.status_subresource);
    let vmi = kind("kubevirt.io/v1", "VirtualMachineInstance");
    assert!(
        !vmi.status_subresource,
        "VMI has no status subresource upstream"
    );
    let rs = kind("kubevirt.io/v1", "VirtualMachineInstanceReplicaSet");
    assert!(rs.scale_subresource && rs.status_subresource);
    assert!(kind("kubevirt.io/v1", "KubeVirt").namespaced);

    for (k, plural) in [("Subnet", "subnets"), ("Vpc", "vpcs"), ("IP", "ips")] {
        let t = c.by_plural("kubeovn.io", "v1", plural).unwrap();
        assert_eq!((t.kind.as_str(), t.namespaced), (k, false));
    }
    assert!(kind("kubeovn.io/v1", "Subnet").status_subresource);
    assert!(kind("kubeovn.io/v1", "VpcEgressGateway").namespaced);
    assert!(
        c.by_plural("kubeovn.io", "v1", "vpc-nat-gateways")
            .is_some()
    );

    assert!(kind("metallb.io/v1beta1", "IPAddressPool").namespaced);
    assert!(kind("metallb.io/v1beta2", "BGPPeer").storage_version);
    assert!(!kind("metallb.io/v1beta1", "BGPPeer").storage_version);
    let nad = kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition");
    assert_eq!(nad.plural, "network-attachment-definitions");
    assert_eq!(nad.short_names, ["nad", "net-attach-def"]);
    assert!(kind("snapshot.storage.k8s.io/v1", "VolumeSnapshot").namespaced);
    assert!(!kind("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent").namespaced);
    assert!(
        c.by_kind("snapshot.storage.k8s.io/v1beta1", "VolumeSnapshot")
            .is_none(),
        "not served"
    );
    assert!(!kind("piraeus.io/v1", "LinstorCluster").namespaced);
    let dv = kind("cdi.kubevirt.io/v1beta1", "DataVolume");
    assert_eq!(
        (dv.plural.as_str(), dv.short_names.as_slice()),
        ("datavolumes", &["dv".to_owned(), "dvs".to_owned()][..])
    );
    assert!(!kind("cdi.kubevirt.io/v1beta1", "CDI").namespaced);

    let core = [
        ("Namespace", "namespaces", false, true),
        ("Secret", "secrets", true, false),
        ("ConfigMap", "configmaps", true, false),
        ("Service", "services", true, true),
        (
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            true,
        ),
        ("PersistentVolume", "persistentvolumes", false, true),
        ("Pod", "pods", true, true),
        ("Event", "events", true, false),
    ];
    for (k, plural, namespaced, status) in core {
        let t = c.by_plural("", "v1", plural).unwrap();
        assert_eq!(
            (t.kind.as_str(), t.namespaced, t.status_subresource),
            (k, namespaced, status)
        );
        assert_eq!(t.api_version(), "v1");
    }
    let sc = kind("storage.k8s.io/v1", "StorageClass");
    assert_eq!(
        (sc.plural.as_str(), sc.namespaced, sc.status_subresource),
        ("storageclasses", false, false)
    );
}

#[test]
fn groups_list_served_versions_preferred_first() {
    let groups = catalog().groups();
    assert_eq!(groups[0], (String::new(), vec!["v1".to_owned()]));
    let versions = |g: &str| {
        groups
            .iter()
            .find(|(n, _)| n == g)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(versions("metallb.io"), ["v1beta2", "v1beta1"]);
    assert_eq!(versions("kubevirt.io"), ["v1", "v1alpha3"]);
    assert_eq!(versions("snapshot.storage.k8s.io"), ["v1"]);
    assert_eq!(versions("storage.k8s.io"), ["v1"]);
    assert_eq!(versions("cdi.kubevirt.io"), ["v1beta1", "v1alpha1"]);
}

#[test]
fn the_upstream_catalog_is_loaded_once() {
    assert!(std::ptr::eq(catalog(), Catalog::upstream().unwrap()));
}

#[test]
fn every_type_declares_the_object_envelope() {
    for t in catalog().types() {
        let object =
            json!({"apiVersion": t.api_version(), "kind": t.kind, "metadata": {"name": "x"}});
        if let Err(errors) = t.validate(&object) {
            // Only required spec fields may be missing.
            for e in errors {
                assert_eq!(
                    e.kind,
                    FieldErrorKind::Required,
                    "{} {}: {e}",
                    t.api_version(),
                    t.kind
                );
            }
        }
    }
}

#[test]
fn a_real_virtual_machine_validates() {
    assert_valid(kind("kubevirt.io/v1", "VirtualMachine"), &vm());
}

#[test]
fn a_typo_is_an_unknown_field() {
    let mut object = vm();
    object["spec"]["runStrategyy"] = json!("Always");
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        ("spec.runStrategyy", FieldErrorKind::Unknown)
    );
    assert_eq!(
        errors[0].to_string(),
        ".spec.runStrategyy: field not declared in schema"
    );
}

#[test]
fn a_bad_enum_value_is_unsupported() {
    // runStrategy is a plain string upstream; rebootPolicy is an enum.
    let mut object = vm();
    object["spec"]["runStrategy"] = json!("Sometimes");
    object["spec"]["template"]["spec"]["domain"]["rebootPolicy"] = json!("Sometimes");
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.template.spec.domain.rebootPolicy");
    assert_eq!(errors[0].kind, FieldErrorKind::Invalid);
    assert_eq!(
        errors[0].reason,
        r#"Unsupported value: "Sometimes": supported values: "Reboot", "Terminate""#
    );
}

#[test]
fn a_wrong_type_is_invalid() {
    let mut object = vm();
    object["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] = json!("2");
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.template.spec.domain.cpu.cores");
    assert_eq!(errors[0].kind, FieldErrorKind::Invalid);
    assert!(
        errors[0].reason.contains("must be of type integer"),
        "{}",
        errors[0]
    );
}

#[test]
fn missing_required_fields_are_named() {
    let mut object = vm();
    object["spec"]["template"]["spec"]["volumes"][0]["containerDisk"] =
        json!({"imagePullPolicy": "Always"});
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        (
            "spec.template.spec.volumes[0].containerDisk.image",
            FieldErrorKind::Required
        )
    );

    let mut object = vm();
    object["spec"].as_object_mut().unwrap().remove("template");
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(errors[0].to_string(), "spec.template: Required value");
}

#[test]
fn int_or_string_preserve_unknown_and_nullable_fields() {
    let t = kind("kubevirt.io/v1", "VirtualMachine");
    let mut object = vm();
    let domain = &mut object["spec"]["template"]["spec"]["domain"];
    domain["resources"]["requests"]["memory"] = json!(2_147_483_648u64);
    domain["resources"]["limits"] = json!({"cpu": "2"});
    object["spec"]["template"]["metadata"] = json!({"anything": {"goes": ["here", 1]}});
    assert_valid(t, &object);
    object["spec"]["template"]["metadata"] = Value::Null;
    assert_valid(t, &object);

    object["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] = json!(true);
    let errors = errors_of(t, &object);
    assert_eq!(
        errors[0].path,
        "spec.template.spec.domain.resources.requests.memory"
    );
}

#[test]
fn object_names_must_be_lowercase() {
    let mut object = vm();
    object["metadata"]["name"] = json!("Web-1");
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        ("metadata.name", FieldErrorKind::Invalid)
    );
    assert!(
        errors[0]
            .reason
            .starts_with(r#"Invalid value: "Web-1": a lowercase RFC 1123 subdomain"#)
    );

    let ns = kind("v1", "Namespace");
    let errors = errors_of(
        ns,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}),
    );
    assert_eq!(
        errors[0].path, "metadata.name",
        "namespaces are RFC 1123 labels"
    );
    assert_valid(
        ns,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tenant-a"}}),
    );
}

#[test]
fn metadata_is_checked_as_object_meta_in_custom_resources() {
    let t = kind("kubevirt.io/v1", "VirtualMachine");
    let mut object = vm();
    object["metadata"]["managedFields"] = json!([{
        "manager": "kubecloud", "operation": "Apply", "apiVersion": "kubevirt.io/v1",
        "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:runStrategy": {}}}
    }]);
    object["metadata"]["annotations"] = json!({"kubecloud.io/owner": "me"});
    assert_valid(t, &object);

    object["metadata"]["nmae"] = json!("x");
    object["metadata"]["labels"] = json!({"bad key": "v"});
    let errors = errors_of(t, &object);
    assert_eq!(
        errors
            .iter()
            .map(|e| (e.path.as_str(), e.kind))
            .collect::<Vec<_>>(),
        [
            ("metadata.labels", FieldErrorKind::Invalid),
            ("metadata.nmae", FieldErrorKind::Unknown)
        ]
    );

    let errors = errors_of(
        t,
        &json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {}, "spec": vm()["spec"]}),
    );
    assert_eq!(
        errors[0].to_string(),
        "metadata.name: Required value: name or generateName is required"
    );
}

#[test]
fn api_version_and_kind_must_match_the_type() {
    let mut object = vm();
    object["kind"] = json!("VirtualMachineInstance");
    let errors = errors_of(kind("kubevirt.io/v1", "VirtualMachine"), &object);
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        ("kind", FieldErrorKind::Invalid)
    );
}

#[test]
fn kube_ovn_metallb_and_multus_objects_validate() {
    assert_valid(
        kind("kubeovn.io/v1", "Subnet"),
        &json!({
            "apiVersion": "kubeovn.io/v1", "kind": "Subnet",
            "metadata": {"name": "tenant-a"},
            "spec": {
                "cidrBlock": "10.16.0.0/16", "gateway": "10.16.0.1", "protocol": "IPv4",
                "excludeIps": ["10.16.0.1"], "vpc": "tenant-a", "natOutgoing": true,
                "namespaces": ["tenant-a"], "provider": "ovn"
            }
        }),
    );
    assert_valid(
        kind("kubeovn.io/v1", "Vpc"),
        &json!({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "tenant-a"},
                "spec": {"namespaces": ["tenant-a"]}}),
    );
    let pool = kind("metallb.io/v1beta1", "IPAddressPool");
    let mut object = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "public", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.0.2.0/28", "198.51.100.10-198.51.100.20"], "autoAssign": false}
    });
    assert_valid(pool, &object);
    object["spec"].as_object_mut().unwrap().remove("addresses");
    let errors = errors_of(pool, &object);
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        ("spec.addresses", FieldErrorKind::Required)
    );

    for version in ["v1beta2", "v1beta1"] {
        assert_valid(
            kind(&format!("metallb.io/{version}"), "BGPPeer"),
            &json!({
                "apiVersion": format!("metallb.io/{version}"), "kind": "BGPPeer",
                "metadata": {"name": "tor-1", "namespace": "metallb-system"},
                "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}
            }),
        );
    }
    assert_valid(
        kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"),
        &json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "vlan-10", "namespace": "tenant-a"},
            "spec": {"config": "{\"cniVersion\":\"0.3.1\",\"type\":\"kube-ovn\"}"}
        }),
    );
}

#[test]
fn core_objects_validate() {
    assert_valid(
        kind("v1", "Secret"),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "tenant-a"},
                "type": "Opaque", "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin"}}),
    );
    assert_valid(
        kind("v1", "Service"),
        &json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": "https"}
            ]}
        }),
    );
    let pvc = kind("v1", "PersistentVolumeClaim");
    let mut object = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "linstor", "volumeMode": "Block",
                 "resources": {"requests": {"storage": "10Gi"}}}
    });
    assert_valid(pvc, &object);
    object["spec"]["resources"]["requests"]["storage"] = json!(1_073_741_824u64);
    assert_valid(pvc, &object);
    assert_valid(
        kind("storage.k8s.io/v1", "StorageClass"),
        &json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "linstor"},
                "provisioner": "linstor.csi.linbit.com", "parameters": {"placementCount": "2"},
                "reclaimPolicy": "Delete", "allowVolumeExpansion": true, "volumeBindingMode": "WaitForFirstConsumer"}),
    );
    assert_valid(
        kind("v1", "ConfigMap"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
    );
}

#[test]
fn core_objects_are_checked_strictly() {
    let errors = errors_of(
        kind("v1", "Pod"),
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "imagee": "nginx"}, {"image": "nginx", "ports": [{"containerPort": "80"}]}]}}),
    );
    assert_eq!(
        errors
            .iter()
            .map(|e| (e.path.as_str(), e.kind))
            .collect::<Vec<_>>(),
        [
            ("spec.containers[0].imagee", FieldErrorKind::Unknown),
            ("spec.containers[1].name", FieldErrorKind::Required),
            (
                "spec.containers[1].ports[0].containerPort",
                FieldErrorKind::Invalid
            ),
        ]
    );
    let errors = errors_of(
        kind("v1", "Secret"),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}}),
    );
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        ("data.k", FieldErrorKind::Invalid)
    );
    let errors = errors_of(
        kind("v1", "Service"),
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web"}, "spec": {"ports": [{"port": "80"}]}}),
    );
    assert_eq!(
        errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["metadata.name", "spec.ports[0].port"],
        "Service names are RFC 1035 labels"
    );
}

#[test]
fn loading_from_a_missing_directory_fails_with_the_path() {
    let dir = std::env::temp_dir().join("kubecloud-no-such-upstream");
    let err = Catalog::load_from(&dir).unwrap_err();
    assert!(
        err.to_string().contains("kubecloud-no-such-upstream"),
        "{err}"
    );
}

#[test]
fn validate_schema_leaves_object_meta_rules_to_the_caller() {
    let t = kind("kubevirt.io/v1", "VirtualMachine");
    let mut object = vm();
    object["metadata"] = json!({"name": "Web_1", "labels": {"bad key": "v"}});
    assert!(t.validate(&object).is_err());
    assert_eq!(t.validate_schema(&object), Ok(()));
    object["metadata"]["nmae"] = json!("x");
    let errors = t.validate_schema(&object).unwrap_err();
    assert_eq!(
        (errors[0].path.as_str(), errors[0].kind),
        ("metadata.nmae", FieldErrorKind::Unknown)
    );
}
