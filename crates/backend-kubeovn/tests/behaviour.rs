//! What crosses the wire, and the issue's end-to-end scenario: a tenant VPC with two subnets (one
//! reached through Multus), fixed-IP reservations, a security group and a service, created,
//! inspected and torn down against the testkit server with the simulated kube-ovn-controller.

use std::time::Duration;

use kubecloud_core::{
    Error, IpReservationSpec, MacAddress, Network, NetworkInterface, ResourceKind, Rule,
    SecurityGroupSpec, ServicePort, ServiceSpec, Subnet, SubnetSpec, Tenant, VpcSpec,
};
use kubecloud_kubeovn::KubeOvn;
use kubecloud_testkit::{KubeOvnController, TestServer, Verb};
use serde_json::json;

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

/// The subnet once `used` addresses are in use: Kube-OVN writes the counts after the address
/// changed, so they are waited for on the subnet's states.
async fn subnet_using(backend: &KubeOvn, tenant: &Tenant, subnet: &str, used: u128) -> Subnet {
    let states = backend.watch_subnet(tenant, subnet).await.unwrap();
    kubecloud_core::wait::until(
        states,
        kubecloud_core::wait::subnet_in_use(used),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

fn net(s: &str) -> kubecloud_core::IpNet {
    s.parse().unwrap()
}

/// Runs `f` under a guard so a hung wait fails the test instead of hanging it.
async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took too long")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_network_is_created_inspected_and_torn_down() {
    guarded(async {
        let (server, net_backend) = setup().await;
        let acme = tenant("acme");
        let cluster = server.cluster();

        let vpc = net_backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        assert!(
            vpc.ready,
            "create_vpc returns once Kube-OVN reports the VPC ready"
        );
        let front = net_backend
            .create_subnet(&acme, &SubnetSpec::new("front", "main", net("10.1.0.0/24")))
            .await
            .unwrap();
        assert!(front.ready);
        assert_eq!(front.available, 253);
        let mut storage = SubnetSpec::new("storage", "main", net("10.2.0.0/24"));
        storage.secondary = true;
        storage.exclude = vec!["10.2.0.2..10.2.0.9".parse().unwrap()];
        let storage_subnet = net_backend.create_subnet(&acme, &storage).await.unwrap();
        assert_eq!(storage_subnet.spec, storage);
        assert_eq!(storage_subnet.available, 253 - 8);

        // The objects as Kube-OVN and Multus see them.
        let vpc_obj = cluster
            .get("kubeovn.io/v1", "Vpc", None, "acme-main")
            .unwrap();
        assert_eq!(vpc_obj["spec"]["namespaces"], json!(["acme"]));
        assert_eq!(
            vpc_obj["status"]["subnets"],
            json!(["acme-front", "acme-storage"])
        );
        let sub = cluster
            .get("kubeovn.io/v1", "Subnet", None, "acme-storage")
            .unwrap();
        assert_eq!(sub["spec"]["provider"], "storage.acme.ovn");
        assert_eq!(sub["spec"]["excludeIps"], json!(["10.2.0.2..10.2.0.9"]));
        let nad = cluster
            .get(
                "k8s.cni.cncf.io/v1",
                "NetworkAttachmentDefinition",
                Some("acme"),
                "storage",
            )
            .unwrap();
        let config: serde_json::Value =
            serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(config["provider"], "storage.acme.ovn");

        // Fixed-IP reservations for VM interfaces, on both subnets.
        let mac = MacAddress([0x52, 0x54, 0x00, 0, 0, 0x10]);
        let db = net_backend
            .reserve_ip(
                &acme,
                &IpReservationSpec {
                    mac: Some(mac),
                    ..IpReservationSpec::new("db-eth0", "front")
                        .with_ip("10.1.0.10".parse().unwrap())
                },
            )
            .await
            .unwrap();
        assert_eq!((db.ip.to_string(), db.mac), ("10.1.0.10".to_string(), mac));
        let db1 = net_backend
            .reserve_ip(&acme, &IpReservationSpec::new("db-eth1", "storage"))
            .await
            .unwrap();
        assert_eq!(
            db1.ip.to_string(),
            "10.2.0.10",
            "exclusions and the gateway are skipped"
        );
        assert_eq!(
            subnet_using(&net_backend, &acme, "storage", 1).await.used,
            1
        );
        assert_eq!(net_backend.list_ips(&acme, None).await.unwrap().len(), 2);

        // A security group and a service.
        let web = SecurityGroupSpec {
            name: "web".into(),
            ingress: vec![Rule::allow_tcp(443)],
            egress: vec![],
        };
        net_backend
            .create_security_group(&acme, &web)
            .await
            .unwrap();
        assert_eq!(
            net_backend
                .get_security_group(&acme, "web")
                .await
                .unwrap()
                .spec,
            web
        );
        let svc = ServiceSpec {
            name: "db".into(),
            selector: [("app".to_string(), "db".to_string())].into(),
            ports: vec![ServicePort::tcp(5432)],
        };
        let created = net_backend.create_service(&acme, &svc).await.unwrap();
        assert_eq!(created.dns_name, "db.acme.svc.cluster.local");
        assert!(created.cluster_ip.is_some());

        // A VM pod selected by the service shows up as an endpoint.
        cluster
            .create(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "virt-launcher-db-abcde", "namespace": "acme",
                             "labels": {"app": "db", "vm.kubevirt.io/name": "db"}},
                "spec": {"containers": [{"name": "compute", "image": "virt-launcher"}]}}))
            .unwrap();
        assert_eq!(
            net_backend
                .get_service(&acme, "db")
                .await
                .unwrap()
                .endpoints,
            ["db"]
        );

        // Teardown in dependency order; refusals while in use.
        let err = net_backend
            .delete_subnet(&acme, "storage")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    kind: ResourceKind::Subnet,
                    ..
                }
            ),
            "{err}"
        );
        let err = net_backend.delete_vpc(&acme, "main").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    kind: ResourceKind::Vpc,
                    ..
                }
            ),
            "{err}"
        );
        net_backend.delete_service(&acme, "db").await.unwrap();
        net_backend
            .delete_security_group(&acme, "web")
            .await
            .unwrap();
        net_backend.release_ip(&acme, "db-eth0").await.unwrap();
        net_backend.release_ip(&acme, "db-eth1").await.unwrap();
        assert_eq!(
            subnet_using(&net_backend, &acme, "storage", 0).await.used,
            0
        );
        net_backend.delete_subnet(&acme, "storage").await.unwrap();
        assert!(
            cluster
                .get_opt(
                    "k8s.cni.cncf.io/v1",
                    "NetworkAttachmentDefinition",
                    Some("acme"),
                    "storage"
                )
                .unwrap()
                .is_none(),
            "the attachment goes with its subnet"
        );
        net_backend.delete_subnet(&acme, "front").await.unwrap();
        net_backend.delete_vpc(&acme, "main").await.unwrap();
        for kind in ["Vpc", "Subnet", "IP", "SecurityGroup"] {
            assert!(
                cluster
                    .list("kubeovn.io/v1", kind, None)
                    .unwrap()
                    .is_empty(),
                "{kind} left behind"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_overlaps_send_nothing() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        backend
            .create_subnet(&acme, &SubnetSpec::new("front", "main", net("10.1.0.0/24")))
            .await
            .unwrap();
        let requests = server.requests();
        requests.reset();
        let err = backend
            .create_subnet(
                &acme,
                &SubnetSpec::new("Bad_Name", "main", net("10.9.0.0/24")),
            )
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("name"));
        assert_eq!(
            requests.count_where(|r| r.verb != Verb::Watch),
            0,
            "nothing sent for an invalid spec (a shared watch opened earlier may still be connecting)"
        );
        let err = backend
            .create_subnet(
                &acme,
                &SubnetSpec::new("half", "main", net("10.1.0.128/25")),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("\"front\""),
            "the conflict names the other subnet: {err}"
        );
        assert_eq!(
            requests.writes().len(),
            0,
            "an overlap is refused before anything is written"
        );
        let err = backend
            .reserve_ip(
                &acme,
                &IpReservationSpec::new("gw", "front").with_ip("10.1.0.1".parse().unwrap()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("ip"), "{err}");
        assert_eq!(requests.writes().len(), 0);
        requests.reset();
        let mut sctp = SecurityGroupSpec {
            name: "s".into(),
            ingress: vec![Rule::allow_tcp(1)],
            egress: vec![],
        };
        sctp.ingress[0].protocol = kubecloud_core::Protocol::Sctp;
        sctp.ingress[0].ports = None;
        let err = backend
            .create_security_group(&acme, &sctp)
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("ingress[0].protocol"));
        assert_eq!(
            requests.count_where(|r| r.verb != Verb::Watch),
            0,
            "nothing sent for an unsupported rule (a shared watch opened earlier may still be connecting)"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apply_per_object_and_waits_use_watches() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        let requests = server.requests();
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        let mut storage = SubnetSpec::new("storage", "main", net("10.2.0.0/24"));
        storage.secondary = true;
        backend.create_subnet(&acme, &storage).await.unwrap();
        backend
            .reserve_ip(&acme, &IpReservationSpec::new("r", "storage"))
            .await
            .unwrap();
        assert_eq!(requests.count(Verb::Apply, "vpcs"), 1);
        assert_eq!(requests.count(Verb::Apply, "subnets"), 1);
        assert_eq!(
            requests.count(Verb::Apply, "network-attachment-definitions"),
            1
        );
        assert_eq!(requests.count(Verb::Apply, "vips"), 1);
        // One get per object to check the name is free (and the reservation's look-up of its
        // subnet); the waits are watches, not polls.
        assert_eq!(
            requests.count(Verb::Get, "subnets"),
            2,
            "{:?}",
            requests.summary()
        );
        assert_eq!(
            requests.count(Verb::Get, "vips"),
            1,
            "{:?}",
            requests.summary()
        );
        // What holds addresses of the subnet is listed once per kind (`IP`s and `Vip`s); the
        // wait for the Vip is a watch starting with a list.
        assert_eq!(requests.count(Verb::List, "ips"), 1);
        assert_eq!(requests.count(Verb::List, "vips"), 2);
        // The watch starts with a list of the one object, so a fast controller needs no watch.
        assert_eq!(
            requests.count(Verb::List, "subnets"),
            2,
            "overlap check + the wait's list"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_cannot_see_or_touch_cluster_scoped_objects() {
    guarded(async {
        let (_server, backend) = setup().await;
        let (a, b) = (tenant("alpha"), tenant("beta"));
        backend
            .create_vpc(&a, &VpcSpec::named("main"))
            .await
            .unwrap();
        let web = SecurityGroupSpec {
            name: "web".into(),
            ingress: vec![Rule::allow_tcp(80)],
            egress: vec![],
        };
        backend.create_security_group(&a, &web).await.unwrap();
        let svc = ServiceSpec {
            name: "db".into(),
            selector: [("app".to_string(), "db".to_string())].into(),
            ports: vec![ServicePort::tcp(5432)],
        };
        backend.create_service(&a, &svc).await.unwrap();
        assert!(
            backend
                .get_security_group(&b, "web")
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            backend
                .delete_security_group(&b, "web")
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(backend.list_security_groups(&b).await.unwrap().is_empty());
        assert!(
            backend
                .get_service(&b, "db")
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(backend.list_services(&b).await.unwrap().is_empty());
        // A rule naming another tenant's group is refused as not found.
        let sneaky = SecurityGroupSpec {
            name: "sneaky".into(),
            ingress: vec![Rule {
                remote: kubecloud_core::Remote::Group("web".into()),
                ..Rule::allow_tcp(22)
            }],
            egress: vec![],
        };
        assert!(
            backend
                .create_security_group(&b, &sneaky)
                .await
                .unwrap_err()
                .is_not_found()
        );
        backend.get_security_group(&a, "web").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_ips_of_gone_workloads_are_listed_and_reclaimed() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        let cluster = server.cluster();
        backend.create_vpc(&acme, &VpcSpec::named("main")).await.unwrap();
        backend
            .create_subnet(&acme, &SubnetSpec::new("front", "main", net("10.1.0.0/24")))
            .await
            .unwrap();
        // An IP Kube-OVN made for a pod that is gone (a controller crash left it behind), as
        // `createOrUpdateIPCR` makes them.
        cluster
            .create(json!({"apiVersion": "kubeovn.io/v1", "kind": "IP",
                "metadata": {"name": "ghost.acme", "finalizers": ["kube-ovn-controller"],
                             "labels": {"ovn.kubernetes.io/subnet": "acme-front",
                                        "ovn.kubernetes.io/ip_reserved": "false"}},
                "spec": {"podName": "ghost", "namespace": "acme", "subnet": "acme-front",
                         "v4IpAddress": "10.1.0.50", "ipAddress": "10.1.0.50", "macAddress": "0e:00:0a:01:00:32"}}))
            .unwrap();
        let orphans: Vec<String> =
            backend.orphaned_ips(&acme).await.unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(orphans, ["ghost.acme"]);
        assert!(backend.orphaned_ips(&tenant("other")).await.unwrap().is_empty());
        let reclaimed = backend.reclaim_orphaned_ips(&acme).await.unwrap();
        assert_eq!(reclaimed.len(), 1);
        assert!(cluster.get_opt("kubeovn.io/v1", "IP", None, "ghost.acme").unwrap().is_none());
        assert!(backend.orphaned_ips(&acme).await.unwrap().is_empty());
        backend.delete_subnet(&acme, "front").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_holds_its_subnet_and_one_taken_by_a_gone_vm_can_be_released() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        let cluster = server.cluster();
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        backend
            .create_subnet(&acme, &SubnetSpec::new("front", "main", net("10.1.0.0/24")))
            .await
            .unwrap();
        backend
            .reserve_ip(&acme, &IpReservationSpec::new("kept", "front"))
            .await
            .unwrap();
        let err = backend.delete_subnet(&acme, "front").await.unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { reason, .. } if reason.contains("reservation")),
            "{err}"
        );
        // Kube-OVN left the Vip labelled with the port of a VM that is gone (it missed the
        // pod's deletion): the reservation names it, and it can be released.
        cluster
            .merge_patch(
                "kubeovn.io/v1",
                "Vip",
                None,
                "acme-kept",
                &json!({"metadata": {"labels": {"ovn.kubernetes.io/ip_reserved": "old-vm.acme"}}}),
            )
            .unwrap();
        let kept = backend.get_ip(&acme, "kept").await.unwrap();
        assert_eq!(kept.owner.as_deref(), Some("old-vm"));
        assert!(
            backend.orphaned_ips(&acme).await.unwrap().is_empty(),
            "a Vip is no leaked IP"
        );
        backend.release_ip(&acme, "kept").await.unwrap();
        backend.delete_subnet(&acme, "front").await.unwrap();
    })
    .await;
}

/// A reservation whose `Vip` names a VM that exists (stopped: no pod) is in use; once the VM is
/// gone it can be released. The VM is read through KubeVirt's generated model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_of_an_existing_vm_without_a_pod_is_not_released() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        let cluster = server.cluster();
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        backend
            .create_subnet(&acme, &SubnetSpec::new("front", "main", net("10.1.0.0/24")))
            .await
            .unwrap();
        backend
            .reserve_ip(&acme, &IpReservationSpec::new("db-eth0", "front"))
            .await
            .unwrap();
        cluster
            .merge_patch(
                "kubeovn.io/v1",
                "Vip",
                None,
                "acme-db-eth0",
                &json!({"metadata": {"labels": {"ovn.kubernetes.io/ip_reserved": "db.acme"}}}),
            )
            .unwrap();
        // A stopped VM, as KubeVirt stores it.
        cluster
            .create(
                json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                "metadata": {"name": "db", "namespace": "acme"},
                "spec": {"runStrategy": "Halted",
                         "template": {"spec": {"domain": {"devices": {}}}}}}),
            )
            .unwrap();
        let err = backend.release_ip(&acme, "db-eth0").await.unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { reason, .. } if reason.contains("in use by db")),
            "{err}"
        );
        cluster
            .delete("kubevirt.io/v1", "VirtualMachine", Some("acme"), "db")
            .unwrap();
        backend.release_ip(&acme, "db-eth0").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_in_use_by_a_running_vm_is_not_released() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        let cluster = server.cluster();
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        backend
            .create_subnet(&acme, &SubnetSpec::new("front", "main", net("10.1.0.0/24")))
            .await
            .unwrap();
        let r = backend
            .reserve_ip(
                &acme,
                &IpReservationSpec::new("web-eth0", "front").with_ip("10.1.0.20".parse().unwrap()),
            )
            .await
            .unwrap();
        // The compute backend's VM pod asks for the reserved address (in the tenant's
        // namespace, which the network backend made on its first write).
        assert!(cluster.get("v1", "Namespace", None, "acme").is_ok());
        // The pod carries what the backend answers for an interface fixing the reserved
        // address: the reservation's Vip.
        let mut eth0 = NetworkInterface::on_subnet("eth0", "front");
        eth0.fixed_ip = Some(r.ip);
        let attached = backend
            .attach_interfaces(&acme, "web", &[eth0])
            .await
            .unwrap();
        assert_eq!(
            attached[0].pod_annotations["ovn.kubernetes.io/vip"],
            "acme-web-eth0"
        );
        cluster
            .create(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "virt-launcher-web-1", "namespace": "acme",
                    "labels": {"vm.kubevirt.io/name": "web"},
                    "annotations": attached[0].pod_annotations},
                "spec": {"containers": [{"name": "compute", "image": "virt-launcher"}]}}))
            .unwrap();
        kubecloud_kube::wait_for(
            kube::Api::<kube::api::DynamicObject>::all_with(
                server.client(),
                &kubecloud_kubeovn::kinds::vip(),
            ),
            "acme-web-eth0",
            ResourceKind::IpReservation,
            "web-eth0",
            Duration::from_secs(10),
            |o| match o.and_then(|o| {
                o.metadata
                    .labels
                    .as_ref()?
                    .get("ovn.kubernetes.io/ip_reserved")
                    .cloned()
            }) {
                Some(port) if port == "web.acme" => kubecloud_core::wait::Check::Met,
                _ => kubecloud_core::wait::Check::Pending,
            },
        )
        .await
        .unwrap();
        // Another VM fixing the same address is refused before anything is sent.
        let mut thief = NetworkInterface::on_subnet("eth0", "front");
        thief.fixed_ip = Some(r.ip);
        let err = backend
            .attach_interfaces(&acme, "thief", &[thief])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        assert_eq!(
            backend
                .get_ip(&acme, "web-eth0")
                .await
                .unwrap()
                .owner
                .as_deref(),
            Some("web")
        );
        // The controller annotates the pod after it binds the IP object: wait for it.
        let pod = kubecloud_kube::wait_for(
            kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(server.client(), "acme"),
            "virt-launcher-web-1",
            ResourceKind::Vm,
            "web",
            Duration::from_secs(10),
            |p| match p
                .and_then(|p| p.metadata.annotations.as_ref())
                .and_then(|a| a.get("ovn.kubernetes.io/mac_address"))
            {
                Some(_) => kubecloud_core::wait::Check::Met,
                None => kubecloud_core::wait::Check::Pending,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            pod.metadata.annotations.unwrap()["ovn.kubernetes.io/mac_address"],
            r.mac.to_string()
        );
        let err = backend.release_ip(&acme, "web-eth0").await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        cluster
            .delete("v1", "Pod", Some("acme"), "virt-launcher-web-1")
            .unwrap();
        backend.release_ip(&acme, "web-eth0").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_subnet_whose_attachment_failed_is_completed_by_the_next_create() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = tenant("acme");
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        let mut storage = SubnetSpec::new("storage", "main", net("10.2.0.0/24"));
        storage.secondary = true;
        // The attachment's apply fails for good (every retry answered 500): the Subnet, written
        // first, was made.
        server.faults().inject(
            kubecloud_testkit::Fault::status(500)
                .on_verb(Verb::Apply)
                .on_resource("network-attachment-definitions")
                .times(5),
        );
        let err = backend.create_subnet(&acme, &storage).await.unwrap_err();
        assert!(err.is_temporary(), "{err}");
        let requests = server.requests();
        assert_eq!(requests.count(Verb::Apply, "subnets"), 1);
        let refused = requests.count(Verb::Apply, "network-attachment-definitions");
        assert!(refused >= 1);
        let listed = backend.list_subnets(&acme).await.unwrap();
        assert!(listed[0].incomplete, "{listed:?}");
        // Trying again completes it: the attachment is sent once more, the namespace is not.
        backend.create_subnet(&acme, &storage).await.unwrap();
        assert_eq!(
            requests.count(Verb::Apply, "network-attachment-definitions"),
            refused + 1
        );
        assert_eq!(
            requests.count(Verb::Apply, "namespaces"),
            1,
            "the namespace once"
        );
        assert!(!backend.list_subnets(&acme).await.unwrap()[0].incomplete);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_subnets_count_their_addresses() {
    guarded(async {
        let (_server, backend) = setup().await;
        let acme = tenant("acme");
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        let spec = SubnetSpec::new("v6", "main", net("fd00:10::/120"));
        let subnet = backend.create_subnet(&acme, &spec).await.unwrap();
        assert_eq!(subnet.spec, spec);
        assert_eq!(
            subnet.available, 253,
            "256 addresses less the network, the last address (Kube-OVN's util.LastIP) and the gateway"
        );
        let r = backend
            .reserve_ip(&acme, &IpReservationSpec::new("r", "v6"))
            .await
            .unwrap();
        assert_eq!(r.ip.to_string(), "fd00:10::2");
        let s = subnet_using(&backend, &acme, "v6", 1).await;
        assert_eq!((s.used, s.available), (1, 252));
        backend.release_ip(&acme, "r").await.unwrap();
        backend.delete_subnet(&acme, "v6").await.unwrap();
        backend.delete_vpc(&acme, "main").await.unwrap();
    })
    .await;
}
