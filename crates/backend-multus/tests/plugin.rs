//! Detection through the plug-in trait: the Multus backend is built where Multus and whereabouts
//! are served and Kube-OVN is not (or when chosen), with the options for its link.

use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed};
use kubecloud_kube::plugin::Part;
use kubecloud_multus::Link;
use kubecloud_multus::plugin::{CONNECTOR, MultusOptions, RBAC};
use kubecloud_testkit::TestServer;

fn served(groups: &[(&str, &str)]) -> Installed {
    Installed::from_groups(groups.iter().map(|(g, v)| (*g, vec![*v])))
}

const MULTUS: (&str, &str) = ("k8s.cni.cncf.io", "v1");
const WHEREABOUTS: (&str, &str) = ("whereabouts.cni.cncf.io", "v1alpha1");
const KUBE_OVN: (&str, &str) = ("kubeovn.io", "v1");

#[tokio::test]
async fn multus_without_kube_ovn_is_detected_with_its_options() {
    let server = TestServer::builder().start().await.expect("server");
    let client = server.client();
    let options = ConnectOptions::new().with(MultusOptions {
        link: Link::Macvtap {
            interface: "eth9".into(),
        },
        whereabouts_namespace: None,
        kubemacpool: true,
    });
    let built = CONNECTOR
        .connect(&client, &served(&[MULTUS, WHEREABOUTS]), &options)
        .await
        .unwrap()
        .expect("built");
    let Built::Network(network) = built else {
        panic!("not a network: {built:?}")
    };
    assert_eq!(network.backend_name(), "multus");
    // macvtap: one layer-2 domain, so VPCs are not isolated.
    assert!(!network.capabilities().vpc_isolation);
    assert!(network.capabilities().mac_pool, "the Kubemacpool option");

    let declined = CONNECTOR
        .connect(
            &client,
            &served(&[MULTUS, WHEREABOUTS, KUBE_OVN]),
            &ConnectOptions::new(),
        )
        .await
        .unwrap()
        .expect_err("Kube-OVN's backend is the network there");
    assert!(declined.contains("Kube-OVN"), "{declined}");
    let chosen = ConnectOptions::new().backend(Part::Network, "multus");
    assert!(
        CONNECTOR
            .connect(&client, &served(&[MULTUS, WHEREABOUTS, KUBE_OVN]), &chosen)
            .await
            .unwrap()
            .is_ok(),
        "chosen explicitly, it is built beside Kube-OVN"
    );
    let declined = CONNECTOR
        .connect(&client, &served(&[MULTUS]), &ConnectOptions::new())
        .await
        .unwrap()
        .expect_err("no whereabouts");
    assert!(declined.contains("whereabouts"), "{declined}");
    assert_eq!((RBAC.backend, RBAC.part), ("multus", Part::Network));
}
