//! What a plan sends on the whole stack (KubeVirt + CDI, LINSTOR, Kube-OVN, MetalLB on the test
//! doubles): planning an applied tenant again writes nothing and lists each kind at most once,
//! although several backends read the same kinds (DataVolumes, Services, instances).
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::collections::BTreeMap;
use std::time::Duration;

use common::stack::{stack, tenant_spec};
use kubecloud::ApplyOptions;
use kubecloud_testkit::{Latency, Verb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_of_an_applied_tenant_lists_each_kind_once_and_writes_nothing() {
    let s = stack(Latency::None, 1).await;
    let acme = s.cloud.tenant("acme").expect("tenant");
    let spec = tenant_spec(6, 2);
    let options = ApplyOptions {
        timeout: Duration::from_secs(60),
        ..ApplyOptions::default()
    };
    let plan = acme.plan(&spec).await.expect("plan");
    let report = acme.apply(&plan, options).await.expect("apply");
    assert!(report.is_complete(), "{report:?}");

    s.kube.requests().reset();
    let again = acme.plan(&spec).await.expect("plan again");
    assert!(again.is_empty(), "{again}");
    acme.apply(&again, options).await.expect("apply nothing");

    let requests = s.kube.requests().all();
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| {
            !matches!(
                r.verb,
                Verb::Get | Verb::List | Verb::Watch | Verb::Discovery
            )
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "writes sent: {writes:?}");
    let mut reads: BTreeMap<(String, String, Option<String>), usize> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| matches!(r.verb, Verb::List | Verb::Watch))
    {
        *reads
            .entry((r.group.clone(), r.resource.clone(), r.namespace.clone()))
            .or_default() += 1;
    }
    assert!(!reads.is_empty(), "the plan read the tenant");
    let repeated: Vec<_> = reads.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "listed or watched more than once: {repeated:?}"
    );
}
