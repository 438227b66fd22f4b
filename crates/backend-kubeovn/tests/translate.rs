//! Golden translation files (tests/golden/*.json, reviewable), and every object the backend
//! sends validated against the upstream CRDs (Kube-OVN, Multus) and the core API, unknown
//! fields rejected.

use std::path::PathBuf;

use kubecloud_core::{ExternalIpSpec, FloatingIpSpec, SnatRuleSpec};
use kubecloud_core::{
    IpReservationSpec, MacAddress, PortRange, Protocol, Remote, Rule, RuleAction,
    SecurityGroupSpec, ServicePort, ServiceSpec, StaticRoute, SubnetSpec, Tenant, VpcSpec,
};
use kubecloud_kubeovn::{external, translate};
use kubecloud_testkit::schema::Catalog;
use serde_json::Value;

/// An object as built, read back through its generated model (as the driver reads live ones).
fn typed<T: serde::de::DeserializeOwned>(object: &Value) -> T {
    serde_json::from_value(object.clone()).unwrap()
}

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn vpc_spec() -> VpcSpec {
    VpcSpec {
        name: "main".into(),
        static_routes: vec![StaticRoute {
            destination: "0.0.0.0/0".parse().unwrap(),
            next_hop: "10.1.0.254".parse().unwrap(),
        }],
        peers: vec!["shared".into()],
    }
}

fn primary() -> SubnetSpec {
    let mut s = SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap());
    s.exclude = vec![
        "10.1.0.2..10.1.0.9".parse().unwrap(),
        "10.1.0.200".parse().unwrap(),
    ];
    s.private = true;
    s.allow = vec!["10.2.0.0/24".parse().unwrap()];
    s.nat_outgoing = true;
    s
}

fn secondary() -> SubnetSpec {
    let mut s = SubnetSpec::new("storage", "main", "10.2.0.0/24".parse().unwrap());
    s.gateway = Some("10.2.0.254".parse().unwrap());
    s.secondary = true;
    s
}

fn reservation() -> IpReservationSpec {
    IpReservationSpec {
        mac: Some(MacAddress([0x52, 0x54, 0x00, 0x0c, 0x0f, 0x01])),
        ..IpReservationSpec::new("db-eth0", "front").with_ip("10.1.0.10".parse().unwrap())
    }
}

fn security_group() -> SecurityGroupSpec {
    SecurityGroupSpec {
        name: "web".into(),
        ingress: vec![
            Rule::allow_tcp(443),
            Rule {
                protocol: Protocol::Udp,
                ports: Some(PortRange {
                    first: 5000,
                    last: 5100,
                }),
                remote: Remote::Cidr("192.0.2.0/24".parse().unwrap()),
                priority: 20,
                action: RuleAction::Drop,
            },
            Rule {
                protocol: Protocol::Icmp,
                ports: None,
                remote: Remote::Group("admin".into()),
                priority: 50,
                action: RuleAction::Allow,
            },
        ],
        egress: vec![Rule {
            protocol: Protocol::All,
            ports: None,
            remote: Remote::Any,
            priority: 200,
            action: RuleAction::Allow,
        }],
    }
}

fn service() -> ServiceSpec {
    ServiceSpec {
        name: "db".into(),
        selector: [("app".to_string(), "db".to_string())].into(),
        ports: vec![
            ServicePort::tcp(5432),
            ServicePort {
                port: 53,
                target_port: Some(5353),
                protocol: Protocol::Udp,
            },
        ],
    }
}

/// Every object the backend sends for the fixtures, by golden file name.
fn objects() -> Vec<(&'static str, Value)> {
    let t = acme();
    vec![
        ("vpc", translate::vpc(&t, &vpc_spec())),
        ("subnet-primary", translate::subnet(&t, &primary())),
        ("subnet-secondary", translate::subnet(&t, &secondary())),
        ("attachment", translate::attachment(&t, "storage")),
        (
            "vip-fixed",
            translate::vip(&t, &reservation(), "acme-front"),
        ),
        (
            "vip-dynamic",
            translate::vip(&t, &IpReservationSpec::new("spare", "front"), "acme-front"),
        ),
        (
            "security-group",
            translate::security_group(&t, &security_group()).unwrap(),
        ),
        ("service", translate::service(&t, &service())),
        (
            "ovn-eip",
            external::ovn_eip(
                &t,
                &ExternalIpSpec::new("egress"),
                "ovn-vpc-external-network",
            ),
        ),
        (
            "ovn-eip-fixed",
            external::ovn_eip(
                &t,
                &ExternalIpSpec::new("web").with_ip("172.31.0.10".parse().unwrap()),
                "ovn-vpc-external-network",
            ),
        ),
        (
            "ovn-fip",
            external::ovn_fip(&t, &FloatingIpSpec::new("web", "web", "db-eth0")),
        ),
        (
            "ovn-snat-rule",
            external::ovn_snat_rule(&t, &SnatRuleSpec::new("front-out", "egress", "front")),
        ),
    ]
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"))
}

#[test]
fn translations_match_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, object) in objects() {
        let text = serde_json::to_string_pretty(&object).unwrap() + "\n";
        let path = golden(name);
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(text, want, "{name} differs from {}", path.display());
    }
}

#[test]
fn every_object_sent_validates_against_upstream() {
    let catalog = Catalog::upstream().expect("upstream schemas");
    for (name, object) in objects() {
        let api_version = object["apiVersion"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        let rt = catalog
            .by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("{api_version} {kind} is not in the catalog"));
        if let Err(errors) = rt.validate(&object) {
            panic!("{name} ({kind}) is refused by the upstream schema: {errors:?}");
        }
    }
}

#[test]
fn a_typo_would_be_caught_by_the_validation() {
    let catalog = Catalog::upstream().unwrap();
    let mut subnet = translate::subnet(&acme(), &primary());
    subnet["spec"]["cidrBlok"] = subnet["spec"]["cidrBlock"].clone();
    assert!(
        catalog
            .by_kind("kubeovn.io/v1", "Subnet")
            .unwrap()
            .validate(&subnet)
            .is_err()
    );
}

#[test]
fn the_attachment_cni_config_has_what_kube_ovn_needs() {
    let nad = translate::attachment(&acme(), "storage");
    let config: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["type"], "kube-ovn");
    assert_eq!(
        config["server_socket"],
        "/run/openvswitch/kube-ovn-daemon.sock"
    );
    assert_eq!(config["provider"], "storage.acme.ovn");
    assert!(config["cniVersion"].is_string());
    let subnet = translate::subnet(&acme(), &secondary());
    assert_eq!(
        subnet["spec"]["provider"], config["provider"],
        "the subnet names the attachment's provider"
    );
    assert_eq!(nad["metadata"]["name"], "storage");
    assert_eq!(nad["metadata"]["namespace"], "acme");
}

#[test]
fn specs_round_trip_through_their_objects() {
    let t = acme();
    assert_eq!(
        translate::vpc_spec_from(&typed(&translate::vpc(&t, &vpc_spec()))).unwrap(),
        vpc_spec()
    );
    for spec in [
        primary(),
        secondary(),
        SubnetSpec::new("v6", "main", "fd00:1::/120".parse().unwrap()),
    ] {
        assert_eq!(
            translate::subnet_spec_from(&typed(&translate::subnet(&t, &spec))).unwrap(),
            spec
        );
    }
    let sg = translate::security_group(&t, &security_group()).unwrap();
    assert_eq!(
        translate::security_group_spec_from(&t, &typed(&sg)).unwrap(),
        security_group()
    );
    let svc = translate::service(&t, &service());
    assert_eq!(
        translate::service_spec_from(&typed(&svc)).unwrap(),
        service()
    );
}

#[test]
fn sctp_rules_are_refused_naming_the_field() {
    let mut sg = security_group();
    sg.egress[0].protocol = Protocol::Sctp;
    let err = translate::security_group(&acme(), &sg).unwrap_err();
    assert_eq!(err.invalid_field(), Some("egress[0].protocol"));
}

#[test]
fn external_access_objects_read_back() {
    let t = acme();
    let fip_spec = FloatingIpSpec::new("web", "web", "db-eth0");
    let fip = external::floating_ip_from(&typed(&external::ovn_fip(&t, &fip_spec))).unwrap();
    assert_eq!((fip.spec, fip.ready), (fip_spec, false));
    let snat_spec = SnatRuleSpec::new("front-out", "egress", "front");
    let snat = external::snat_rule_from(&typed(&external::ovn_snat_rule(&t, &snat_spec))).unwrap();
    assert_eq!((snat.spec, snat.ready), (snat_spec, false));
    let eip_spec = ExternalIpSpec::new("web").with_ip("172.31.0.10".parse().unwrap());
    let mut eip = external::ovn_eip(&t, &eip_spec, "ovn-vpc-external-network");
    let pending = external::external_ip_from(&typed(&eip)).unwrap();
    assert_eq!((pending.ip, pending.ready), (None, false));
    eip["status"] = serde_json::json!({"v4Ip": "172.31.0.10", "ready": true});
    let ready = external::external_ip_from(&typed(&eip)).unwrap();
    assert_eq!(ready.spec, eip_spec);
    assert_eq!((ready.ip, ready.ready), (eip_spec.ip, true));
    // The FIP names the reservation's IP object, the SNAT rule the subnet's.
    let fip = external::ovn_fip(&t, &FloatingIpSpec::new("web", "web", "db-eth0"));
    assert_eq!(fip["spec"]["ipName"], translate::vip_name(&t, "db-eth0"));
    let snat = external::ovn_snat_rule(&t, &SnatRuleSpec::new("out", "egress", "front"));
    assert_eq!(
        snat["spec"]["vpcSubnet"],
        translate::subnet(&t, &primary())["metadata"]["name"]
    );
}

#[test]
fn addresses_and_macs_kube_ovn_wrote_are_read_or_refused_naming_the_field() {
    use kubecloud_kubeovn::models::{Ip, Vip};
    let ip: Ip = typed(
        &serde_json::json!({"apiVersion": "kubeovn.io/v1", "kind": "IP",
        "metadata": {"name": "web.acme"},
        "spec": {"v4IpAddress": "", "v6IpAddress": "", "ipAddress": "10.1.0.5,fd00::5",
                 "macAddress": "0e:00:0a:01:00:05", "podName": "web"}}),
    );
    assert_eq!(
        translate::ip_address(&ip).unwrap(),
        Some("10.1.0.5".parse().unwrap()),
        "an empty family is no address; a dual-stack ipAddress gives its first"
    );
    let leaked = translate::pod_ip_from(&ip, "front").unwrap().unwrap();
    assert_eq!(
        (leaked.name.as_str(), leaked.owner.as_deref()),
        ("web.acme", Some("web"))
    );
    let mut vip: Vip = typed(&translate::vip(
        &acme(),
        &kubecloud_core::IpReservationSpec::new("db", "front"),
        "acme-front",
    ));
    assert_eq!(
        translate::reservation_from(&vip, "front").unwrap(),
        None,
        "not allocated yet"
    );
    vip.status = Some(kubecloud_kubeovn::models::vip::VipStatus {
        v4ip: Some("10.1.0.9".into()),
        mac: Some("not-a-mac".into()),
        ..Default::default()
    });
    let err = translate::reservation_from(&vip, "front")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("status.mac") && err.contains("Vip") && err.contains("acme-db"),
        "{err}"
    );
    vip.status.as_mut().unwrap().mac = Some("0e:00:0a:01:00:09".into());
    let r = translate::reservation_from(&vip, "front").unwrap().unwrap();
    assert_eq!((r.name.as_str(), r.ip), ("db", "10.1.0.9".parse().unwrap()));
}
