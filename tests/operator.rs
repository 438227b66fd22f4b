//! The operator example (`examples/operator`) end to end: the `Tenant` CRD registered in the
//! Kubernetes API double, the controller running against the whole stack (four real backends,
//! every simulated controller), a Tenant object applied, changed, made invalid and deleted.
//! Every wait is on a watch, guarded by a timeout.
#![cfg(feature = "kubernetes")]

#[path = "../examples/operator/operator.rs"]
mod operator;
#[path = "common/stack.rs"]
mod stack;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResourceExt, ResourceExt};
use kubecloud::{ByteSize, TenantSpec, VolumeSpec};
use kubecloud_testkit::{Fault, Latency, Verb};
use serde_json::json;

use operator::reconcile::{self, FINALIZER, STATUS_MANAGER};
use operator::resource::{Tenant, TenantResourceSpec};

const GUARD: Duration = Duration::from_secs(30);

/// The CRD as `kubectl apply --server-side -f` would send it; returns once it is established.
async fn register_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "tenants.kubecloud.io",
        &PatchParams::apply("kubectl"),
        &Patch::Apply(Tenant::crd()),
    )
    .await
    .expect("CRD applied");
    tokio::time::timeout(
        GUARD,
        await_condition(
            crds,
            "tenants.kubecloud.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .expect("watch");
}

fn tenant(name: &str, spec: &TenantSpec) -> Tenant {
    Tenant::new(
        name,
        TenantResourceSpec::from_tenant_spec(spec).expect("the spec converts"),
    )
}

/// Waits on a watch until the tenant's status has condition `type_` = `True` for `generation`.
/// The watch resumes when a connection drops (faults may hit this watch as well as the
/// controller's).
async fn wait_for(api: &Api<Tenant>, name: &str, type_: &str, generation: i64) -> Tenant {
    use kubecloud::wait::Check;
    let wanted = type_.to_owned();
    let cond = move |t: Option<&Tenant>| {
        let met = t.and_then(|t| t.status.as_ref()).is_some_and(|s| {
            s.observed_generation == Some(generation)
                && s.condition(&wanted).is_some_and(|c| c.status == "True")
        });
        if met { Check::Met } else { Check::Pending }
    };
    let found = kubecloud_kube::wait_for(
        api.clone(),
        name,
        kubecloud::ResourceKind::Tenant,
        name,
        GUARD,
        cond,
    )
    .await;
    match found {
        Ok(tenant) => tenant,
        Err(err) => {
            let now = api.get(name).await.ok().and_then(|t| t.status);
            panic!("{name}: no {type_} for generation {generation}: {err}; status: {now:#?}")
        }
    }
}

/// The small tenant: a VPC, a subnet, two VMs booting from imported disks, an address pool, an
/// exposure per VM, and a blank volume.
fn small_spec() -> TenantSpec {
    let mut spec = stack::tenant_spec(2, 1);
    spec.volumes
        .push(VolumeSpec::blank("data", ByteSize::gib(1)).with_tier("fast"));
    spec
}

fn backend_writes(server: &kubecloud_testkit::TestServer) -> usize {
    server
        .requests()
        .writes()
        .iter()
        .filter(|r| r.resource != "tenants")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_object_is_applied_changed_refused_and_destroyed() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let s = stack::stack(Latency::None, 7).await;
    let client = s.kube.client();
    register_crd(&client).await;
    let ctx = reconcile::Context::new(client.clone(), s.cloud.clone());
    let controller = tokio::spawn(reconcile::run(ctx));
    let api: Api<Tenant> = Api::all(client.clone());

    // Apply: Ready, with the plan summary, and every resource in the cluster.
    let spec = small_spec();
    api.create(&PostParams::default(), &tenant("acme", &spec))
        .await
        .unwrap();
    let ready = wait_for(&api, "acme", "Ready", 1).await;
    assert_eq!(ready.finalizers(), [FINALIZER]);
    let status = ready.status.clone().unwrap();
    let plan = status.plan.clone().expect("plan summary");
    assert_eq!(plan.create as usize, spec.len(), "{status:?}");
    assert_eq!((plan.update, plan.replace, plan.delete), (0, 0, 0));
    assert_eq!(plan.last_applied_generation, Some(1));
    assert!(
        !status.is("Failed") && !status.is("Progressing"),
        "{status:?}"
    );
    let vms = s
        .kube
        .cluster()
        .list_selected(
            "kubevirt.io/v1",
            "VirtualMachine",
            None,
            "kubecloud.io/tenant=acme",
        )
        .unwrap();
    assert_eq!(vms.len(), 2);
    assert!(!stack::objects_of(&s.kube, "acme").is_empty());
    let managers: Vec<String> = ready
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        managers,
        [STATUS_MANAGER],
        "status written by its own field manager"
    );

    // Change: one more volume converges as generation 2, planned as one creation.
    let mut bigger = spec.clone();
    bigger
        .volumes
        .push(VolumeSpec::blank("logs", ByteSize::gib(1)).with_tier("fast"));
    api.patch(
        "acme",
        &PatchParams::apply("test").force(),
        &Patch::Apply(tenant("acme", &bigger)),
    )
    .await
    .unwrap();
    let changed = wait_for(&api, "acme", "Ready", 2).await;
    let plan = changed.status.unwrap().plan.unwrap();
    assert_eq!((plan.create, plan.delete), (1, 0));
    assert_eq!(plan.last_applied_generation, Some(2));

    // A bad spec: Failed, naming the field, and nothing sent to any backend.
    let writes_before = backend_writes(&s.kube);
    let mut bad =
        serde_json::to_value(TenantResourceSpec::from_tenant_spec(&bigger).unwrap()).unwrap();
    bad["vms"][1]["interfaces"][0]["fixedIp"] = json!("192.168.7.7");
    let body = json!({"apiVersion": "kubecloud.io/v1alpha1", "kind": "Tenant",
                      "metadata": {"name": "acme"}, "spec": bad});
    api.patch(
        "acme",
        &PatchParams::apply("test").force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap();
    let failed = wait_for(&api, "acme", "Failed", 3).await;
    let status = failed.status.unwrap();
    let condition = status.condition("Failed").unwrap();
    assert_eq!(condition.reason, "InvalidSpec");
    assert!(
        condition.message.contains("vms[1].interfaces[0].fixedIp"),
        "{condition:?}"
    );
    assert!(!status.is("Ready"));
    assert_eq!(status.plan.unwrap().last_applied_generation, Some(2));
    assert_eq!(
        backend_writes(&s.kube),
        writes_before,
        "nothing sent for a bad spec"
    );
    assert_eq!(
        s.kube
            .cluster()
            .list_selected(
                "kubevirt.io/v1",
                "VirtualMachine",
                None,
                "kubecloud.io/tenant=acme"
            )
            .unwrap()
            .len(),
        2,
        "the running tenant is left alone"
    );

    // A name that is not a tenant name: Failed, nothing sent, and it deletes cleanly.
    api.create(&PostParams::default(), &tenant("acme.prod", &spec))
        .await
        .unwrap();
    let refused = wait_for(&api, "acme.prod", "Failed", 1).await;
    assert_eq!(
        refused.status.unwrap().condition("Failed").unwrap().reason,
        "InvalidName"
    );
    assert_eq!(backend_writes(&s.kube), writes_before);
    delete_and_wait(&api, "acme.prod").await;

    // Delete: the finalizer destroys the tenant, then the object goes.
    delete_and_wait(&api, "acme").await;
    // As after `destroy` anywhere: only the tenant's namespace and Events stay.
    let left = stack::left_behind(&s.kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        s.linstor.resource_definitions().is_empty(),
        "LINSTOR volumes left behind"
    );
    let left = s
        .cloud
        .tenant("acme")
        .unwrap()
        .plan(&TenantSpec::default())
        .await
        .unwrap();
    assert!(left.is_empty(), "nothing of the tenant left:\n{left}");
    assert_eq!(
        s.kube.requests().count(Verb::Get, "tenants"),
        0,
        "no polling"
    );
    controller.abort();
}

async fn delete_and_wait(api: &Api<Tenant>, name: &str) {
    // Held by the finalizer, the object comes back marked for deletion.
    let marked = api
        .delete(name, &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("held by the finalizer");
    let uid = marked.uid().unwrap();
    tokio::time::timeout(
        GUARD,
        await_condition(api.clone(), name, conditions::is_deleted(&uid)),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: not deleted in time"))
    .expect("watch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_are_retried_until_the_tenant_is_ready() {
    let s = stack::stack(Latency::None, 11).await;
    let client = s.kube.client();
    register_crd(&client).await;
    let faults = s.kube.faults();
    // The operator's status writes fail twice with 500 and once with a conflict (kube's client
    // retries neither): the reconcile fails and is requeued by the error policy with backoff.
    faults.inject(
        Fault::status(500)
            .on_verb(Verb::Apply)
            .on_resource("tenants")
            .times(2),
    );
    faults.inject(
        Fault::status(409)
            .on_verb(Verb::Apply)
            .on_resource("tenants")
            .times(1),
    );
    // The backends' own writes meet 503s and 429s, which the kube layer retries.
    faults.inject(
        Fault::status(503)
            .on_verb(Verb::Apply)
            .on_resource("virtualmachines")
            .times(2),
    );
    faults.inject(
        Fault::too_many_requests(0)
            .on_verb(Verb::Apply)
            .on_resource("subnets")
            .times(1),
    );
    // The controller's watch is dropped once; the watcher resumes.
    faults.inject(
        Fault::drop_connection()
            .on_verb(Verb::Watch)
            .on_resource("tenants")
            .times(1),
    );
    let controller = tokio::spawn(reconcile::run(reconcile::Context::new(
        client.clone(),
        s.cloud.clone(),
    )));
    let api: Api<Tenant> = Api::all(client);
    let spec = small_spec();
    api.create(&PostParams::default(), &tenant("acme", &spec))
        .await
        .unwrap();

    let ready = wait_for(&api, "acme", "Ready", 1).await;
    let status = ready.status.unwrap();
    assert_eq!(status.plan.unwrap().create as usize, spec.len());
    let requests = s.kube.requests();
    let faulted = |resource: &str| requests.count_where(|r| r.faulted && r.resource == resource);
    assert_eq!(faulted("tenants"), 4, "every injected fault was met");
    assert_eq!(faulted("virtualmachines"), 2);
    let vms = s
        .kube
        .cluster()
        .list_selected(
            "kubevirt.io/v1",
            "VirtualMachine",
            None,
            "kubecloud.io/tenant=acme",
        )
        .unwrap();
    assert_eq!(vms.len(), 2, "converged exactly once despite the retries");
    controller.abort();
}

/// The CRD the operator prints is reviewed as a file: `tests/golden/tenant-crd.yaml`
/// (`UPDATE_GOLDEN=1` rewrites it).
#[test]
fn the_printed_crd_matches_its_golden_file() {
    let yaml = operator::resource::crd_yaml();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tenant-crd.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &yaml).unwrap();
    }
    let golden = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        yaml, golden,
        "the CRD changed; review and run with UPDATE_GOLDEN=1"
    );
}

/// The generated CRD is a structural schema the API server accepts: the double compiles it,
/// accepts a Tenant, and refuses an unknown resource list.
#[test]
fn the_generated_crd_compiles_and_validates_tenants() {
    let crd = serde_json::to_value(Tenant::crd()).unwrap();
    let catalog = kubecloud_testkit::schema::Catalog::upstream()
        .unwrap()
        .with_crd(&crd)
        .expect("the CRD compiles");
    let rt = catalog.by_kind("kubecloud.io/v1alpha1", "Tenant").unwrap();
    assert!(!rt.namespaced && rt.status_subresource);
    let good = serde_json::to_value(tenant("acme", &small_spec())).unwrap();
    rt.validate(&good).expect("a Tenant validates");
    let mut bad = good.clone();
    bad["spec"]["vmss"] = json!([]);
    let errors = rt.validate(&bad).unwrap_err();
    assert_eq!(errors[0].path, "spec.vmss");
}
