//! Network rules of the in-memory cloud: VPCs, subnets and their overlaps, reservations,
//! security groups and services.

use kubecloud_core::{
    Compute, Error, IpReservationSpec, Network, NetworkInterface, ResourceKind, SecurityGroupSpec,
    ServicePort, ServiceSpec, SubnetSpec, Tenant, VmSpec, VpcSpec,
};
use kubecloud_memory::MemoryCloud;

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn subnet(name: &str, vpc: &str, cidr: &str) -> SubnetSpec {
    SubnetSpec::new(name, vpc, cidr.parse().unwrap())
}

#[tokio::test]
async fn a_vpc_is_deleted_only_without_subnets() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud
        .create_vpc(&tenant, &VpcSpec::named("main"))
        .await
        .unwrap();
    let err = cloud
        .create_vpc(&tenant, &VpcSpec::named("main"))
        .await
        .unwrap_err();
    assert!(err.is_already_exists());
    cloud
        .create_subnet(&tenant, &subnet("front", "main", "10.0.0.0/24"))
        .await
        .unwrap();
    assert_eq!(
        cloud.get_vpc(&tenant, "main").await.unwrap().subnets,
        vec!["front".to_string()]
    );
    let err = cloud.delete_vpc(&tenant, "main").await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("front")),
        "{err}"
    );
    cloud.delete_subnet(&tenant, "front").await.unwrap();
    cloud.delete_vpc(&tenant, "main").await.unwrap();
    assert!(cloud.list_vpcs(&tenant).await.unwrap().is_empty());
}

#[tokio::test]
async fn subnets_of_one_vpc_never_overlap_but_those_of_two_may() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    for vpc in ["a", "b"] {
        cloud
            .create_vpc(&tenant, &VpcSpec::named(vpc))
            .await
            .unwrap();
    }
    let err = cloud
        .create_subnet(&tenant, &subnet("s", "nope", "10.0.0.0/24"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                kind: ResourceKind::Vpc,
                ..
            }
        ),
        "{err}"
    );
    cloud
        .create_subnet(&tenant, &subnet("wide", "a", "10.0.0.0/16"))
        .await
        .unwrap();
    let err = cloud
        .create_subnet(&tenant, &subnet("inner", "a", "10.0.5.0/24"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("\"wide\"")),
        "{err}"
    );
    cloud
        .create_subnet(&tenant, &subnet("inner", "b", "10.0.5.0/24"))
        .await
        .unwrap();
    let err = cloud
        .create_subnet(&tenant, &subnet("wide", "b", "10.9.0.0/24"))
        .await
        .unwrap_err();
    assert!(err.is_already_exists());
    let bad = subnet("x", "a", "10.1.0.5/24");
    let err = cloud.create_subnet(&tenant, &bad).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("cidr"));
}

#[tokio::test]
async fn reservations_take_the_next_free_or_a_fixed_address_until_exhausted() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud
        .create_vpc(&tenant, &VpcSpec::named("v"))
        .await
        .unwrap();
    // A /29: .0 network, .1 gateway, .7 broadcast; five addresses.
    cloud
        .create_subnet(&tenant, &subnet("tiny", "v", "10.0.0.0/29"))
        .await
        .unwrap();
    let first = cloud
        .reserve_ip(&tenant, &IpReservationSpec::new("r0", "tiny"))
        .await
        .unwrap();
    assert_eq!(first.ip.to_string(), "10.0.0.2");
    let fixed = IpReservationSpec::new("r1", "tiny").with_ip("10.0.0.6".parse().unwrap());
    cloud.reserve_ip(&tenant, &fixed).await.unwrap();
    let taken = IpReservationSpec::new("r2", "tiny").with_ip("10.0.0.6".parse().unwrap());
    let err = cloud.reserve_ip(&tenant, &taken).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let outside = IpReservationSpec::new("r2", "tiny").with_ip("10.0.1.6".parse().unwrap());
    let err = cloud.reserve_ip(&tenant, &outside).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("ip"));
    for i in 2..5 {
        cloud
            .reserve_ip(&tenant, &IpReservationSpec::new(format!("r{i}"), "tiny"))
            .await
            .unwrap();
    }
    let err = cloud
        .reserve_ip(&tenant, &IpReservationSpec::new("r5", "tiny"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Exhausted {
                kind: ResourceKind::Subnet,
                ..
            }
        ),
        "{err}"
    );
    let usage = cloud.get_subnet(&tenant, "tiny").await.unwrap();
    assert_eq!((usage.used, usage.available), (5, 0));
    assert_eq!(
        cloud.list_ips(&tenant, Some("tiny")).await.unwrap().len(),
        5
    );
    assert!(
        cloud
            .list_ips(&tenant, Some("other"))
            .await
            .unwrap()
            .is_empty()
    );

    let err = cloud.delete_subnet(&tenant, "tiny").await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    cloud.release_ip(&tenant, "r1").await.unwrap();
    let again = cloud
        .reserve_ip(&tenant, &IpReservationSpec::new("r5", "tiny"))
        .await
        .unwrap();
    assert_eq!(
        again.ip.to_string(),
        "10.0.0.6",
        "released addresses come back"
    );
    assert!(
        cloud
            .get_ip(&tenant, "r1")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn a_security_group_in_use_is_not_deleted() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let group = SecurityGroupSpec {
        name: "web".into(),
        ingress: vec![kubecloud_core::Rule::allow_tcp(443)],
        ..SecurityGroupSpec::default()
    };
    cloud.create_security_group(&tenant, &group).await.unwrap();
    let err = cloud
        .create_security_group(&tenant, &group)
        .await
        .unwrap_err();
    assert!(err.is_already_exists());
    let spec = VmSpec {
        name: "web-1".into(),
        interfaces: vec![NetworkInterface {
            security_groups: vec!["web".into()],
            ..NetworkInterface::pod_network("eth0")
        }],
        ..VmSpec::default()
    };
    cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    let err = cloud
        .delete_security_group(&tenant, "web")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        cloud.get_security_group(&tenant, "web").await.unwrap().spec,
        group
    );
    cloud.delete_vm(&tenant, "web-1").await.unwrap();
    cloud.delete_security_group(&tenant, "web").await.unwrap();
    assert!(
        cloud
            .list_security_groups(&tenant)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn services_get_a_cluster_ip_a_dns_name_and_endpoints_computed_when_read() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let spec = ServiceSpec {
        name: "web".into(),
        selector: [("app".to_string(), "web".to_string())].into(),
        ports: vec![ServicePort::tcp(80)],
    };
    let service = cloud.create_service(&tenant, &spec).await.unwrap();
    let ip = service.cluster_ip.unwrap();
    assert!(
        "10.96.0.0/12"
            .parse::<kubecloud_core::IpNet>()
            .unwrap()
            .contains(&ip)
    );
    assert_eq!(service.dns_name, "web.acme.svc.cluster.local");
    assert!(service.endpoints.is_empty());
    for (name, app) in [("web-1", "web"), ("db-1", "db"), ("web-2", "web")] {
        let vm = VmSpec {
            name: name.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            ..VmSpec::default()
        };
        cloud.apply_vm_resolved(&tenant, &vm).await.unwrap();
    }
    let service = cloud.get_service(&tenant, "web").await.unwrap();
    assert_eq!(
        service.endpoints,
        vec!["web-1".to_string(), "web-2".to_string()]
    );
    assert_eq!(service.cluster_ip, Some(ip));
    let err = cloud.create_service(&tenant, &spec).await.unwrap_err();
    assert!(err.is_already_exists());
    cloud.delete_service(&tenant, "web").await.unwrap();
    assert!(cloud.list_services(&tenant).await.unwrap().is_empty());
    let again = cloud.create_service(&tenant, &spec).await.unwrap();
    assert_ne!(again.cluster_ip, None);
}
