//! Temporary API failures are retried; a dropped watch resumes; a slow controller is waited for.

use std::time::Duration;

use kubecloud_core::{IpReservationSpec, Network, SubnetSpec, Tenant, VpcSpec};
use kubecloud_kubeovn::KubeOvn;
use kubecloud_testkit::{Fault, KubeOvnController, Latency, TestServer, Verb};

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

async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took too long")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_throttling_are_retried() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = Tenant::new("acme").unwrap();
        server.faults().inject(
            Fault::status(503)
                .on_verb(Verb::Apply)
                .on_resource("vpcs")
                .times(2),
        );
        server.faults().inject(
            Fault::status(500)
                .on_verb(Verb::Get)
                .on_resource("subnets")
                .times(1),
        );
        server.faults().inject(
            Fault::too_many_requests(0)
                .on_verb(Verb::List)
                .on_resource("ips")
                .times(1),
        );
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        backend
            .create_subnet(
                &acme,
                &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
            )
            .await
            .unwrap();
        backend
            .reserve_ip(&acme, &IpReservationSpec::new("r", "front"))
            .await
            .unwrap();
        let requests = server.requests();
        assert_eq!(requests.count_status(503), 2);
        assert_eq!(
            requests.count(Verb::Apply, "vpcs"),
            3,
            "two failures, then the apply"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_conflict_is_retried() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = Tenant::new("acme").unwrap();
        server.faults().inject(
            Fault::status(409)
                .on_verb(Verb::Apply)
                .on_resource("vpcs")
                .times(1),
        );
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        assert_eq!(server.requests().count(Verb::Apply, "vpcs"), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_resumes_and_a_slow_controller_is_waited_for() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = Tenant::new("acme").unwrap();
        let controller = server.controller("kube-ovn-controller").unwrap();
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        controller.set_delay(Latency::Fixed(Duration::from_millis(300)));
        server.faults().inject(
            Fault::drop_connection()
                .on_verb(Verb::Watch)
                .on_resource("subnets")
                .times(1),
        );
        let subnet = backend
            .create_subnet(
                &acme,
                &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
            )
            .await
            .unwrap();
        assert!(subnet.ready);
        assert_eq!(subnet.available, 253);
        assert!(
            server.requests().count(Verb::Watch, "subnets") >= 2,
            "the dropped watch was reopened: {:?}",
            server.requests().summary()
        );
    })
    .await;
}

/// A secondary subnet whose attachment definition could not be written (an interrupted create)
/// lists as incomplete; creating it again completes it; deleting one removes what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_subnet_cut_off_before_its_attachment_is_completed_or_removed() {
    guarded(async {
        let (server, backend) = setup().await;
        let acme = Tenant::new("acme").unwrap();
        backend
            .create_vpc(&acme, &VpcSpec::named("main"))
            .await
            .unwrap();
        let secondary = |name: &str, cidr: &str| {
            let mut s = SubnetSpec::new(name, "main", cidr.parse().unwrap());
            s.secondary = true;
            s
        };
        let nad = |name: &str| {
            server
                .cluster()
                .get_opt(
                    "k8s.cni.cncf.io/v1",
                    "NetworkAttachmentDefinition",
                    Some("acme"),
                    name,
                )
                .unwrap()
        };
        let cut = || {
            // A refusal is not retried: the create stops between its two writes.
            server.faults().inject(
                Fault::status(403)
                    .on_verb(Verb::Apply)
                    .on_resource("network-attachment-definitions")
                    .times(1),
            );
        };
        let storage = secondary("storage", "10.9.0.0/24");
        cut();
        backend
            .create_subnet(&acme, &storage)
            .await
            .expect_err("the attachment is refused");
        let listed = backend.list_subnets(&acme).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].spec, storage);
        assert!(listed[0].incomplete, "no attachment: {listed:?}");
        assert!(nad("storage").is_none());
        // Creating it again completes it (a complete subnet of that name is still taken).
        let done = backend.create_subnet(&acme, &storage).await.unwrap();
        assert!(!done.incomplete);
        assert!(nad("storage").is_some());
        let listed = backend.list_subnets(&acme).await.unwrap();
        assert!(!listed[0].incomplete, "{listed:?}");
        let again = backend.create_subnet(&acme, &storage).await.unwrap_err();
        assert!(again.is_already_exists(), "{again}");
        // Cut off again on another subnet, then deleted: nothing of it is left.
        let backup = secondary("backup", "10.9.1.0/24");
        cut();
        backend.create_subnet(&acme, &backup).await.unwrap_err();
        backend.delete_subnet(&acme, "backup").await.unwrap();
        let names: Vec<String> = backend
            .list_subnets(&acme)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.spec.name)
            .collect();
        assert_eq!(names, ["storage"]);
        assert!(nad("backup").is_none());
        assert!(
            nad("storage").is_some(),
            "the other subnet's attachment stays"
        );
    })
    .await;
}
