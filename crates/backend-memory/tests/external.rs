//! External access in memory: one external network shared by every tenant, addresses checked,
//! objects scoped to their tenant.

use kubecloud_core::{
    Error, ExternalIpSpec, FloatingIpSpec, Network, ResourceKind, SnatRuleSpec, Tenant,
};
use kubecloud_memory::MemoryCloud;

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

#[tokio::test]
async fn the_external_network_is_shared_and_checked() {
    let cloud = MemoryCloud::new();
    let (acme, umbrella) = (tenant("acme"), tenant("umbrella"));
    let a = cloud
        .create_external_ip(&acme, &ExternalIpSpec::new("a"))
        .await
        .unwrap();
    let ip = a.ip.unwrap();
    assert!(ip.to_string().starts_with("172.31."), "{ip}");
    // Another tenant cannot take the same address, nor see acme's.
    let err = cloud
        .create_external_ip(&umbrella, &ExternalIpSpec::new("a").with_ip(ip))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let err = cloud.get_external_ip(&umbrella, "a").await.unwrap_err();
    assert!(err.is_not_found());
    assert!(cloud.list_external_ips(&umbrella).await.unwrap().is_empty());
    // The same name in another tenant is another external IP.
    let b = cloud
        .create_external_ip(&umbrella, &ExternalIpSpec::new("a"))
        .await
        .unwrap();
    assert_ne!(b.ip, Some(ip));
    // Outside the external network, or its gateway: refused.
    let err = cloud
        .create_external_ip(
            &acme,
            &ExternalIpSpec::new("out").with_ip("192.0.2.1".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("ip"), "{err}");
    let err = cloud
        .create_external_ip(
            &acme,
            &ExternalIpSpec::new("gw").with_ip("172.31.0.1".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    // Using another tenant's external IP: not found.
    let err = cloud
        .create_snat_rule(&umbrella, &SnatRuleSpec::new("s", "missing", "front"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                kind: ResourceKind::ExternalIp,
                ..
            }
        ),
        "{err}"
    );
    let err = cloud
        .create_floating_ip(&acme, &FloatingIpSpec::new("f", "a", "none"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                kind: ResourceKind::IpReservation,
                ..
            }
        ),
        "{err}"
    );
    // Released addresses are free again.
    cloud.delete_external_ip(&acme, "a").await.unwrap();
    let again = cloud
        .create_external_ip(&acme, &ExternalIpSpec::new("again").with_ip(ip))
        .await
        .unwrap();
    assert_eq!(again.ip, Some(ip));
}

#[tokio::test]
async fn a_reservation_a_floating_ip_binds_and_a_subnet_a_snat_rule_uses_stay() {
    use kubecloud_core::{IpReservationSpec, SubnetSpec, VpcSpec};
    let cloud = MemoryCloud::new();
    let acme = tenant("acme");
    cloud
        .create_vpc(&acme, &VpcSpec::named("main"))
        .await
        .unwrap();
    let cidr = "10.1.0.0/24".parse().unwrap();
    cloud
        .create_subnet(&acme, &SubnetSpec::new("front", "main", cidr))
        .await
        .unwrap();
    cloud
        .reserve_ip(&acme, &IpReservationSpec::new("web", "front"))
        .await
        .unwrap();
    cloud
        .create_external_ip(&acme, &ExternalIpSpec::new("a"))
        .await
        .unwrap();
    cloud
        .create_floating_ip(&acme, &FloatingIpSpec::new("f", "a", "web"))
        .await
        .unwrap();
    cloud
        .create_snat_rule(&acme, &SnatRuleSpec::new("s", "a", "front"))
        .await
        .unwrap();
    let err = cloud.release_ip(&acme, "web").await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { kind: ResourceKind::IpReservation, reason, .. } if reason.contains("floating ip f")),
        "{err}"
    );
    cloud.get_ip(&acme, "web").await.unwrap();
    cloud.delete_floating_ip(&acme, "f").await.unwrap();
    cloud.release_ip(&acme, "web").await.unwrap();
    let err = cloud.delete_subnet(&acme, "front").await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { kind: ResourceKind::Subnet, reason, .. } if reason.contains("snat rule s")),
        "{err}"
    );
    cloud.get_subnet(&acme, "front").await.unwrap();
    cloud.delete_snat_rule(&acme, "s").await.unwrap();
    cloud.delete_subnet(&acme, "front").await.unwrap();
}
