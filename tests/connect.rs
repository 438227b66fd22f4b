//! `Cloud::connect_with` against the doubles: one discovery round, LINSTOR found as Piraeus
//! deploys it, capabilities from what is installed, a missing system named.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::time::Duration;

use common::stack::stack;
use kubecloud::connect::Installed;
use kubecloud::linstor::connect::{
    LinstorConnect, LinstorEndpoint, LinstorTls, PIRAEUS, from_storage_classes,
};
use kubecloud::{ApplyOptions, Cloud, ConnectOptions, Error, Part, TenantSpec};
use kubecloud_testkit::linstor::{LinstorServer, TestPki};
use kubecloud_testkit::schema::Catalog;
use kubecloud_testkit::{Latency, TestServer, Verb};

/// The `LinstorCluster` Piraeus users write, pointing at an external controller.
fn linstor_cluster_external(url: &str) -> String {
    format!(
        "apiVersion: piraeus.io/v1\nkind: LinstorCluster\nmetadata: {{name: linstorcluster}}\n\
         spec: {{externalController: {{url: \"{url}\"}}}}\n"
    )
}

const LINSTOR_CLASS: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: replicated
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: linstor.csi.linbit.com
parameters: {linstor.csi.linbit.com/resourceGroup: rg-fast}
"#;

/// A Kubernetes double without the given API groups (systems not installed), with a LINSTOR
/// StorageClass and a LinstorCluster pointing at `linstor_url`.
async fn cluster_without(groups: &[&str], linstor_url: &str) -> TestServer {
    let catalog = Catalog::upstream()
        .expect("catalog")
        .without_groups(groups)
        .expect("reduced catalog");
    let mut seed = LINSTOR_CLASS.to_string();
    if !groups.contains(&"piraeus.io") {
        seed = format!("{seed}\n---\n{}", linstor_cluster_external(linstor_url));
    }
    TestServer::builder()
        .owned_catalog(catalog)
        .seed_yaml(&seed)
        .start()
        .await
        .expect("Kubernetes double")
}

fn discovery_requests(server: &TestServer) -> usize {
    server.requests().count_verb(Verb::Discovery)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_discovers_in_one_round_and_a_tenant_applies_end_to_end() {
    // The stack (FakeCloud) already has the LinstorCluster pointing at the LINSTOR double.
    let s = stack(Latency::None, 0).await;
    s.kube.requests().reset();

    let cloud = Cloud::connect_with(s.kube.client(), ConnectOptions::new())
        .await
        .expect("connect");

    assert_eq!(discovery_requests(&s.kube), 1, "one discovery round");
    // The installations' namespaces are the backends' own: no tenant may take them.
    assert_eq!(cloud.storage().system_namespaces(), ["piraeus-datastore"]);
    assert_eq!(
        cloud.load_balancer().system_namespaces(),
        ["metallb-system"]
    );
    assert!(cloud.tenant("piraeus-datastore").is_err());
    let aggregated = s
        .kube
        .requests()
        .all()
        .into_iter()
        .filter(|r| r.verb == Verb::Discovery)
        .map(|r| r.path)
        .collect::<Vec<_>>();
    assert_eq!(aggregated, ["/apis"]);
    assert_eq!(s.kube.requests().writes(), [], "connecting writes nothing");
    assert_eq!(
        cloud.backend_names(),
        ["kubevirt", "linstor", "kube-ovn", "metallb"]
    );
    let caps = cloud.capabilities();
    assert!(caps.compute.vm_snapshots && caps.compute.http_import);
    assert!(caps.storage.snapshots && caps.storage.http_import);
    assert!(caps.network.secondary_subnets && caps.load_balancer.l2);

    // Tiers come from the LINSTOR StorageClasses; the default class is the default tier.
    let acme = cloud.tenant("acme").unwrap();
    let mut pools: Vec<String> = acme
        .volumes()
        .pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    pools.sort();
    assert_eq!(pools, ["fast", "linstor-default"]);

    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    let options = ApplyOptions {
        timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options)
        .await
        .expect("applied");
    let web = acme.vms().get("web").await.unwrap();
    assert_eq!(
        web.status.interfaces[0].ip,
        Some("10.1.0.10".parse().unwrap())
    );
    let root = acme.volumes().get("web-root").await.unwrap();
    assert_eq!(root.spec.replicas, 2);
    acme.destroy(options).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_kubevirt_is_an_error_naming_it() {
    let kube = cluster_without(
        &["kubevirt.io", "snapshot.kubevirt.io"],
        "https://127.0.0.1:9",
    )
    .await;
    let err = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("KubeVirt is not installed: API group kubevirt.io not served"),
        "{text}"
    );
    assert!(text.contains("allow_missing(Compute)"), "{text}");
    assert_eq!(kube.requests().writes(), [], "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_allowed_the_cloud_has_no_compute_and_says_why() {
    let kube = cluster_without(
        &["kubevirt.io", "snapshot.kubevirt.io"],
        "https://127.0.0.1:9",
    )
    .await;
    let cloud = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().allow_missing(Part::Compute),
    )
    .await
    .expect("a cloud without compute");
    assert_eq!(cloud.capabilities().compute, Default::default());
    assert!(cloud.backend_names()[0].contains("KubeVirt is not installed"));
    kube.requests().reset();
    let acme = cloud.tenant("acme").unwrap();
    let err = acme.vms().list(&Default::default()).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("kubevirt.io not served"), "{err}");
    assert_eq!(
        kube.requests().total(),
        0,
        "nothing sent for the absent part"
    );
    // The other parts are there.
    assert_eq!(cloud.backend_names()[2], "kube-ovn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_follow_what_is_installed() {
    let kube = cluster_without(
        &[
            "cdi.kubevirt.io",
            "snapshot.storage.k8s.io",
            "k8s.cni.cncf.io",
        ],
        "https://127.0.0.1:9",
    )
    .await;
    let cloud = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .expect("connect");
    let caps = cloud.capabilities();
    assert!(!caps.compute.http_import, "no CDI, no imports");
    assert!(
        !caps.compute.vm_snapshots,
        "no volume snapshots, no VM snapshots"
    );
    assert!(caps.compute.live_migration);
    assert!(!caps.storage.snapshots && !caps.storage.http_import);
    assert!(caps.storage.clones);
    assert!(!caps.network.secondary_subnets, "no Multus");
    assert!(caps.network.vpc_isolation);
    // Refused before anything is sent.
    kube.requests().reset();
    let acme = cloud.tenant("acme").unwrap();
    let err = acme
        .volumes()
        .snapshot("data", "s1")
        .await
        .expect_err("no snapshots");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    // The backends refuse too when called directly (the trait, not the facade).
    let tenant = kubecloud::Tenant::new("acme").unwrap();
    let err = cloud
        .storage()
        .create_snapshot(&tenant, "data", "s1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let err = cloud
        .compute()
        .snapshot_vm(&tenant, "web", "s1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let secondary = kubecloud::SubnetSpec {
        secondary: true,
        ..kubecloud::SubnetSpec::new("storage", "main", "10.9.0.0/24".parse().unwrap())
    };
    let err = cloud
        .network()
        .create_subnet(&tenant, &secondary)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(kube.requests().total(), 0, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_piraeus_or_a_linstor_url_storage_is_missing() {
    let kube = cluster_without(&["piraeus.io"], "unused").await;
    let err = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Piraeus is not installed: API group piraeus.io not served"),
        "{err}"
    );
    // A LINSTOR URL given explicitly needs no Piraeus.
    let cloud = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().linstor(LinstorEndpoint::new("https://linstor.example:3371")),
    )
    .await
    .expect("connect with an explicit LINSTOR");
    assert_eq!(cloud.backend_names()[1], "linstor");
}

const PIRAEUS_TLS: &str = r#"
apiVersion: piraeus.io/v1
kind: LinstorCluster
metadata: {name: linstorcluster}
spec:
  apiTLS: {clientSecretName: my-client-tls}
---
apiVersion: v1
kind: Namespace
metadata: {name: piraeus-datastore}
"#;

/// The controller's Service as Piraeus' operator makes it in `namespace`: labelled
/// `app.kubernetes.io/component=linstor-controller` and, with `owner_uid`, with the controller
/// owner reference to the `LinstorCluster` `linstorcluster` of that uid (`SetControllerReference`).
fn controller_service(namespace: &str, owner_uid: Option<&str>) -> String {
    let owners = owner_uid
        .map(|uid| {
            format!(
                "  ownerReferences:\n    - {{apiVersion: piraeus.io/v1, kind: LinstorCluster, \
                 name: linstorcluster, uid: \"{uid}\", controller: true, blockOwnerDeletion: true}}\n"
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: linstor-controller\n  \
         namespace: {namespace}\n  labels: {{app.kubernetes.io/component: linstor-controller}}\n\
         {owners}spec:\n  ports:\n    - {{name: secure-api, port: 3371, targetPort: 3371}}\n"
    )
}

/// The uid the double gave the seeded `LinstorCluster`.
fn linstor_cluster_uid(kube: &TestServer) -> String {
    let cluster = kube
        .cluster()
        .get("piraeus.io/v1", "LinstorCluster", None, "linstorcluster")
        .expect("the LinstorCluster");
    cluster["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_string()
}

/// Seeds the Service Piraeus' operator makes in `piraeus-datastore`, owned by the LinstorCluster.
fn seed_owned_service(kube: &TestServer) {
    let uid = linstor_cluster_uid(kube);
    kube.seed_yaml(&controller_service("piraeus-datastore", Some(&uid)))
        .expect("the controller's Service");
}

/// The client Secret Piraeus makes in `piraeus-datastore` (as JSON, which is YAML).
fn tls_secret(pki: &TestPki) -> String {
    tls_secret_in("piraeus-datastore", pki)
}

/// A client Secret `my-client-tls` in `namespace` (as JSON, which is YAML).
fn tls_secret_in(namespace: &str, pki: &TestPki) -> String {
    use k8s_openapi::ByteString;
    let data = [
        ("ca.crt", &pki.ca_pem),
        ("tls.crt", &pki.client.cert_pem),
        ("tls.key", &pki.client.key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
    .collect();
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("my-client-tls".into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).unwrap();
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    value.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linstor_is_found_through_its_service_and_client_tls_secret() {
    let pki = TestPki::generate().unwrap();
    let linstor = LinstorServer::builder()
        .nodes(["node-1", "node-2", "node-3"])
        .pool_on_all_nodes("lvm-thin", "LVM_THIN", 1 << 30)
        .resource_group("rg-fast", 2, ["lvm-thin"])
        .tls(pki.server_tls())
        .start()
        .await
        .expect("LINSTOR double with TLS");
    let kube = TestServer::builder()
        .seed_yaml(&format!(
            "{LINSTOR_CLASS}\n---\n{PIRAEUS_TLS}\n---\n{}",
            tls_secret(&pki)
        ))
        .start()
        .await
        .expect("Kubernetes double");
    seed_owned_service(&kube);

    let installed = Installed::discover(&kube.client())
        .await
        .expect("discovery");
    assert!(installed.has(&PIRAEUS));
    let endpoint = LinstorEndpoint::discover(&kube.client())
        .await
        .expect("LINSTOR found");
    assert_eq!(
        endpoint.url,
        "https://linstor-controller.piraeus-datastore.svc:3371"
    );
    assert_eq!(
        endpoint.tls,
        Some(LinstorTls {
            ca_pem: pki.ca_pem.clone().into_bytes(),
            cert_pem: pki.client.cert_pem.clone().into_bytes(),
            key_pem: pki.client.key_pem.clone().into_bytes(),
        })
    );
    assert!(
        !format!("{endpoint:?}").contains("PRIVATE KEY"),
        "the key stays out of Debug"
    );
    let tiers = from_storage_classes(&kube.client()).await.expect("tiers");
    assert_eq!(tiers.tiers, [("replicated".into(), "rg-fast".into())]);

    // The Service's DNS name resolves inside a cluster only: reach the double at its address
    // with the TLS material discovery read from the Secret.
    let cloud = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new()
            .allow_missing(Part::Compute)
            .linstor(LinstorEndpoint {
                url: linstor.url().to_string(),
                ..endpoint
            }),
    )
    .await
    .expect("connect");
    let acme = cloud.tenant("acme").unwrap();
    let pools = acme.volumes().pools().await.expect("pools over mutual TLS");
    assert_eq!(pools.len(), 1);
    assert!(linstor.tls_handshakes().completed >= 1);
    assert_eq!(linstor.tls_handshakes().failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_api_tls_the_controller_is_plain_http_on_3370() {
    let yaml = PIRAEUS_TLS.replace("  apiTLS: {clientSecretName: my-client-tls}", "  {}");
    let kube = TestServer::builder()
        .seed_yaml(&yaml.replace("spec:\n  {}", "spec: {}"))
        .start()
        .await
        .expect("Kubernetes double");
    seed_owned_service(&kube);
    let endpoint = LinstorEndpoint::discover(&kube.client())
        .await
        .expect("found");
    assert_eq!(
        endpoint,
        LinstorEndpoint {
            namespace: Some("piraeus-datastore".into()),
            ..LinstorEndpoint::new("http://linstor-controller.piraeus-datastore.svc:3370")
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_secret_is_named() {
    let kube = TestServer::builder()
        .seed_yaml(PIRAEUS_TLS)
        .start()
        .await
        .expect("Kubernetes double");
    seed_owned_service(&kube);
    let err = LinstorEndpoint::discover(&kube.client()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("client Secret piraeus-datastore/my-client-tls does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_discovery_is_retried_then_reported_as_temporary() {
    use kubecloud_testkit::Fault;
    let kube = cluster_without(&[], "https://127.0.0.1:9").await;
    // One 503: the client retries it, connecting succeeds.
    kube.faults()
        .inject(Fault::status(503).on_verb(Verb::Discovery).times(1));
    Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .expect("connect after a retried 503");
    // A 429 on discovery and a 503 on the LinstorCluster list: retried as well.
    kube.faults().inject(
        Fault::too_many_requests(0)
            .on_verb(Verb::Discovery)
            .times(1),
    );
    kube.faults()
        .inject(Fault::status(503).on_resource("linstorclusters").times(1));
    kube.requests().reset();
    Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .expect("connect after a retried 429 and 503");
    assert_eq!(kube.requests().count_status(429), 1);
    assert_eq!(kube.requests().count_status(503), 1);
    // Discovery failing for good: a temporary error saying what failed, nothing written. (A
    // client without kube's default retries, which back off for minutes before giving up.)
    kube.faults()
        .inject(Fault::status(503).on_verb(Verb::Discovery));
    let mut config = kube.kube_config();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let err = Cloud::connect_with(client, ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    assert!(
        err.to_string().contains("API discovery (GET /apis) failed"),
        "{err}"
    );
    assert_eq!(kube.requests().writes(), []);
}

#[test]
fn an_older_server_without_aggregated_discovery_is_understood() {
    let plain = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[
        {"name":"kubevirt.io","versions":[{"groupVersion":"kubevirt.io/v1","version":"v1"}]},
        {"name":"metallb.io","versions":[{"groupVersion":"metallb.io/v1beta2","version":"v1beta2"}]}]}"#;
    let installed = Installed::from_document(plain).unwrap();
    assert!(installed.has(&kubecloud::kubevirt::plugin::KUBEVIRT));
    assert!(
        !installed.has(&kubecloud::metallb::plugin::METALLB),
        "v1beta1 is not served"
    );
    assert!(Installed::from_document(r#"{"kind":"Status"}"#).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metallb_without_v1beta2_bgp_peers_offers_no_bgp() {
    use kubecloud::{
        AddressPoolSpec, Advertisement, BgpAdvertisement, BgpPeer, LoadBalancer, Tenant,
    };
    let kube = TestServer::start().await.expect("Kubernetes double");
    let lb = kubecloud::metallb::MetalLb::builder(kube.client())
        .bgp(false)
        .build();
    let caps = lb.capabilities();
    assert!(!caps.bgp && !caps.bfd && caps.l2);
    let block = kubecloud::AddressBlock::Cidr("192.0.2.0/28".parse().unwrap());
    let mut pool = AddressPoolSpec::l2("p", vec![block]);
    pool.advertisement = Advertisement::Bgp(BgpAdvertisement {
        peers: vec![BgpPeer {
            name: "tor".into(),
            my_asn: 64500,
            peer_asn: 64501,
            address: "192.0.2.254".parse().unwrap(),
            port: None,
            hold_time_secs: None,
            keepalive_time_secs: None,
            ebgp_multihop: false,
            bfd: false,
            password: None,
        }],
        ..BgpAdvertisement::default()
    });
    let err = lb
        .create_pool(&Tenant::new("acme").unwrap(), &pool)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(kube.requests().total(), 0, "nothing sent");
}

// --- What discovery trusts (issue 21): only the Piraeus installation the LinstorCluster owns. ---

/// Log lines captured by a `tracing` subscriber installed for the current thread (where the test
/// body, and so connecting, runs).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures events at `level` and above until the guard is dropped.
fn capture_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(level)
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// The requests the API double saw into `namespace`.
fn requests_into(kube: &TestServer, namespace: &str) -> Vec<String> {
    kube.requests()
        .all()
        .into_iter()
        .filter(|r| r.namespace.as_deref() == Some(namespace))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// A Piraeus with API TLS (`PIRAEUS_TLS`), its client Secret, and a hostile namespace `evil`
/// holding a Service labelled as the controller (not owned by the LinstorCluster) and a client
/// Secret of the same name made from `evil_pki`. The genuine Service is seeded when `genuine`.
async fn piraeus_beside_a_hostile_namespace(
    pki: &TestPki,
    evil_pki: &TestPki,
    genuine: bool,
) -> TestServer {
    let kube = TestServer::builder()
        .seed_yaml(&format!(
            "{LINSTOR_CLASS}\n---\n{PIRAEUS_TLS}\n---\n{}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {{name: evil}}\n---\n{}\n---\n{}",
            tls_secret(pki),
            controller_service("evil", None),
            tls_secret_in("evil", evil_pki),
        ))
        .start()
        .await
        .expect("Kubernetes double");
    if genuine {
        seed_owned_service(&kube);
    }
    kube
}

fn tls_of(pki: &TestPki) -> LinstorTls {
    LinstorTls {
        ca_pem: pki.ca_pem.clone().into_bytes(),
        cert_pem: pki.client.cert_pem.clone().into_bytes(),
        key_pem: pki.client.key_pem.clone().into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_service_in_another_namespace_is_ignored_and_its_secret_never_read() {
    let (pki, evil_pki) = (TestPki::generate().unwrap(), TestPki::generate().unwrap());
    let kube = piraeus_beside_a_hostile_namespace(&pki, &evil_pki, true).await;
    kube.requests().reset();
    let (logs, _guard) = capture_logs(tracing::Level::DEBUG);

    let endpoint = LinstorEndpoint::discover(&kube.client())
        .await
        .expect("LINSTOR found");

    assert_eq!(
        endpoint.url,
        "https://linstor-controller.piraeus-datastore.svc:3371"
    );
    assert_eq!(
        endpoint.tls,
        Some(tls_of(&pki)),
        "the genuine client certificate"
    );
    assert_eq!(
        requests_into(&kube, "evil"),
        Vec::<String>::new(),
        "nothing is read in the hostile namespace"
    );
    let secret_reads: Vec<Option<String>> = kube
        .requests()
        .all()
        .into_iter()
        .filter(|r| r.resource == "secrets")
        .map(|r| r.namespace)
        .collect();
    assert_eq!(secret_reads, [Some("piraeus-datastore".to_string())]);
    let ignored = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l.contains("DEBUG")
                && l.contains("ignoring a Service")
                && l.contains("evil/linstor-controller")
        })
        .count();
    assert_eq!(ignored, 1, "{:#?}", logs.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_the_linstor_cluster_owns_connecting_fails_naming_what_it_ignored() {
    let (pki, evil_pki) = (TestPki::generate().unwrap(), TestPki::generate().unwrap());
    let kube = piraeus_beside_a_hostile_namespace(&pki, &evil_pki, false).await;
    kube.requests().reset();

    let err = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().allow_missing(Part::Compute),
    )
    .await
    .expect_err("no trusted controller");

    let text = err.to_string();
    assert!(
        text.contains("no LINSTOR controller Service")
            && text.contains("controlled by the LinstorCluster linstorcluster")
            && text.contains("ignored, not controlled by it: evil/linstor-controller"),
        "{text}"
    );
    assert!(!err.is_temporary(), "{err:?}");
    assert_eq!(requests_into(&kube, "evil"), Vec::<String>::new());
    assert_eq!(
        kube.requests().count(Verb::Get, "secrets"),
        0,
        "no Secret read"
    );
    assert_eq!(kube.requests().writes(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_owner_reference_elsewhere_is_refused_and_a_pinned_namespace_never_looks_there() {
    let (pki, evil_pki) = (TestPki::generate().unwrap(), TestPki::generate().unwrap());
    let kube = piraeus_beside_a_hostile_namespace(&pki, &evil_pki, true).await;
    // Anyone who may create a Service and read the LinstorCluster can copy its uid.
    let uid = linstor_cluster_uid(&kube);
    kube.seed_yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: evil-2}}\n---\n{}",
        controller_service("evil-2", Some(&uid))
    ))
    .unwrap();
    kube.requests().reset();

    let err = LinstorEndpoint::discover(&kube.client())
        .await
        .expect_err("two namespaces claim the controller");
    let text = err.to_string();
    assert!(text.contains("more than one namespace"), "{text}");
    assert!(
        text.contains("evil-2/linstor-controller")
            && text.contains("piraeus-datastore/linstor-controller"),
        "{text}"
    );
    assert!(text.contains("LinstorConnect::piraeus_namespace"), "{text}");
    assert_eq!(
        kube.requests().count(Verb::Get, "secrets"),
        0,
        "no Secret read"
    );

    // Pinned: the Services of that namespace only (no cluster-wide list), its Secret only.
    kube.requests().reset();
    let endpoint = LinstorEndpoint::discover_in(&kube.client(), Some("piraeus-datastore"))
        .await
        .expect("found in the pinned namespace");
    assert_eq!(endpoint.tls, Some(tls_of(&pki)));
    let service_lists: Vec<String> = kube
        .requests()
        .all()
        .into_iter()
        .filter(|r| r.resource == "services")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        service_lists,
        ["/api/v1/namespaces/piraeus-datastore/services"]
    );
    assert_eq!(requests_into(&kube, "evil"), Vec::<String>::new());
    assert_eq!(requests_into(&kube, "evil-2"), Vec::<String>::new());

    // A pinned namespace that is not a namespace name is refused before anything is sent.
    kube.requests().reset();
    let err = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new()
            .allow_missing(Part::Compute)
            .allow_missing(Part::Storage)
            .piraeus_namespace("Not/A/Namespace"),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.invalid_field(), Some("piraeus_namespace"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_of_an_external_controller_is_read_in_piraeus_namespace_only() {
    let (pki, evil_pki) = (TestPki::generate().unwrap(), TestPki::generate().unwrap());
    let external = "apiVersion: piraeus.io/v1\nkind: LinstorCluster\nmetadata: {name: linstorcluster}\n\
                    spec:\n  externalController: {url: \"https://linstor.example:3371\"}\n  \
                    apiTLS: {clientSecretName: my-client-tls}\n";
    let kube = TestServer::builder()
        .seed_yaml(&format!(
            "{external}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: evil}}\n---\n{}\n---\n{}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {{name: storage}}\n---\n{}",
            controller_service("evil", None),
            tls_secret_in("evil", &evil_pki),
            tls_secret_in("storage", &pki),
        ))
        .start()
        .await
        .expect("Kubernetes double");

    // Piraeus' default namespace has no Secret: named, with the way to name another namespace.
    let err = LinstorEndpoint::discover(&kube.client())
        .await
        .expect_err("no Secret in piraeus-datastore");
    let text = err.to_string();
    assert!(
        text.contains("client Secret piraeus-datastore/my-client-tls does not exist")
            && text.contains("LinstorConnect::piraeus_namespace"),
        "{text}"
    );
    // The namespace Piraeus runs in, given: its Secret, and nothing of `evil`.
    let endpoint = LinstorEndpoint::discover_in(&kube.client(), Some("storage"))
        .await
        .expect("found");
    assert_eq!(endpoint.url, "https://linstor.example:3371");
    assert_eq!(endpoint.tls, Some(tls_of(&pki)));
    assert_eq!(requests_into(&kube, "evil"), Vec::<String>::new());
    assert_eq!(kube.requests().count(Verb::List, "services"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_one_linstor_cluster_is_not_guessed_between() {
    let kube = TestServer::builder()
        .seed_yaml(&format!(
            "{}---\n{}",
            linstor_cluster_external("https://a.example:3371"),
            linstor_cluster_external("https://b.example:3371").replace("linstorcluster", "second")
        ))
        .start()
        .await
        .expect("Kubernetes double");
    let err = LinstorEndpoint::discover(&kube.client()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("2 LinstorClusters exist (linstorcluster, second)"),
        "{err}"
    );
}

// --- Plain HTTP to LINSTOR: refused unless allowed explicitly, and then a warning. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_controller_from_discovery_is_refused_naming_the_option() {
    // Piraeus without spec.apiTLS serves http on 3370.
    let kube = TestServer::builder()
        .seed_yaml(&format!(
            "{LINSTOR_CLASS}\n---\n{}",
            PIRAEUS_TLS
                .replace("  apiTLS: {clientSecretName: my-client-tls}\n", "  {}\n")
                .replace("spec:\n  {}", "spec: {}")
        ))
        .start()
        .await
        .expect("Kubernetes double");
    seed_owned_service(&kube);
    kube.requests().reset();
    let err = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new()
            .allow_missing(Part::Compute)
            .allow_missing(Part::Storage),
    )
    .await
    .expect_err("plain http refused, even with storage allowed to be missing");
    assert_eq!(err.invalid_field(), Some("allow_plain_http"), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("http://linstor-controller.piraeus-datastore.svc:3370")
            && text.contains("found through the LinstorCluster")
            && text.contains("LinstorConnect::allow_plain_http()"),
        "{text}"
    );
    assert_eq!(kube.requests().writes(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_controller_given_explicitly_is_refused_too() {
    let kube = cluster_without(&["piraeus.io"], "unused").await;
    let err = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().linstor(LinstorEndpoint::new("http://linstor.example:3370")),
    )
    .await
    .expect_err("plain http refused");
    assert_eq!(err.invalid_field(), Some("allow_plain_http"), "{err:?}");
    assert!(
        err.to_string()
            .contains("given with LinstorConnect::linstor"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_allowed_explicitly_connects_and_warns_once() {
    let linstor = LinstorServer::builder()
        .nodes(["node-1"])
        .pool_on_all_nodes("lvm-thin", "LVM_THIN", 1 << 30)
        .resource_group("rg-fast", 1, ["lvm-thin"])
        .start()
        .await
        .expect("LINSTOR double over plain http");
    assert!(linstor.url().starts_with("http://"));
    let kube = cluster_without(&["kubevirt.io", "snapshot.kubevirt.io"], linstor.url()).await;
    let (logs, guard) = capture_logs(tracing::Level::WARN);

    let cloud = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new()
            .allow_missing(Part::Compute)
            .allow_plain_http(),
    )
    .await
    .expect("connect over plain http, allowed");
    drop(guard);

    let warnings: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN") && l.contains("LINSTOR over plain http://"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", logs.lines());
    assert!(warnings[0].contains(linstor.url()), "{}", warnings[0]);
    let pools = cloud
        .tenant("acme")
        .unwrap()
        .volumes()
        .pools()
        .await
        .expect("pools over plain http");
    assert_eq!(pools.len(), 1);
}

/// Multus and whereabouts served, Kube-OVN not: `Cloud::connect` picks the Multus network
/// with the options given, and a tenant applies, re-plans to nothing and is destroyed on it.
#[cfg(feature = "multus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_where_multus_runs_without_kube_ovn_picks_it_end_to_end() {
    use kubecloud::multus::Link;
    use kubecloud::multus::plugin::MultusOptions;
    let fake = kubecloud_testkit::FakeCloud::builder()
        .multus()
        .without_groups(&["kubeovn.io"])
        .start()
        .await
        .expect("fake cloud");
    let (kube, _linstor) = fake.into_parts();
    let options = ConnectOptions::new().with(MultusOptions {
        link: Link::Bridge {
            bridge: "br-vm".into(),
            vlans: 200..=299,
        },
        whereabouts_namespace: None,
        kubemacpool: false,
    });
    let cloud = Cloud::connect_with(kube.client(), options)
        .await
        .expect("connect");
    assert_eq!(
        cloud.backend_names(),
        ["kubevirt", "linstor", "multus", "metallb"]
    );
    let caps = cloud.capabilities().network;
    assert!(caps.fixed_ips_through_reservations && caps.vpc_isolation);
    assert!(!caps.external_access && !caps.mac_pool);

    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // On Multus a fixed address is a reservation's.
    let spec = TenantSpec {
        ip_reservations: vec![
            kubecloud::IpReservationSpec::new("web", "web").with_ip("10.1.0.10".parse().unwrap()),
        ],
        ..spec
    };
    let options = ApplyOptions {
        timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options)
        .await
        .expect("applied");
    let web = acme.vms().get("web").await.unwrap();
    assert_eq!(
        web.status.interfaces[0].ip,
        Some("10.1.0.10".parse().unwrap())
    );
    // The subnet is a NetworkAttachmentDefinition on the bridge and VLAN range given.
    let nad = kube
        .cluster()
        .get(
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
            Some("acme"),
            "web",
        )
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        (config["bridge"].as_str(), config["vlan"].as_u64()),
        (Some("br-vm"), Some(200))
    );
    assert!(
        acme.plan(&spec).await.unwrap().is_empty(),
        "re-plan is empty"
    );
    acme.destroy(options).await.unwrap();
    let left = common::stack::left_behind(&kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
}
