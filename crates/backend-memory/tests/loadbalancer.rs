//! Load-balancer rules of the in-memory cloud: pools that never overlap, shared pools,
//! MetalLB-style asynchronous assignment, exhaustion, requested addresses and sharing.

use std::time::Duration;

use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Error, Exposure, ExposureSpec, ExposureState,
    LoadBalancer, ResourceKind, ServicePort, Tenant, wait,
};
use kubecloud_memory::MemoryCloud;

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

fn pool(name: &str, cidr: &str) -> AddressPoolSpec {
    AddressPoolSpec::l2(name, vec![AddressBlock::Cidr(cidr.parse().unwrap())])
}

fn shared_cloud() -> MemoryCloud {
    MemoryCloud::builder()
        .shared_address_pool(pool("cluster", "198.51.100.0/30"))
        .build()
}

fn web(name: &str, port: u16) -> ExposureSpec {
    ExposureSpec::new(name, [("app", "web")], vec![ServicePort::tcp(port)])
}

async fn settled(cloud: &MemoryCloud, tenant: &Tenant, name: &str) -> Exposure {
    let condition = wait::condition("settled", |e: &Exposure| {
        if e.state == ExposureState::Pending {
            wait::Check::Pending
        } else {
            wait::Check::Met
        }
    });
    wait::until(
        cloud.watch_exposure(tenant, name).await.unwrap(),
        condition,
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

fn failure(exposure: &Exposure) -> &str {
    match &exposure.state {
        ExposureState::Failed { reason } => reason,
        other => panic!("not failed: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn pools_never_overlap_any_other_and_shared_ones_cannot_be_deleted() {
    let cloud = shared_cloud();
    let (a, b) = (tenant("a"), tenant("b"));
    cloud
        .create_pool(&a, &pool("a-public", "203.0.113.0/28"))
        .await
        .unwrap();
    for (who, spec) in [
        (&a, pool("again", "203.0.113.8/29")),
        (&b, pool("theirs", "203.0.113.0/24")),
        (&b, pool("near-shared", "198.51.100.2/31")),
    ] {
        let err = cloud.create_pool(who, &spec).await.unwrap_err();
        assert!(
            matches!(err, Error::Conflict { .. }),
            "{}: {err}",
            spec.name
        );
    }
    let err = cloud
        .create_pool(&b, &pool("theirs", "203.0.113.0/24"))
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("a-public"),
        "another tenant's pool is not named: {err}"
    );
    let err = cloud
        .create_pool(&a, &pool("cluster", "192.0.2.0/29"))
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "the shared name is visible: {err}");

    let names = |pools: Vec<kubecloud_core::AddressPool>| {
        pools.into_iter().map(|p| p.spec.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(LoadBalancer::list_pools(&cloud, &a).await.unwrap()),
        vec!["a-public", "cluster"]
    );
    assert_eq!(
        names(LoadBalancer::list_pools(&cloud, &b).await.unwrap()),
        vec!["cluster"]
    );
    assert!(
        cloud
            .get_pool(&b, "a-public")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = cloud.delete_pool(&b, "cluster").await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(
        cloud
            .delete_pool(&b, "a-public")
            .await
            .unwrap_err()
            .is_not_found()
    );
    cloud.delete_pool(&a, "a-public").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn auto_takes_the_tenants_own_pools_first_then_shared_ones() {
    let cloud = shared_cloud();
    let a = tenant("a");
    cloud
        .create_pool(&a, &pool("own", "203.0.113.0/31"))
        .await
        .unwrap();
    let exposed = cloud.expose(&a, &web("e0", 80)).await.unwrap();
    assert_eq!(
        exposed.state,
        ExposureState::Pending,
        "assigned asynchronously"
    );
    assert_eq!(exposed.ip, None);
    let mut got = Vec::new();
    for i in 0..3 {
        let name = format!("e{i}");
        if i > 0 {
            cloud.expose(&a, &web(&name, 80)).await.unwrap();
        }
        let e = wait::until(
            cloud.watch_exposure(&a, &name).await.unwrap(),
            wait::exposure_assigned(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        got.push((e.pool.unwrap(), e.ip.unwrap().to_string()));
    }
    assert_eq!(
        got,
        vec![
            ("own".to_string(), "203.0.113.0".to_string()),
            ("own".to_string(), "203.0.113.1".to_string()),
            ("cluster".to_string(), "198.51.100.0".to_string()),
        ]
    );
    let own = cloud.get_pool(&a, "own").await.unwrap();
    assert_eq!((own.assigned, own.available), (2, 0));
    let err = cloud.delete_pool(&a, "own").await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn exhaustion_unknown_pools_and_outside_addresses() {
    let cloud = MemoryCloud::new();
    let a = tenant("a");
    let none = cloud.expose(&a, &web("nothing", 80)).await.unwrap();
    assert_eq!(none.state, ExposureState::Pending);
    let none = settled(&cloud, &a, "nothing").await;
    assert!(
        failure(&none).starts_with("no available IPs in pool"),
        "{none:?}"
    );

    cloud
        .create_pool(&a, &pool("tiny", "203.0.113.0/32"))
        .await
        .unwrap();
    cloud.expose(&a, &web("first", 80)).await.unwrap();
    cloud.expose(&a, &web("second", 80)).await.unwrap();
    assert_eq!(
        settled(&cloud, &a, "first").await.state,
        ExposureState::Assigned
    );
    let second = settled(&cloud, &a, "second").await;
    assert!(
        failure(&second).starts_with("no available IPs in pool tiny"),
        "{second:?}"
    );
    let err = wait::until(
        cloud.watch_exposure(&a, "second").await.unwrap(),
        wait::exposure_assigned(),
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");

    let named = ExposureSpec {
        address: AddressRequest::Pool("nope".into()),
        ..web("named", 80)
    };
    let err = cloud.expose(&a, &named).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                kind: ResourceKind::AddressPool,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        cloud
            .get_exposure(&a, "named")
            .await
            .unwrap_err()
            .is_not_found()
    );

    let outside = ExposureSpec {
        address: AddressRequest::Ip("192.0.2.77".parse().unwrap()),
        ..web("outside", 80)
    };
    cloud.expose(&a, &outside).await.unwrap();
    let outside = settled(&cloud, &a, "outside").await;
    assert!(
        failure(&outside).contains("is not in any pool"),
        "{outside:?}"
    );
    let err = cloud.expose(&a, &web("first", 81)).await.unwrap_err();
    assert!(err.is_already_exists());
}

#[tokio::test(start_paused = true)]
async fn sharing_needs_the_same_key_and_distinct_ports() {
    let cloud = MemoryCloud::new();
    let a = tenant("a");
    cloud
        .create_pool(&a, &pool("public", "203.0.113.0/30"))
        .await
        .unwrap();
    let ip = "203.0.113.2".parse().unwrap();
    let keyed = |name: &str, port: u16, key: Option<&str>| ExposureSpec {
        address: AddressRequest::Ip(ip),
        sharing_key: key.map(str::to_string),
        ..web(name, port)
    };
    cloud
        .expose(&a, &keyed("https", 443, Some("web")))
        .await
        .unwrap();
    cloud
        .expose(&a, &keyed("http", 80, Some("web")))
        .await
        .unwrap();
    cloud
        .expose(&a, &keyed("clash", 80, Some("web")))
        .await
        .unwrap();
    cloud
        .expose(&a, &keyed("other-key", 22, Some("ssh")))
        .await
        .unwrap();
    cloud.expose(&a, &keyed("no-key", 25, None)).await.unwrap();
    for name in ["https", "http"] {
        let e = settled(&cloud, &a, name).await;
        assert_eq!(
            (e.state, e.ip),
            (ExposureState::Assigned, Some(ip)),
            "{name}"
        );
    }
    for name in ["clash", "other-key", "no-key"] {
        let e = settled(&cloud, &a, name).await;
        assert!(failure(&e).contains("sharing"), "{name}: {e:?}");
    }
    assert_eq!(cloud.get_pool(&a, "public").await.unwrap().assigned, 1);

    // Auto with the key joins the shared address rather than taking a new one.
    let auto = ExposureSpec {
        sharing_key: Some("web".into()),
        ..web("dns", 53)
    };
    cloud.expose(&a, &auto).await.unwrap();
    assert_eq!(settled(&cloud, &a, "dns").await.ip, Some(ip));

    // The address is freed only when the last sharer goes.
    for name in ["https", "http"] {
        cloud.release(&a, name).await.unwrap();
        assert_eq!(cloud.get_pool(&a, "public").await.unwrap().assigned, 1);
    }
    cloud.release(&a, "dns").await.unwrap();
    let usage = cloud.get_pool(&a, "public").await.unwrap();
    assert_eq!((usage.assigned, usage.available), (0, 4));
    for name in ["clash", "other-key", "no-key"] {
        cloud.release(&a, name).await.unwrap();
    }
    assert!(cloud.list_exposures(&a).await.unwrap().is_empty());
    cloud.delete_pool(&a, "public").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_shared_pool_address_is_not_shared_across_tenants() {
    let cloud = shared_cloud();
    let (a, b) = (tenant("a"), tenant("b"));
    let ip = "198.51.100.1".parse().unwrap();
    let spec = ExposureSpec {
        address: AddressRequest::Ip(ip),
        sharing_key: Some("k".into()),
        ..web("web", 80)
    };
    cloud.expose(&a, &spec).await.unwrap();
    cloud
        .expose(
            &b,
            &ExposureSpec {
                ports: vec![ServicePort::tcp(81)],
                ..spec.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(settled(&cloud, &a, "web").await.ip, Some(ip));
    let theirs = settled(&cloud, &b, "web").await;
    assert!(failure(&theirs).contains("another tenant"), "{theirs:?}");
}
