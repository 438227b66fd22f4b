//! What the backend sends reads back through the typed models as it reads live objects
//! (round trips), and a live object changed by hand into something it cannot use is an error
//! naming the kind, the object and the field, never a default.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Service as ServiceObject};
use kubecloud_core::{
    Error, MacAddress, Protocol, Rule, SecurityGroupSpec, ServicePort, ServiceSpec, SubnetSpec,
    Tenant,
};
use kubecloud_models::multi_networkpolicy::MultiNetworkPolicy;
use kubecloud_models::multus::NetworkAttachmentDefinition;
use kubecloud_multus::{Link, kinds, translate};
use serde_json::Value;

/// An object as built, read back through its model (as the driver reads live ones).
fn typed<T: serde::de::DeserializeOwned>(object: &Value) -> T {
    serde_json::from_value(object.clone()).unwrap()
}

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn bridge() -> Link {
    Link::Bridge {
        bridge: "br1".into(),
        vlans: 100..=199,
    }
}

fn front() -> SubnetSpec {
    SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap())
}

/// The message of a permanent backend error (panics on any other error).
fn backend_message(err: Error) -> String {
    match err {
        Error::Backend {
            backend,
            message,
            temporary: false,
            ..
        } => {
            assert_eq!(backend, "multus");
            message
        }
        other => panic!("expected a permanent backend error, got {other:?}"),
    }
}

#[test]
fn what_is_sent_reads_back_through_the_models() {
    let t = acme();
    let vpc: ConfigMap = typed(&translate::vpc(&t, "main", Some(120)));
    assert_eq!(translate::vpc_vlan(&vpc).unwrap(), Some(120));
    assert_eq!(translate::domain_name(&vpc).unwrap(), "main");
    let macvtap: ConfigMap = typed(&translate::vpc(&t, "main", None));
    assert_eq!(translate::vpc_vlan(&macvtap).unwrap(), None);
    let claim: ConfigMap = typed(&translate::vlan_claim("kubecloud-multus", &t, "main", 121));
    assert_eq!(translate::vpc_vlan(&claim).unwrap(), Some(121));

    let reserved: Vec<IpAddr> = vec!["10.1.0.7".parse().unwrap(), "10.1.0.9".parse().unwrap()];
    let nad: NetworkAttachmentDefinition = typed(&translate::subnet_attachment(
        &t,
        &front(),
        &bridge(),
        Some(120),
        &reserved,
    ));
    assert_eq!(translate::subnet_spec_from(&nad).unwrap(), front());
    assert_eq!(translate::reserved_of(&nad).unwrap(), reserved);
    let bare: NetworkAttachmentDefinition = typed(&translate::subnet_attachment(
        &t,
        &front(),
        &bridge(),
        Some(120),
        &[],
    ));
    assert!(translate::reserved_of(&bare).unwrap().is_empty());

    let mac = MacAddress([0x02, 0, 0, 0, 0, 7]);
    let ip: IpAddr = "10.1.0.7".parse().unwrap();
    let held: NetworkAttachmentDefinition = typed(&translate::reservation_attachment(
        &t,
        &front(),
        &bridge(),
        Some(120),
        "db",
        ip,
        mac,
    ));
    assert_eq!(
        translate::reservation_of(&held).unwrap(),
        ("front".to_string(), ip, mac)
    );
    assert_eq!(translate::domain_name(&held).unwrap(), "db");

    let group = SecurityGroupSpec {
        name: "web".into(),
        ingress: vec![Rule::allow_tcp(443)],
        egress: Vec::new(),
    };
    let policy: MultiNetworkPolicy =
        typed(&translate::security_group(&t, &group, &["front".into()]).unwrap());
    assert_eq!(translate::security_group_spec_from(&policy).unwrap(), group);

    let service = ServiceSpec {
        name: "web".into(),
        selector: BTreeMap::from([("app".into(), "web".into())]),
        ports: vec![
            ServicePort::tcp(80),
            ServicePort {
                port: 53,
                target_port: Some(5353),
                protocol: Protocol::Udp,
            },
        ],
    };
    let object: ServiceObject = typed(&translate::service(&t, &service));
    assert_eq!(translate::service_spec_from(&object).unwrap(), service);
}

#[test]
fn values_changed_by_hand_are_errors_naming_the_field() {
    let t = acme();

    let mut vpc = translate::vpc(&t, "main", Some(120));
    vpc["data"][kinds::VLAN_KEY] = "blue".into();
    let message = backend_message(translate::vpc_vlan(&typed(&vpc)).unwrap_err());
    assert!(message.contains("data.vlan"), "{message}");
    assert!(
        message.contains("ConfigMap \"kubecloud-vpc.main\""),
        "{message}"
    );

    let mut nad = translate::subnet_attachment(&t, &front(), &bridge(), Some(120), &[]);
    nad["metadata"]["annotations"][kinds::RESERVED_ANNOTATION] = "10.1.0.7,ten".into();
    let message = backend_message(translate::reserved_of(&typed(&nad)).unwrap_err());
    assert!(
        message.contains("metadata.annotations[kubecloud.io/reserved]") && message.contains("ten"),
        "{message}"
    );
    assert!(message.contains("NetworkAttachmentDefinition"), "{message}");

    let mut nad = translate::subnet_attachment(&t, &front(), &bridge(), Some(120), &[]);
    nad["metadata"]["annotations"][kinds::SPEC_ANNOTATION] = "{".into();
    let message = backend_message(translate::subnet_spec_from(&typed(&nad)).unwrap_err());
    assert!(
        message.contains("metadata.annotations[kubecloud.io/spec]"),
        "{message}"
    );

    let ip: IpAddr = "10.1.0.7".parse().unwrap();
    let mac = MacAddress([0x02, 0, 0, 0, 0, 7]);
    let held =
        || translate::reservation_attachment(&t, &front(), &bridge(), Some(120), "db", ip, mac);
    let mut no_ipam = held();
    no_ipam["spec"]["config"] = r#"{"cniVersion": "0.3.1", "type": "bridge"}"#.into();
    let message = backend_message(translate::reservation_of(&typed(&no_ipam)).unwrap_err());
    assert!(
        message.contains("spec.config") && message.contains("ipam"),
        "{message}"
    );
    let mut bad_address = held();
    bad_address["spec"]["config"] =
        r#"{"ipam": {"type": "static", "addresses": [{"address": "ten/24"}]}}"#.into();
    let message = backend_message(translate::reservation_of(&typed(&bad_address)).unwrap_err());
    assert!(
        message.contains("spec.config.ipam.addresses[0].address"),
        "{message}"
    );
    let mut bad_mac = held();
    bad_mac["metadata"]["annotations"][kinds::MAC_ANNOTATION] = "green".into();
    let message = backend_message(translate::reservation_of(&typed(&bad_mac)).unwrap_err());
    assert!(
        message.contains("metadata.annotations[kubecloud.io/mac]") && message.contains("green"),
        "{message}"
    );
    let mut no_subnet = held();
    no_subnet["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(kinds::SUBNET_LABEL);
    let message = backend_message(translate::reservation_of(&typed(&no_subnet)).unwrap_err());
    assert!(message.contains(kinds::SUBNET_LABEL), "{message}");

    let service = ServiceSpec {
        name: "web".into(),
        selector: BTreeMap::from([("app".into(), "web".into())]),
        ports: vec![ServicePort::tcp(80)],
    };
    let mut named = translate::service(&t, &service);
    named["spec"]["ports"][0]["targetPort"] = "http".into();
    let message = backend_message(translate::service_spec_from(&typed(&named)).unwrap_err());
    assert!(message.contains("spec.ports[0].targetPort"), "{message}");
    let mut icmp = translate::service(&t, &service);
    icmp["spec"]["ports"][0]["protocol"] = "ICMP".into();
    let message = backend_message(translate::service_spec_from(&typed(&icmp)).unwrap_err());
    assert!(message.contains("spec.ports[0].protocol"), "{message}");
    let mut unnamed = translate::service(&t, &service);
    unnamed["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(kubecloud_kube::NAME);
    let message =
        backend_message(translate::domain_name::<ServiceObject>(&typed(&unnamed)).unwrap_err());
    assert!(message.contains("kubecloud.io/name"), "{message}");
}
