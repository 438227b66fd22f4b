//! Concurrent server-side applies creating one object: like kube-apiserver, the double turns
//! the create that loses the race into an update, so every apply succeeds.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kubecloud_testkit::TestServer;
use serde_json::json;
use tokio::sync::Barrier;

const CLIENTS: usize = 8;
const APPLIES_PER_CLIENT: usize = 4;
const OBJECTS: usize = 64;

fn config_map(name: &str, manager: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"shared": "yes", manager: "here"}},
        "data": {"shared": "same for everyone", manager: manager},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_creating_one_object_all_succeed() {
    let server = TestServer::start().await.unwrap();
    let clients: Vec<kube::Client> = (0..CLIENTS)
        .map(|_| kube::Client::try_from(server.kube_config()).unwrap())
        .collect();

    // Open every connection first, so the applies below leave together.
    let mut warm = Vec::new();
    for client in &clients {
        for _ in 0..APPLIES_PER_CLIENT {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
            warm.push(tokio::spawn(async move { api.get_opt("warm-up").await }));
        }
    }
    for task in warm {
        task.await.unwrap().unwrap();
    }

    for object in 0..OBJECTS {
        let name = format!("settings-{object}");
        let barrier = Arc::new(Barrier::new(CLIENTS * APPLIES_PER_CLIENT));
        let mut tasks = Vec::new();
        for (c, client) in clients.iter().enumerate() {
            for _ in 0..APPLIES_PER_CLIENT {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
                let (name, barrier) = (name.clone(), barrier.clone());
                let manager = format!("client-{c}");
                tasks.push(tokio::spawn(async move {
                    let body = config_map(&name, &manager);
                    barrier.wait().await;
                    api.patch(&name, &PatchParams::apply(&manager), &Patch::Apply(&body))
                        .await
                }));
            }
        }
        for task in tasks {
            let result = task.await.unwrap();
            assert!(result.is_ok(), "apply of {name} failed: {result:?}");
        }

        let cm = Api::<ConfigMap>::namespaced(server.client(), "default")
            .get(&name)
            .await
            .unwrap();
        let data = cm.data.clone().unwrap();
        let labels = cm.metadata.labels.clone().unwrap();
        assert_eq!(data["shared"], "same for everyone");
        let entries = cm.metadata.managed_fields.clone().unwrap();
        assert_eq!(entries.len(), CLIENTS, "one entry per manager: {entries:?}");
        for c in 0..CLIENTS {
            let manager = format!("client-{c}");
            assert_eq!(data[&manager], manager);
            assert_eq!(labels[&manager], "here");
            let entry = entries
                .iter()
                .find(|e| e.manager.as_deref() == Some(manager.as_str()))
                .unwrap_or_else(|| panic!("no managed fields entry for {manager}: {entries:?}"));
            assert_eq!(entry.operation.as_deref(), Some("Apply"));
            let fields = &entry.fields_v1.as_ref().unwrap().0;
            // Each manager owns its own keys and shares the keys everyone applies.
            assert!(
                fields["f:data"][format!("f:{manager}")].is_object(),
                "{fields}"
            );
            assert!(fields["f:data"]["f:shared"].is_object(), "{fields}");
            assert!(
                fields["f:metadata"]["f:labels"][format!("f:{manager}")].is_object(),
                "{fields}"
            );
            assert!(
                fields["f:metadata"]["f:labels"]["f:shared"].is_object(),
                "{fields}"
            );
        }
    }
}
