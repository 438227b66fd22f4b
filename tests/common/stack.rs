//! The whole stack on the test doubles, shared by `tests/stack_reliability.rs` and
//! `examples/stack_bench.rs` (included with `#[path]`): the testkit's `FakeCloud` (the Kubernetes
//! API double with every simulated controller — KubeVirt + CDI, LINSTOR CSI, Kube-OVN, MetalLB,
//! GC, namespaces — and the LINSTOR controller double), the four real backends on them, and a
//! generated tenant spec.
#![allow(dead_code, reason = "each includer uses a part")]

use std::collections::BTreeMap;

use kubecloud::{
    AddressBlock, AddressPoolSpec, BootDisk, ByteSize, Cloud, ExposureSpec, NetworkInterface,
    ServicePort, SubnetSpec, TenantSpec, VmResources, VmSpec, VpcSpec,
};
use kubecloud_testkit::linstor::{LinstorServer, TestPki};
use kubecloud_testkit::schema::Catalog;
use kubecloud_testkit::{FakeCloud, FakeCloudBuilder, Latency, TestServer};

/// The doubles and a [`Cloud`] of the four real backends on them (tiers `fast`, 2 replicas on
/// LVM thin, and `bulk`, 1 replica on ZFS; three nodes).
pub struct Stack {
    /// The Kubernetes API double.
    pub kube: TestServer,
    /// The LINSTOR controller double (HTTPS, client certificate required).
    pub linstor: LinstorServer,
    /// The LINSTOR double's certificates (the client's is also seeded as Piraeus' client Secret).
    pub pki: TestPki,
    /// KubeVirt + LINSTOR + Kube-OVN + MetalLB.
    pub cloud: Cloud,
    /// What the simulated Kube-OVN enforces on pod ports.
    pub ovn: kubecloud_testkit::kubeovn_security::Northbound,
    /// The simulated CDI (its import count).
    pub cdi: kubecloud_testkit::CdiController,
    /// The cluster RBAC the simulated KubeVirt authorizes clones against (the catalog's is
    /// installed).
    pub rbac: kubecloud_testkit::Rbac,
}

/// Starts the doubles (`latency` on every Kubernetes API request, fault draws from `seed`) and
/// composes the backends on the tiers `FakeCloud::TIERS` describes.
pub async fn stack(latency: Latency, seed: u64) -> Stack {
    stack_from(FakeCloud::builder().latency(latency).seed(seed)).await
}

/// [`stack`] on a fake cloud with other options (its PVC protection controller, say).
pub async fn stack_from(builder: FakeCloudBuilder) -> Stack {
    let fake = builder.start().await.expect("fake cloud");
    install_catalog_rbac(fake.rbac());
    let cdi = fake.cdi().clone();
    let rbac = fake.rbac().clone();
    let ovn = fake.ovn_northbound();
    let pki = fake.linstor_pki().clone();
    let (kube, linstor) = fake.into_parts();
    let cloud = cloud_on(&kube, &linstor, &pki);
    Stack {
        kube,
        linstor,
        pki,
        cloud,
        ovn,
        cdi,
        rbac,
    }
}

/// What an operator applies besides kubecloud's ClusterRole: the catalog's `Role` and
/// `RoleBinding` (`kubecloud::rbac::catalog_manifests`), so tenants' VMs may clone from it.
pub fn install_catalog_rbac(rbac: &kubecloud_testkit::Rbac) {
    for object in kubecloud::rbac::catalog_manifests(kubecloud::DEFAULT_CATALOG_NAMESPACE) {
        rbac.install(object);
    }
}

/// A [`Cloud`] of the four real backends on the doubles, with nothing cached: what a process
/// started anew would have (e.g. after an apply was interrupted by the process ending).
pub fn cloud_on(kube: &TestServer, linstor: &LinstorServer, pki: &TestPki) -> Cloud {
    let client = kube.client();
    let mut storage = linstor_builder(client.clone(), linstor, pki).max_replicas(3);
    for (tier, resource_group, _) in FakeCloud::TIERS {
        storage = storage.tier(tier, resource_group);
    }
    let storage = storage.build().expect("LINSTOR backend");
    Cloud::builder()
        .compute(kubecloud::kubevirt::KubeVirt::builder(client.clone()).build())
        .storage(storage)
        .network(kubecloud::kubeovn::KubeOvn::builder(client.clone()).build())
        .load_balancer(kubecloud::metallb::MetalLb::builder(client.clone()).build())
        .quotas(kubecloud_kube::quota::KubeQuotas::new(client))
        .build()
        .expect("cloud")
}

/// A LINSTOR backend builder for the LINSTOR double, over mutual TLS with the client certificate
/// of `pki` (the one the fake cloud seeds as Piraeus' client Secret).
pub fn linstor_builder(
    client: kube::Client,
    linstor: &LinstorServer,
    pki: &TestPki,
) -> kubecloud::linstor::LinstorBuilder {
    kubecloud::linstor::Linstor::builder(client, linstor.url()).tls(
        pki.ca_pem.clone(),
        pki.client.cert_pem.clone(),
        pki.client.key_pem.clone(),
    )
}

/// The `i`-th VM's fixed address on subnet `web` (10.0.0.0/16).
pub fn vm_ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([10, 0, (i / 200) as u8, (i % 200 + 10) as u8])
}

/// A tenant of `vms` VMs, each booting from a disk imported into a new 1 GiB volume on tier
/// `fast`, with a fixed IP on one subnet, and an exposure for every `expose_every`-th VM on an
/// address pool the tenant owns.
pub fn tenant_spec(vms: usize, expose_every: usize) -> TenantSpec {
    let vm = |i: usize| VmSpec {
        name: format!("vm-{i}"),
        resources: VmResources::Custom {
            cpu_cores: 1,
            memory: ByteSize::gib(1),
        },
        boot_disk: BootDisk::Import {
            url: "https://images.example.com/fedora.qcow2".into(),
            size: ByteSize::gib(1),
            tier: Some("fast".into()),
            replicas: 1,
            access: Default::default(),
            mode: Default::default(),
        },
        interfaces: vec![NetworkInterface {
            fixed_ip: Some(vm_ip(i)),
            ..NetworkInterface::on_subnet("eth0", "web")
        }],
        labels: BTreeMap::from([("app".to_string(), format!("vm-{i}"))]),
        ..VmSpec::default()
    };
    let exposed: Vec<usize> = (0..vms).step_by(expose_every.max(1)).collect();
    TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new(
            "web",
            "main",
            "10.0.0.0/16".parse().unwrap(),
        )],
        vms: (0..vms).map(vm).collect(),
        address_pools: vec![AddressPoolSpec::l2(
            "public",
            vec![AddressBlock::Cidr("100.64.0.0/20".parse().unwrap())],
        )],
        exposures: exposed
            .iter()
            .map(|&i| {
                let app = format!("vm-{i}");
                ExposureSpec::new(
                    format!("vm-{i}"),
                    [("app", app.as_str())],
                    vec![ServicePort::tcp(443)],
                )
            })
            .collect(),
        ..TenantSpec::default()
    }
}

/// Every object in the API double of `tenant`: labelled with it (any kind, any namespace), in
/// its namespace, or a Kube-OVN `IP` of one of its workloads ([`ips_of`]). As `(kind, namespace/name)`, sorted.
pub fn objects_of(server: &TestServer, tenant: &str) -> Vec<(String, String)> {
    let catalog = Catalog::upstream().expect("catalog");
    let cluster = server.cluster();
    let mut out = std::collections::BTreeSet::new();
    for t in catalog.types().iter().filter(|t| t.storage_version) {
        let api_version = t.api_version();
        let labelled = cluster
            .list_selected(
                &api_version,
                &t.kind,
                None,
                &format!("kubecloud.io/tenant={tenant}"),
            )
            .unwrap_or_default();
        let in_namespace = if t.namespaced {
            cluster
                .list(&api_version, &t.kind, Some(tenant))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        for o in labelled.iter().chain(&in_namespace) {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            out.insert((t.kind.clone(), format!("{ns}/{name}")));
        }
    }
    for ip in ips_of(server, tenant) {
        out.insert(("IP".to_string(), format!("/{ip}")));
    }
    // PersistentVolumes bound to the tenant's claims: the CSI driver deletes the LINSTOR volume
    // before it deletes the PV, so a PV gone means its LINSTOR volume is gone too.
    for pv in cluster
        .list("v1", "PersistentVolume", None)
        .unwrap_or_default()
    {
        if pv["spec"]["claimRef"]["namespace"] == tenant {
            let name = pv["metadata"]["name"].as_str().unwrap_or("");
            out.insert(("PersistentVolume".to_string(), format!("/{name}")));
        }
    }
    out.into_iter().collect()
}

/// Kube-OVN `IP` objects (cluster-scoped, named `<pod or vm>.<namespace>`, not labelled with the
/// tenant) of workloads in namespace `tenant`.
pub fn ips_of(server: &TestServer, tenant: &str) -> Vec<String> {
    server
        .cluster()
        .list("kubeovn.io/v1", "IP", None)
        .unwrap_or_default()
        .iter()
        .filter(|ip| ip["spec"]["namespace"] == tenant)
        .filter_map(|ip| ip["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// What [`objects_of`] finds of `tenant` but its namespace and Events: what `destroy` must not
/// leave behind. `destroy` returns only when everything the tenant owned is gone (the backends
/// delete in the foreground and wait for the garbage collector and the CSI driver), so this is
/// empty directly after it returns.
pub fn left_behind(server: &TestServer, tenant: &str) -> Vec<(String, String)> {
    objects_of(server, tenant)
        .into_iter()
        .filter(|(kind, _)| kind != "Event" && kind != "Namespace")
        .collect()
}

/// How many objects of each kind [`objects_of`] finds.
pub fn count_by_kind(objects: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (kind, _) in objects {
        *out.entry(kind.clone()).or_insert(0) += 1;
    }
    out
}
