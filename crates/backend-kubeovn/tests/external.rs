//! External access on Kube-OVN (`OvnEip`, `OvnFip`, `OvnSnatRule`) against the testkit server
//! with the simulated kube-ovn-controller: what crosses the wire, checks before anything is
//! sent, the external subnet's CIDR honoured, and tenant isolation of the cluster-scoped objects.

use std::time::Duration;

use kubecloud_core::{
    Error, ExternalIpSpec, FloatingIpSpec, IpReservationSpec, Network, ResourceKind, SnatRuleSpec,
    SubnetSpec, Tenant, VpcSpec,
};
use kubecloud_kubeovn::KubeOvn;
use kubecloud_testkit::{KubeOvnController, TestServer, Verb};

async fn setup() -> (TestServer, KubeOvn) {
    let server = TestServer::builder()
        .controller(KubeOvnController::default())
        .start()
        .await
        .expect("server");
    let backend = KubeOvn::builder(server.client())
        .ready_timeout(Duration::from_secs(20))
        .build();
    (server, backend)
}

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

/// Runs `f` under a guard so a hung wait fails the test instead of hanging it.
async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took too long")
}

async fn network_with_reservation(backend: &KubeOvn, t: &Tenant) {
    backend
        .create_vpc(t, &VpcSpec::named("main"))
        .await
        .unwrap();
    let cidr = "10.1.0.0/24".parse().unwrap();
    backend
        .create_subnet(t, &SubnetSpec::new("front", "main", cidr))
        .await
        .unwrap();
    backend
        .reserve_ip(t, &IpReservationSpec::new("web-eth0", "front"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ips_floating_ips_and_snat_cross_the_wire_once_each() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        network_with_reservation(&backend, &acme).await;
        let requests = server.requests();
        requests.reset();
        let eip = backend
            .create_external_ip(&acme, &ExternalIpSpec::new("web"))
            .await
            .unwrap();
        assert!(eip.ready);
        let ip = eip.ip.expect("an allocated address");
        assert!(
            "172.31.0.0/16"
                .parse::<kubecloud_core::IpNet>()
                .unwrap()
                .contains(&ip),
            "from the simulated external network: {ip}"
        );
        let fip = backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("web", "web", "web-eth0"))
            .await
            .unwrap();
        assert!(fip.ready);
        let snat = backend
            .create_snat_rule(&acme, &SnatRuleSpec::new("out", "web", "front"))
            .await
            .unwrap();
        assert!(snat.ready);
        for resource in ["ovn-eips", "ovn-fips", "ovn-snat-rules"] {
            assert_eq!(
                requests.count(Verb::Apply, resource),
                1,
                "{resource}: {:?}",
                requests.summary()
            );
        }
        // What Kube-OVN sees: the FIP names the reservation's IP object and has the addresses.
        let cluster = server.cluster();
        let fip = cluster
            .get_opt("kubeovn.io/v1", "OvnFip", None, "acme-web")
            .unwrap()
            .unwrap();
        assert_eq!(fip["spec"]["ipName"], "acme-web-eth0");
        assert_eq!(fip["status"]["v4Eip"], ip.to_string());
        let reservation = backend.get_ip(&acme, "web-eth0").await.unwrap();
        assert_eq!(fip["status"]["v4Ip"], reservation.ip.to_string());
        let snat = cluster
            .get_opt("kubeovn.io/v1", "OvnSnatRule", None, "acme-out")
            .unwrap()
            .unwrap();
        assert_eq!(snat["spec"]["vpcSubnet"], "acme-front");
        assert_eq!(snat["status"]["v4IpCidr"], "10.1.0.0/24");

        // In use: refused, nothing deleted.
        requests.reset();
        let err = backend.delete_external_ip(&acme, "web").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    kind: ResourceKind::ExternalIp,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(requests.writes().len(), 0, "nothing deleted while in use");
        backend.delete_floating_ip(&acme, "web").await.unwrap();
        backend.delete_snat_rule(&acme, "out").await.unwrap();
        backend.delete_external_ip(&acme, "web").await.unwrap();
        for (kind, name) in [
            ("OvnEip", "acme-web"),
            ("OvnFip", "acme-web"),
            ("OvnSnatRule", "acme-out"),
        ] {
            assert!(
                cluster
                    .get_opt("kubeovn.io/v1", kind, None, name)
                    .unwrap()
                    .is_none(),
                "{kind} {name} is gone"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_taken_requests_send_nothing() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        network_with_reservation(&backend, &acme).await;
        let taken = backend
            .create_external_ip(&acme, &ExternalIpSpec::new("a"))
            .await
            .unwrap()
            .ip
            .unwrap();
        let requests = server.requests();
        requests.reset();
        let err = backend
            .create_external_ip(&acme, &ExternalIpSpec::new("Bad_Name"))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("name"));
        let err = backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("f", "", "web-eth0"))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("externalIp"));
        assert_eq!(
            requests.count_where(|r| r.verb != Verb::Watch),
            0,
            "nothing sent for invalid specs (a shared watch opened earlier may still be connecting)"
        );

        let err = backend
            .create_external_ip(&acme, &ExternalIpSpec::new("b").with_ip(taken))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        let err = backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("f", "missing", "web-eth0"))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = backend
            .create_snat_rule(&acme, &SnatRuleSpec::new("s", "a", "missing"))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("f", "a", "web-eth0"))
            .await
            .unwrap();
        requests.reset();
        let err = backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("g", "a", "web-eth0"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    kind: ResourceKind::FloatingIp,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            requests.writes().len(),
            0,
            "refusals are decided before writing"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_subnet_cidr_is_honoured() {
    guarded(async {
        let (server, _) = setup().await;
        server
            .cluster()
            .seed_yaml(
                "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: external204}\n\
                 spec: {cidrBlock: 192.0.2.0/24, gateway: 192.0.2.1, protocol: IPv4, provider: ovn}\n",
            )
            .unwrap();
        let backend = KubeOvn::builder(server.client())
            .ready_timeout(Duration::from_secs(20))
            .external_subnet("external204")
            .build();
        let acme = tenant("acme");
        let eip = backend
            .create_external_ip(&acme, &ExternalIpSpec::new("a"))
            .await
            .unwrap();
        let ip = eip.ip.unwrap();
        assert!(ip.to_string().starts_with("192.0.2."), "{ip}");
        assert_ne!(ip.to_string(), "192.0.2.1", "never the gateway");
        let wanted = "192.0.2.77".parse().unwrap();
        let eip = backend
            .create_external_ip(&acme, &ExternalIpSpec::new("b").with_ip(wanted))
            .await
            .unwrap();
        assert_eq!(eip.ip, Some(wanted));
        let requests = server.requests();
        requests.reset();
        let err = backend
            .create_external_ip(
                &acme,
                &ExternalIpSpec::new("c").with_ip("198.51.100.7".parse().unwrap()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("ip"), "{err}");
        assert_eq!(requests.writes().len(), 0, "nothing sent for an outside address");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_external_objects_read_as_not_found() {
    guarded(async {
        let (server, backend) = setup().await;
        let (acme, umbrella) = (tenant("acme"), tenant("umbrella"));
        network_with_reservation(&backend, &acme).await;
        backend
            .create_external_ip(&acme, &ExternalIpSpec::new("web"))
            .await
            .unwrap();
        backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("web", "web", "web-eth0"))
            .await
            .unwrap();
        let err = backend.get_external_ip(&umbrella, "web").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(
            backend
                .list_external_ips(&umbrella)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            backend
                .list_floating_ips(&umbrella)
                .await
                .unwrap()
                .is_empty()
        );
        let requests = server.requests();
        requests.reset();
        for err in [
            backend
                .delete_external_ip(&umbrella, "web")
                .await
                .unwrap_err(),
            backend
                .delete_floating_ip(&umbrella, "web")
                .await
                .unwrap_err(),
        ] {
            assert!(err.is_not_found(), "{err}");
        }
        // Using acme's external IP from umbrella: not found either.
        backend
            .create_vpc(&umbrella, &VpcSpec::named("main"))
            .await
            .unwrap();
        let cidr = "10.1.0.0/24".parse().unwrap();
        backend
            .create_subnet(&umbrella, &SubnetSpec::new("front", "main", cidr))
            .await
            .unwrap();
        let err = backend
            .create_snat_rule(&umbrella, &SnatRuleSpec::new("out", "web", "front"))
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
        assert_eq!(requests.count(Verb::Delete, "ovn-eips"), 0);
        assert_eq!(requests.count(Verb::Delete, "ovn-fips"), 0);
        assert_eq!(requests.count(Verb::Apply, "ovn-snat-rules"), 0);
        assert!(backend.get_external_ip(&acme, "web").await.unwrap().ready);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_a_floating_ip_binds_and_a_subnet_a_snat_rule_uses_stay() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        network_with_reservation(&backend, &acme).await;
        backend
            .create_external_ip(&acme, &ExternalIpSpec::new("a"))
            .await
            .unwrap();
        backend
            .create_floating_ip(&acme, &FloatingIpSpec::new("f", "a", "web-eth0"))
            .await
            .unwrap();
        backend
            .create_snat_rule(&acme, &SnatRuleSpec::new("s", "a", "front"))
            .await
            .unwrap();
        let requests = server.requests();
        requests.reset();
        let err = backend.release_ip(&acme, "web-eth0").await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Conflict { kind: ResourceKind::IpReservation, reason, .. }
                    if reason.contains("floating ip f")
            ),
            "{err}"
        );
        assert_eq!(requests.writes().len(), 0, "refused before writing");
        backend.get_ip(&acme, "web-eth0").await.unwrap();

        backend.delete_floating_ip(&acme, "f").await.unwrap();
        backend.release_ip(&acme, "web-eth0").await.unwrap();
        requests.reset();
        let err = backend.delete_subnet(&acme, "front").await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Conflict { kind: ResourceKind::Subnet, reason, .. }
                    if reason.contains("snat rule s")
            ),
            "{err}"
        );
        assert_eq!(requests.writes().len(), 0, "refused before writing");
        backend.get_subnet(&acme, "front").await.unwrap();

        backend.delete_snat_rule(&acme, "s").await.unwrap();
        backend.delete_subnet(&acme, "front").await.unwrap();
    })
    .await;
}
