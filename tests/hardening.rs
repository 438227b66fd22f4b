//! Hardening on the whole stack of doubles: secrets never echoed (in any output, log, error,
//! plan, event or non-Secret object), tenants kept out of namespaces kubecloud did not make for
//! them, an empty spec never taken as "delete everything", concurrent applies that converge.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::stack::{cloud_on, objects_of, stack};
use kubecloud::{Action, ApplyOptions, Error, ResourceKind, TenantSpec};
use kubecloud_testkit::Latency;
use kubecloud_testkit::schema::Catalog;

const CLOUD_INIT_SECRET: &str = "CI-PASSWORD-5b7e";
const SSH_KEY_SECRET: &str = "AAAAC3NzaSSHKEY9d1f";
const BGP_FIRST: &str = "BGP-FIRST-77a1";
const BGP_SECOND: &str = "BGP-SECOND-0c3e";
const SECRETS: [&str; 4] = [CLOUD_INIT_SECRET, SSH_KEY_SECRET, BGP_FIRST, BGP_SECOND];

const TIMEOUT: Duration = Duration::from_secs(60);

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: TIMEOUT,
        ..ApplyOptions::default()
    }
}

/// A tenant with cloud-init, an SSH key and a BGP peer password (`hold` seconds hold time).
fn secret_spec(bgp_password: &str, hold: u32) -> String {
    format!(
        r##"
vpcs: [{{ name: main }}]
subnets: [{{ name: web, vpc: main, cidr: 10.1.0.0/24 }}]
vms:
  - name: web
    resources: {{ custom: {{ cpuCores: 1, memory: 1Gi }} }}
    bootDisk: {{ containerImage: {{ image: quay.io/containerdisks/fedora:40 }} }}
    interfaces: [{{ name: eth0, attachment: {{ subnet: {{ subnet: web }} }}, fixedIp: 10.1.0.10 }}]
    cloudInit:
      userData: "#cloud-config\npassword: {CLOUD_INIT_SECRET}\n"
      sshKeys: ["ssh-ed25519 {SSH_KEY_SECRET} ops@example.com"]
    labels: {{ app: web }}
addressPools:
  - name: routed
    addresses: [{{ cidr: 198.51.100.0/28 }}]
    advertisement:
      bgp:
        peers: [{{ name: tor, myAsn: 64500, peerAsn: 64501, address: 192.0.2.1, holdTimeSecs: {hold}, password: {bgp_password} }}]
exposures:
  - {{ name: web, selector: {{ app: web }}, ports: [{{ port: 443 }}], address: {{ pool: routed }} }}
"##
    )
}

/// Every log line of this test binary, at `trace` for kubecloud's crates and kube's client
/// (the doubles' own logs are left out: they are not kubecloud's output).
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,kubecloud_testkit=off,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info",
            ))
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every object in the API double except Secrets, as JSON text: where a secret must never be.
fn non_secret_objects(server: &kubecloud_testkit::TestServer) -> String {
    let catalog = Catalog::upstream().expect("catalog");
    let mut out = String::new();
    for t in catalog.types().iter().filter(|t| t.storage_version) {
        if t.kind == "Secret" {
            continue;
        }
        for o in server
            .cluster()
            .list(&t.api_version(), &t.kind, None)
            .unwrap_or_default()
        {
            out.push_str(&o.to_string());
            out.push('\n');
        }
    }
    out
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} carries a secret ({secret}):\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_log_error_plan_event_or_object() {
    let logs = captured_logs();
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut note = |what: &str, text: String| seen.push((what.to_string(), text));

    // Create, then rotate the BGP password and change its hold time.
    let first = TenantSpec::from_yaml(&secret_spec(BGP_FIRST, 90)).unwrap();
    note("spec debug", format!("{first:?}"));
    let plan = acme.plan(&first).await.unwrap();
    note("plan", format!("{plan} {plan:?}"));
    note("plan json", serde_json::to_string(&plan).unwrap());
    let events = Mutex::new(Vec::new());
    let report = acme
        .apply_with_progress(&plan, options(), &|e| {
            events.lock().unwrap().push(format!("{e:?}"))
        })
        .await;
    assert!(report.is_complete(), "{report:?}");
    note("apply report", format!("{report:?}"));
    note("apply events", events.lock().unwrap().join("\n"));

    let second = TenantSpec::from_yaml(&secret_spec(BGP_SECOND, 30)).unwrap();
    let plan = acme.plan(&second).await.unwrap();
    assert_eq!(plan.count(Action::Update), 1, "{plan}");
    note("rotation plan", format!("{plan} {plan:?}"));
    note("rotation plan json", serde_json::to_string(&plan).unwrap());
    let report = acme.apply(&plan, options()).await.unwrap();
    note("rotation report", format!("{report:?}"));
    let secret = s
        .kube
        .cluster()
        .list("v1", "Secret", Some("metallb-system"))
        .unwrap()
        .into_iter()
        .find(|o| o["metadata"]["labels"]["kubecloud.io/tenant"] == "acme")
        .expect("the peer's password Secret");
    let stored = secret["data"]["password"].as_str().unwrap_or_default();
    assert_ne!(stored, "", "the rotated password is stored: {secret}");
    assert!(acme.plan(&second).await.unwrap().is_empty());

    // What users read back: the VM, the pool, statuses.
    let vm = acme.vms().get("web").await.unwrap();
    note("vm", format!("{vm:?}"));
    let pool = acme.load_balancer().get_pool("routed").await.unwrap();
    note("pool", format!("{pool:?}"));

    // Every error path within reach, each message in Display and Debug.
    let mut errors: Vec<Error> = Vec::new();
    let mut moved = second.clone();
    moved.address_pools[0].addresses = vec![kubecloud::AddressBlock::Cidr(
        "203.0.113.0/28".parse().unwrap(),
    )];
    errors.push(acme.plan(&moved).await.unwrap_err());
    let bad_yaml = secret_spec(BGP_SECOND, 30).replace("holdTimeSecs: 30", "holdTimeSecs: [x]");
    errors.push(TenantSpec::from_yaml(&bad_yaml).unwrap_err());
    let bad_type = secret_spec(BGP_SECOND, 30).replace(
        &format!("password: {BGP_SECOND}"),
        &format!("password: {{ {BGP_SECOND}: 1 }}"),
    );
    errors.push(TenantSpec::from_yaml(&bad_type).unwrap_err());
    let mut missing = second.clone();
    missing.vms[0].interfaces[0].security_groups = vec!["absent".into()];
    errors.push(acme.plan(&missing).await.unwrap_err());
    // A change whose wait cannot end in time (a second VM with the same secrets, 1 ms to
    // start): the timeout names the last state seen.
    let mut changed = second.clone();
    let mut other = changed.vms[0].clone();
    other.name = "web2".into();
    other.interfaces[0].fixed_ip = Some("10.1.0.11".parse().unwrap());
    changed.vms.push(other);
    let plan = acme.plan(&changed).await.unwrap();
    note("second VM plan", format!("{plan} {plan:?}"));
    let kubevirt = s
        .kube
        .controller("virt-controller")
        .expect("simulated KubeVirt");
    kubevirt.pause();
    if let Err(e) = acme
        .apply(
            &plan,
            ApplyOptions {
                timeout: Duration::from_millis(1),
                ..options()
            },
        )
        .await
    {
        errors.push(e);
    }
    kubevirt.resume();
    // Settled before the destroy below (a destroy racing a VM that is still starting is not
    // what this test is about).
    let settle = acme.plan(&changed).await.unwrap();
    note(
        "settling report",
        format!("{:?}", acme.apply(&settle, options()).await.unwrap()),
    );
    // Another tenant's namespace and a reserved one.
    errors.push(s.cloud.tenant("metallb-system").map(drop).unwrap_err());
    for e in &errors {
        note("error", format!("{e} | {e:?}"));
    }
    assert!(
        errors.iter().any(Error::is_timeout),
        "the 1 ms wait ends with a typed timeout: {errors:?}"
    );
    assert_eq!(errors.len(), 6, "{errors:?}");

    // Destroy, then look everywhere.
    let report = acme.destroy(options()).await.unwrap();
    note("destroy report", format!("{report:?}"));
    for (what, text) in &seen {
        assert_no_secret(what, text);
    }
    assert_no_secret("objects other than Secrets", &non_secret_objects(&s.kube));
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the logs were captured"
    );
    assert_no_secret("logs", &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_takes_a_namespace_kubecloud_did_not_make_for_it() {
    let s = stack(Latency::None, 0).await;
    // Reserved: refused before anything is sent, naming the holder.
    for name in ["metallb-system", "piraeus-datastore", "kubevirt", "cdi"] {
        let err = s.cloud.tenant(name).map(drop).unwrap_err();
        assert_eq!(err.invalid_field(), Some("tenant"), "{name}: {err}");
    }
    // Another team's namespace, which exists without kubecloud's labels.
    s.kube
        .cluster()
        .create(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "payments", "labels": {"team": "payments"}},
        }))
        .unwrap();
    s.kube.requests().reset();
    let payments = s.cloud.tenant("payments").unwrap();
    let spec = TenantSpec::from_yaml(&secret_spec(BGP_FIRST, 90)).unwrap();
    let plan = payments.plan(&spec).await.unwrap();
    let err = payments.apply(&plan, options()).await.unwrap_err();
    assert!(
        err.to_string().contains("namespace \"payments\" exists"),
        "{err}"
    );
    let namespace = s
        .kube
        .cluster()
        .get("v1", "Namespace", None, "payments")
        .unwrap();
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["team"], "payments", "{namespace}");
    assert!(
        labels.get("kubecloud.io/tenant").is_none()
            && labels.get("app.kubernetes.io/managed-by").is_none(),
        "the namespace is left as it was: {namespace}"
    );
    let left: Vec<_> = objects_of(&s.kube, "payments")
        .into_iter()
        .filter(|(kind, _)| kind != "Namespace")
        .collect();
    // Only MetalLB's pool objects (in MetalLB's namespace) may have been written before the
    // namespace was reached; nothing in the foreign namespace, and no cluster-scoped network.
    assert!(
        left.iter().all(|(kind, at)| !at.starts_with("payments/")
            && !["Vpc", "Subnet", "VirtualMachine"].contains(&kind.as_str())),
        "{left:?}"
    );

    // Reserved by the operator on top of the defaults.
    let memory = kubecloud::MemoryCloud::new();
    let cloud = kubecloud::Cloud::builder()
        .compute(memory.clone())
        .storage(memory.clone())
        .network(memory.clone())
        .load_balancer(memory)
        .reserve_namespace("monitoring", "the monitoring stack")
        .build()
        .unwrap();
    let err = cloud.tenant("monitoring").map(drop).unwrap_err();
    assert!(err.to_string().contains("the monitoring stack"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_spec_never_deletes_a_tenant_without_being_asked() {
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(&secret_spec(BGP_FIRST, 90)).unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    // Controllers keep writing Events on their own: what the tenant has is everything else.
    let owned = || -> Vec<(String, String)> {
        objects_of(&s.kube, "acme")
            .into_iter()
            .filter(|(kind, _)| kind != "Event")
            .collect()
    };
    let before = owned();

    for empty in ["", "# nothing here\n", "{}"] {
        let spec = TenantSpec::from_yaml(empty).unwrap();
        let plan = acme.plan(&spec).await.unwrap();
        assert!(plan.deletes_everything, "{plan}");
        assert!(
            plan.to_string().contains("everything the tenant has"),
            "{plan}"
        );
        s.kube.requests().reset();
        let err = acme.apply(&plan, options()).await.unwrap_err();
        assert_eq!(err.invalid_field(), Some("allowDeleteAll"), "{err}");
        let report = acme.apply_with_progress(&plan, options(), &|_| {}).await;
        assert_eq!(report.done, [], "nothing was done");
        assert_eq!(s.kube.requests().writes(), [], "nothing was sent");
    }
    assert_eq!(owned(), before, "nothing was lost");

    // Asked for: it goes.
    let plan = acme.plan(&TenantSpec::default()).await.unwrap();
    let allowed = ApplyOptions {
        allow_delete_all: true,
        ..options()
    };
    acme.apply(&plan, allowed).await.unwrap();
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
    assert!(
        !acme
            .plan(&TenantSpec::default())
            .await
            .unwrap()
            .deletes_everything,
        "an empty tenant has nothing to lose"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_of_one_tenant_at_once_both_converge_without_duplicates() {
    let s = stack(Latency::None, 0).await;
    // Two processes: two clouds with nothing cached, planning before either creates anything.
    let (one, two) = (
        cloud_on(&s.kube, &s.linstor, &s.pki),
        cloud_on(&s.kube, &s.linstor, &s.pki),
    );
    let (a, b) = (one.tenant("acme").unwrap(), two.tenant("acme").unwrap());
    let yaml = format!(
        "{}volumes: [{{ name: data, size: 1Gi }}]\n",
        secret_spec(BGP_FIRST, 90)
    );
    let spec = TenantSpec::from_yaml(&yaml).unwrap();
    let (plan_a, plan_b) = tokio::join!(a.plan(&spec), b.plan(&spec));
    let (plan_a, plan_b) = (plan_a.unwrap(), plan_b.unwrap());
    assert_eq!(plan_a.count(Action::Create), spec.len());
    assert_eq!(plan_b.count(Action::Create), spec.len());
    let (ra, rb) = tokio::join!(a.apply(&plan_a, options()), b.apply(&plan_b, options()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.is_complete() && rb.is_complete(), "{ra:?} {rb:?}");
    assert!(a.plan(&spec).await.unwrap().is_empty());
    let objects = objects_of(&s.kube, "acme");
    let count = |kind: &str| objects.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("VirtualMachine"), 1, "{objects:?}");
    assert_eq!(count("PersistentVolumeClaim"), 1, "{objects:?}");
    assert_eq!(count("IPAddressPool"), 1, "{objects:?}");
    assert_eq!(count("Service"), 1, "{objects:?}");
    assert_eq!(
        a.volumes()
            .list(&kubecloud::Labels::new())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.plan(&spec)
            .await
            .unwrap()
            .steps
            .iter()
            .all(|s| s.kind != ResourceKind::Volume),
        "converged"
    );
}
