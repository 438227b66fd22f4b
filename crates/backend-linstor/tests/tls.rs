//! The REST plane over HTTPS, as Piraeus configures it: the controller's certificate signed by a
//! CA the backend is given, and a client certificate the controller requires. Verification is on
//! by default; plain HTTP must be asked for.

mod common;

use std::time::Duration;

use kubecloud_core::{BlockStorage, ByteSize, Error, Tenant, VolumeSpec, wait};
use kubecloud_kube::RetryPolicy;
use kubecloud_linstor::{Linstor, LinstorBuilder};
use kubecloud_testkit::linstor::{LinstorServer, ServerTls, TestPki};
use kubecloud_testkit::{
    GarbageCollector, LinstorCsi, NamespaceController, PvcProtection, TestServer,
};

async fn tls_linstor(tls: ServerTls) -> LinstorServer {
    LinstorServer::builder()
        .nodes(["node-a", "node-b", "node-c"])
        .pool_on_all_nodes("lvm-thin", "LVM_THIN", common::POOL_KIB)
        .resource_group("rg-fast", 2, ["lvm-thin"])
        .tls(tls)
        .start()
        .await
        .expect("LINSTOR double with TLS")
}

async fn kube(linstor: &LinstorServer) -> TestServer {
    TestServer::builder()
        .without_default_controllers()
        .controller(GarbageCollector)
        .controller(NamespaceController)
        // kube-apiserver gives every claim the pvc-protection finalizer; this removes it.
        .controller(PvcProtection)
        .controller(LinstorCsi::new(linstor))
        .start()
        .await
        .expect("kube double")
}

fn builder(kube: &TestServer, url: &str) -> LinstorBuilder {
    Linstor::builder(kube.client(), url)
        .tier("fast", "rg-fast")
        .max_replicas(3)
        .timeouts(Duration::from_secs(5), Duration::from_secs(2))
        .retry(RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
}

fn tenant() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn backend_message(err: &Error) -> String {
    match err {
        Error::Backend { .. } => err.to_string(),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_and_a_client_certificate_everything_works_over_https() {
    let pki = TestPki::generate().unwrap();
    let linstor = tls_linstor(pki.server_tls()).await;
    assert!(linstor.url().starts_with("https://"));
    let kube = kube(&linstor).await;
    let storage = builder(&kube, linstor.url())
        .tls(
            pki.ca_pem.clone(),
            pki.client.cert_pem.clone(),
            pki.client.key_pem.clone(),
        )
        .build()
        .expect("backend");
    let pools = storage.list_pools(&tenant()).await.expect("pools");
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].nodes.len(), 3);
    let t = tenant();
    storage
        .create_volume(
            &t,
            &VolumeSpec::blank("data", ByteSize::gib(1)).with_replicas(2),
        )
        .await
        .expect("create");
    let states = storage.watch_volume(&t, "data").await.expect("watch");
    let ready = wait::until(states, wait::volume_ready(), Duration::from_secs(20))
        .await
        .expect("ready");
    assert_eq!(
        ready.status.replicas.len(),
        3,
        "two replicas and a tie-breaker"
    );
    assert!(linstor.tls_handshakes().completed >= 1);
    assert_eq!(linstor.tls_handshakes().failed, 0);
    assert!(
        linstor.violations().is_empty(),
        "{:?}",
        linstor.violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_certificate_verification_fails_and_nothing_is_sent() {
    let pki = TestPki::generate().unwrap();
    let linstor = tls_linstor(pki.server_tls()).await;
    let kube = kube(&linstor).await;
    let other = TestPki::generate().unwrap();
    let cases = [
        // The system roots do not know the test CA.
        ("no CA", builder(&kube, linstor.url())),
        (
            "another CA",
            builder(&kube, linstor.url()).tls(
                other.ca_pem.clone(),
                pki.client.cert_pem.clone(),
                pki.client.key_pem.clone(),
            ),
        ),
    ];
    for (case, b) in cases {
        let storage = b.build().expect("backend");
        let err = storage.list_pools(&tenant()).await.unwrap_err();
        let message = backend_message(&err);
        assert!(
            message.contains("certificate verification") && message.contains("failed"),
            "{case}: {message}"
        );
        assert!(!err.is_temporary(), "{case}: not retried: {err}");
    }
    assert!(
        linstor.requests().is_empty(),
        "no request reached the controller: {:?}",
        linstor.requests()
    );
    assert_eq!(linstor.tls_handshakes().completed, 0);
    assert_eq!(
        kube.requests().total(),
        0,
        "nothing sent to Kubernetes either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_refuses_a_client_without_a_certificate_signed_by_its_ca() {
    let pki = TestPki::generate().unwrap();
    let linstor = tls_linstor(pki.server_tls()).await;
    let kube = kube(&linstor).await;
    let stranger = TestPki::generate().unwrap();
    let cases = [
        (
            "no client certificate",
            builder(&kube, linstor.url()).ca(pki.ca_pem.clone()),
        ),
        (
            "a client certificate of another CA",
            builder(&kube, linstor.url()).tls(
                pki.ca_pem.clone(),
                stranger.client.cert_pem.clone(),
                stranger.client.key_pem.clone(),
            ),
        ),
    ];
    for (case, b) in cases {
        let storage = b.build().expect("backend");
        // In TLS 1.3 the client learns of the refusal either in the handshake or on its first
        // read (as an alert or a reset), depending on timing: what is certain is the failure and
        // that the controller served nothing.
        let err = storage.list_pools(&tenant()).await.unwrap_err();
        assert!(
            matches!(err, kubecloud_core::Error::Backend { .. }),
            "{case}: {err:?}"
        );
    }
    assert!(linstor.requests().is_empty(), "{:?}", linstor.requests());
    assert_eq!(linstor.tls_handshakes().completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_fails_against_https_and_needs_insecure_http_anyway() {
    let pki = TestPki::generate().unwrap();
    let linstor = tls_linstor(pki.server_tls()).await;
    let kube = kube(&linstor).await;
    let http_url = linstor.url().replacen("https://", "http://", 1);

    // An http:// URL is refused unless asked for, before anything is sent.
    let err = builder(&kube, &http_url).build().unwrap_err();
    assert_eq!(err.invalid_field(), Some("linstor_url"), "{err}");

    // Asked for, plain HTTP to the HTTPS controller fails; nothing is served.
    let storage = builder(&kube, &http_url)
        .insecure_http()
        .build()
        .expect("backend");
    let err = storage.list_pools(&tenant()).await.unwrap_err();
    backend_message(&err);
    assert!(linstor.requests().is_empty(), "{:?}", linstor.requests());
    assert_eq!(linstor.tls_handshakes().completed, 0);
}
