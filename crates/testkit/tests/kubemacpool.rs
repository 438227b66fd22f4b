//! Mutating admission in the API double, and the Kubemacpool double behind it: which
//! namespaces it takes, allocation, requested MACs and duplicates, updates, dry runs, commits,
//! release and self-healing.

use std::time::Duration;

use kubecloud_testkit::admission::{AdmissionRequest, Denial, MutatingWebhook, Operation};
use kubecloud_testkit::kubemacpool::{Allocation, Kubemacpool, OptMode, TRANSACTION_TIMESTAMP};
use kubecloud_testkit::{Cluster, TestServer};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

fn pool() -> Kubemacpool {
    Kubemacpool::new([0x02, 0, 0, 0, 0, 0], [0x02, 0, 0, 0, 0, 0x02])
}

async fn server(pool: &Kubemacpool) -> TestServer {
    TestServer::builder()
        .mutating_webhook(pool.clone())
        .controller(pool.clone())
        .start()
        .await
        .expect("server")
}

fn namespace(c: &Cluster, name: &str, label: Option<&str>) {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    if let Some(value) = label {
        ns["metadata"]["labels"] = json!({"mutatevirtualmachines.kubemacpool.io": value});
    }
    c.create(ns).unwrap();
}

/// A VM with `interfaces` (`(name, binding, mac)`): `multus` ones ride a Multus network of the
/// same name, the others the pod network.
fn vm(ns: &str, name: &str, interfaces: &[(&str, &str, Option<&str>)]) -> Value {
    let ifaces: Vec<Value> = interfaces
        .iter()
        .map(|(n, binding, mac)| {
            let key = if *binding == "multus" {
                "bridge"
            } else {
                binding
            };
            let mut i = json!({"name": n, key: {}});
            if let Some(mac) = mac {
                i["macAddress"] = json!(mac);
            }
            i
        })
        .collect();
    let networks: Vec<Value> = interfaces
        .iter()
        .map(|(n, binding, _)| {
            if *binding == "multus" {
                json!({"name": n, "multus": {"networkName": format!("{ns}/{n}")}})
            } else {
                json!({"name": n, "pod": {}})
            }
        })
        .collect();
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"runStrategy": "Halted", "template": {"spec": {
            "domain": {"devices": {"interfaces": ifaces}},
            "networks": networks,
        }}},
    })
}

fn macs(object: &Value) -> Vec<Option<String>> {
    object["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["macAddress"].as_str().map(String::from))
        .collect()
}

async fn wait_for(pool: &Kubemacpool, test: impl Fn(&[Allocation]) -> bool) {
    let mut changes = pool.subscribe();
    tokio::time::timeout(TIMEOUT, async {
        while !test(&pool.allocations()) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("allocations: {:?}", pool.allocations()));
}

#[tokio::test]
async fn only_opted_in_namespaces_get_macs_and_only_masquerade_or_multus_interfaces() {
    let pool = pool();
    let s = server(&pool).await;
    let c = s.cluster();
    namespace(&c, "in", Some("allocate"));
    namespace(&c, "out", None);
    let created = c
        .create(vm(
            "in",
            "a",
            &[("pod", "masquerade", None), ("net", "multus", None)],
        ))
        .unwrap();
    assert_eq!(
        macs(&created),
        [
            Some("02:00:00:00:00:00".to_string()),
            Some("02:00:00:00:00:01".to_string())
        ]
    );
    assert!(created["metadata"]["annotations"][TRANSACTION_TIMESTAMP].is_string());
    // A bridge binding on the pod network is left alone.
    let bridged = c.create(vm("in", "b", &[("pod", "bridge", None)])).unwrap();
    assert_eq!(macs(&bridged), [None]);
    // A namespace without the label is not Kubemacpool's (opt-in).
    let outside = c
        .create(vm("out", "a", &[("net", "multus", None)]))
        .unwrap();
    assert_eq!(macs(&outside), [None]);
    assert!(outside["metadata"]["annotations"][TRANSACTION_TIMESTAMP].is_null());
    wait_for(&pool, |a| a.len() == 2 && a.iter().all(|a| a.committed)).await;
}

#[tokio::test]
async fn opt_out_mode_takes_every_namespace_not_labelled_ignore() {
    let pool = pool().with_mode(OptMode::OptOut);
    let s = server(&pool).await;
    let c = s.cluster();
    namespace(&c, "plain", None);
    namespace(&c, "skip", Some("ignore"));
    let got = c
        .create(vm("plain", "a", &[("net", "multus", None)]))
        .unwrap();
    assert!(macs(&got)[0].is_some());
    let skipped = c
        .create(vm("skip", "a", &[("net", "multus", None)]))
        .unwrap();
    assert_eq!(macs(&skipped), [None]);
}

#[tokio::test]
async fn a_full_range_and_a_mac_repeated_in_a_vm_are_refused_as_the_webhook_answers() {
    let pool = pool();
    let s = server(&pool).await;
    let c = s.cluster();
    namespace(&c, "ns", Some("allocate"));
    let err = c
        .create(vm(
            "ns",
            "twice",
            &[
                ("a", "multus", Some("02:00:00:00:00:09")),
                ("b", "multus", Some("02:00:00:00:00:09")),
            ],
        ))
        .unwrap_err();
    assert_eq!(err.code, 500);
    assert!(
        err.message.starts_with(
            "admission webhook \"mutatevirtualmachines.kubemacpool.io\" denied the request: \
             Failed to create virtual machine allocation error: duplicate MAC address"
        ),
        "{}",
        err.message
    );
    let err = c
        .create(vm("ns", "bad", &[("a", "multus", Some("not-a-mac"))]))
        .unwrap_err();
    assert!(
        err.message.contains("invalid MAC address"),
        "{}",
        err.message
    );
    // Three MACs in the range: the fourth interface finds none, and the three taken by the
    // refused request are given back.
    let err = c
        .create(vm(
            "ns",
            "big",
            &[
                ("a", "multus", None),
                ("b", "multus", None),
                ("c", "multus", None),
                ("d", "multus", None),
            ],
        ))
        .unwrap_err();
    assert!(
        err.message.ends_with("the range is full"),
        "{}",
        err.message
    );
    assert!(pool.allocations().is_empty(), "{:?}", pool.allocations());
    assert!(
        c.get_opt("kubevirt.io/v1", "VirtualMachine", Some("ns"), "big")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn duplicates_between_vms_are_accepted_and_reported_or_refused_by_older_releases() {
    for blocking in [false, true] {
        let pool = if blocking {
            pool().blocking_duplicates()
        } else {
            pool()
        };
        let s = server(&pool).await;
        let c = s.cluster();
        namespace(&c, "ns", Some("allocate"));
        let mac = Some("02:00:00:00:00:00");
        c.create(vm("ns", "a", &[("net", "multus", mac)])).unwrap();
        let second = c.create(vm("ns", "b", &[("net", "multus", mac)]));
        if blocking {
            let err = second.unwrap_err();
            assert!(
                err.message
                    .ends_with("failed to allocate requested mac address"),
                "{}",
                err.message
            );
        } else {
            second.unwrap();
            assert_eq!(
                pool.collisions().get("02:00:00:00:00:00"),
                Some(&vec!["ns/a/net".to_string(), "ns/b/net".to_string()])
            );
        }
        // The pool never hands out a MAC that is held.
        let third = c.create(vm("ns", "c", &[("net", "multus", None)])).unwrap();
        assert_eq!(macs(&third), [Some("02:00:00:00:00:01".to_string())]);
    }
}

#[tokio::test]
async fn an_update_keeps_a_mac_left_out_takes_a_new_one_and_the_commit_releases_the_old() {
    let pool = pool();
    let s = server(&pool).await;
    let c = s.cluster();
    namespace(&c, "ns", Some("allocate"));
    let created = c.create(vm("ns", "a", &[("net", "multus", None)])).unwrap();
    let first = macs(&created)[0].clone().unwrap();
    // A client replacing the VM without the MAC (and with a label, so it changed) keeps it.
    let mut without = vm("ns", "a", &[("net", "multus", None)]);
    without["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    without["metadata"]["labels"] = json!({"changed": "yes"});
    let kept = c.replace(without).unwrap();
    assert_eq!(macs(&kept), [Some(first.clone())]);
    // A requested MAC replaces it; once the VM is stored, the old one is released.
    let mut moved = vm("ns", "a", &[("net", "multus", Some("02:00:00:00:00:02"))]);
    moved["metadata"]["resourceVersion"] = kept["metadata"]["resourceVersion"].clone();
    c.replace(moved).unwrap();
    wait_for(&pool, |a| {
        a.len() == 1 && a[0].mac == "02:00:00:00:00:02" && a[0].committed
    })
    .await;
    // Deleting the VM releases it.
    c.delete("kubevirt.io/v1", "VirtualMachine", Some("ns"), "a")
        .unwrap();
    wait_for(&pool, <[Allocation]>::is_empty).await;
}

#[tokio::test]
async fn a_dry_run_allocates_nothing_and_a_request_refused_after_the_webhook_is_healed() {
    let pool = pool();
    let s = server(&pool).await;
    let c = s.cluster();
    namespace(&c, "ns", Some("allocate"));
    // Over HTTP with dryRun=All: the answer has a MAC, the pool holds nothing.
    let client = s.client();
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client,
        "ns",
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
            "virtualmachines",
        ),
    );
    let object: kube::api::DynamicObject =
        serde_json::from_value(vm("ns", "dry", &[("net", "multus", None)])).unwrap();
    let answer = api
        .create(
            &kube::api::PostParams {
                dry_run: true,
                ..Default::default()
            },
            &object,
        )
        .await
        .unwrap();
    assert!(macs(&serde_json::to_value(&answer).unwrap())[0].is_some());
    assert!(pool.allocations().is_empty());
    // A VM the webhook allocated for but that validation then refuses (an
    // interface field of the wrong type) is not stored: its allocation stays pending until the
    // healing loop drops it.
    let mut invalid = vm("ns", "bad", &[("net", "multus", None)]);
    invalid["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["bootOrder"] =
        json!("first");
    let err = c.create(invalid).unwrap_err();
    assert_eq!(err.code, 422, "{err:?}");
    assert_eq!(pool.allocations().len(), 1);
    assert!(!pool.allocations()[0].committed);
    pool.heal_stale(&c).await.unwrap();
    assert!(pool.allocations().is_empty());
}

#[tokio::test]
async fn a_restarted_kubemacpool_reads_the_stored_vms_macs() {
    let first = pool();
    let s = server(&first).await;
    let c = s.cluster();
    namespace(&c, "ns", Some("allocate"));
    c.create(vm("ns", "a", &[("net", "multus", None)])).unwrap();
    // A new Kubemacpool on the same cluster (its webhook not yet registered): its controller
    // starts with the VMs that exist.
    let restarted = pool();
    s.add_controller(restarted.clone());
    wait_for(&restarted, |a| {
        a.len() == 1 && a[0].mac == "02:00:00:00:00:00" && a[0].committed
    })
    .await;
}

/// Changes a ConfigMap's data so that validation refuses it: mutation runs before validation.
struct Breaker;

impl MutatingWebhook for Breaker {
    fn name(&self) -> &str {
        "breaker.example.com"
    }
    fn handles(&self, group: &str, resource: &str, _: Operation) -> bool {
        group.is_empty() && resource == "configmaps"
    }
    fn namespace_selector(&self) -> Value {
        json!({})
    }
    fn admit(&self, request: &AdmissionRequest<'_>, object: &mut Value) -> Result<(), Denial> {
        match object["data"]["mode"].as_str() {
            Some("deny") => Err(Denial::new(200, "no")),
            Some("break") => {
                object["data"]["mode"] = json!(7);
                Ok(())
            }
            _ => {
                object["data"]["seen"] = json!(format!("{:?}", request.operation));
                Ok(())
            }
        }
    }
}

#[tokio::test]
async fn webhooks_mutate_before_validation_on_create_and_update_and_deny_as_400_at_least() {
    let s = TestServer::builder()
        .mutating_webhook(Breaker)
        .start()
        .await
        .unwrap();
    let c = s.cluster();
    let cm = |mode: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "x", "namespace": "default"}, "data": {"mode": mode}})
    };
    let created = c.create(cm("ok")).unwrap();
    assert_eq!(created["data"]["seen"], "Create");
    let updated = c
        .merge_patch(
            "v1",
            "ConfigMap",
            Some("default"),
            "x",
            &json!({"data": {"other": "1"}}),
        )
        .unwrap();
    assert_eq!(updated["data"]["seen"], "Update");
    let err = c
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "y", "namespace": "default"}, "data": {"mode": "break"}}))
        .unwrap_err();
    assert_eq!(err.code, 422, "validation saw the mutated object: {err:?}");
    let err = c
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "z", "namespace": "default"}, "data": {"mode": "deny"}}))
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "admission webhook \"breaker.example.com\" denied the request: no"
    );
}
