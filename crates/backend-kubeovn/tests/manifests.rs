//! Rendering network resources (GitOps output) instead of creating them: nothing is sent, the
//! objects are those creating sends, every one validates upstream, bad input names the field.

use std::time::Duration;

use kubecloud_core::{
    IpReservationSpec, Network, Rule, SecurityGroupSpec, ServicePort, ServiceSpec, SubnetSpec,
    Tenant, VpcSpec,
};
use kubecloud_kubeovn::KubeOvn;
use kubecloud_testkit::schema::Catalog;
use kubecloud_testkit::{KubeOvnController, TestServer};
use serde_json::Value;

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

struct Specs {
    vpc: VpcSpec,
    front: SubnetSpec,
    storage: SubnetSpec,
    reservation: IpReservationSpec,
    group: SecurityGroupSpec,
    service: ServiceSpec,
}

fn specs() -> Specs {
    let mut storage = SubnetSpec::new("storage", "main", "10.2.0.0/24".parse().unwrap());
    storage.secondary = true;
    Specs {
        vpc: VpcSpec::named("main"),
        front: SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
        storage,
        reservation: IpReservationSpec::new("db", "front").with_ip("10.1.0.20".parse().unwrap()),
        group: SecurityGroupSpec {
            name: "web".into(),
            ingress: vec![Rule::allow_tcp(443)],
            egress: Vec::new(),
        },
        service: ServiceSpec {
            name: "db".into(),
            selector: [("app".to_string(), "db".to_string())].into(),
            ports: vec![ServicePort::tcp(5432)],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_objects_are_what_creating_sends_and_nothing_is_sent() {
    let (server, net) = setup().await;
    let acme = Tenant::new("acme").unwrap();
    let s = specs();
    let mut rendered: Vec<Value> = Vec::new();
    rendered.extend(net.vpc_manifests(&acme, &s.vpc).unwrap());
    rendered.extend(net.subnet_manifests(&acme, &s.front).unwrap());
    rendered.extend(net.subnet_manifests(&acme, &s.storage).unwrap());
    rendered.extend(net.ip_reservation_manifests(&acme, &s.reservation).unwrap());
    rendered.extend(net.security_group_manifests(&acme, &s.group).unwrap());
    rendered.extend(net.service_manifests(&acme, &s.service).unwrap());
    assert_eq!(server.requests().total(), 0, "rendering sent a request");
    let catalog = Catalog::upstream().expect("catalog");
    let kinds: Vec<&str> = rendered
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Vpc",
            "Subnet",
            "NetworkAttachmentDefinition",
            "Subnet",
            "Vip",
            "SecurityGroup",
            "Service"
        ]
    );
    for o in &rendered {
        catalog
            .by_kind(
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            )
            .expect("kind")
            .validate(o)
            .unwrap_or_else(|e| panic!("{o}: {e:?}"));
    }

    let create = async {
        net.create_vpc(&acme, &s.vpc).await?;
        net.create_subnet(&acme, &s.front).await?;
        net.create_subnet(&acme, &s.storage).await?;
        net.reserve_ip(&acme, &s.reservation).await?;
        net.create_security_group(&acme, &s.group).await?;
        net.create_service(&acme, &s.service).await
    };
    tokio::time::timeout(Duration::from_secs(60), create)
        .await
        .expect("in time")
        .expect("created");
    let cluster = server.cluster();
    for object in rendered {
        let (av, kind) = (
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        );
        let name = object["metadata"]["name"].as_str().unwrap();
        let live = cluster
            .list(av, kind, object["metadata"]["namespace"].as_str())
            .unwrap()
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"));
        assert!(
            kubecloud_kube::is_subset(&object, &live),
            "{kind} {name}: rendered {object:#} live {live:#}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let (server, net) = setup().await;
    let acme = Tenant::new("acme").unwrap();
    let err = net
        .vpc_manifests(&acme, &VpcSpec::named("Main"))
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    let mut group = specs().group;
    group.ingress[0].protocol = kubecloud_core::Protocol::Sctp;
    let err = net.security_group_manifests(&acme, &group).unwrap_err();
    assert!(
        err.invalid_field()
            .is_some_and(|f| f.starts_with("ingress[0]")),
        "{err:?}"
    );
    assert_eq!(server.requests().total(), 0);
}
