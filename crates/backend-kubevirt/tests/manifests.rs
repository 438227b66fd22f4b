//! Rendering a VM's objects (GitOps output) instead of applying it: nothing is sent, the objects
//! are those `apply_vm` sends (the Secrets but for the owner reference added once the VM
//! exists), every one validates upstream, and bad input is refused naming the field.

mod common;

use kubecloud_core::{
    BootDisk, ByteSize, CloudInit, Compute, SecretString, Tenant, VmResources, VmSpec,
};
use kubecloud_testkit::schema::Catalog;

fn spec() -> VmSpec {
    VmSpec {
        name: "web".into(),
        resources: VmResources::Custom {
            cpu_cores: 2,
            memory: ByteSize::gib(2),
        },
        boot_disk: BootDisk::Import {
            url: "https://images.example.com/os.qcow2".into(),
            size: ByteSize::gib(4),
            tier: None,
            replicas: 1,
            access: Default::default(),
            mode: Default::default(),
        },
        cloud_init: Some(CloudInit {
            user_data: Some(SecretString::from("#cloud-config\npassword: s3cret\n")),
            network_data: None,
            ssh_keys: vec![SecretString::from("ssh-ed25519 AAAAkey ops@example.com")],
        }),
        ..VmSpec::default()
    }
}

#[tokio::test]
async fn the_rendered_objects_are_what_applying_sends_and_nothing_is_sent() {
    let env = common::env().await;
    let tenant = Tenant::new("acme").unwrap();
    let rendered = env
        .compute
        .vm_manifests(&tenant, &spec(), &common::attachments(&spec()))
        .expect("manifests");
    assert_eq!(env.server.requests().total(), 0, "rendering sent a request");
    let names: Vec<String> = rendered
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "VirtualMachine/web",
            "Secret/web-cloudinit",
            "Secret/web-ssh"
        ]
    );
    let catalog = Catalog::upstream().expect("catalog");
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

    env.compute
        .apply_vm(&tenant, &spec(), &common::attachments(&spec()))
        .await
        .expect("apply");
    let cluster = env.server.cluster();
    for mut object in rendered {
        let (av, kind) = (
            object["apiVersion"].as_str().unwrap().to_string(),
            object["kind"].as_str().unwrap().to_string(),
        );
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let live = cluster
            .list(&av, &kind, Some("acme"))
            .unwrap()
            .into_iter()
            .find(|o| o["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no {kind} {name}"));
        if kind == "Secret" {
            // Hashed with the owner reference the driver adds once the VM exists.
            object["metadata"]["annotations"]
                .as_object_mut()
                .unwrap()
                .remove(kubecloud_kube::APPLIED_HASH);
        }
        assert!(
            kubecloud_kube::is_subset(&object, &live),
            "{kind} {name}: rendered {object:#} live {live:#}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let env = common::env().await;
    let tenant = Tenant::new("acme").unwrap();
    let mut bad = spec();
    bad.name = "Web".into();
    let err = env
        .compute
        .vm_manifests(&tenant, &bad, &common::attachments(&bad))
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    assert_eq!(env.server.requests().total(), 0);
}
