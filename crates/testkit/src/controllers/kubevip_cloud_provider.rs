//! A stand-in for kube-vip-cloud-provider (the address-assigning half of kube-vip load
//! balancing) together with the status-writing part of kube-vip itself (the half that announces
//! the address over ARP or BGP, which has nothing to simulate against an API server).
//!
//! Modelled on kube-vip/kube-vip-cloud-provider at `d3522c6fa29d` (main; `pkg/` and `main.go` are
//! unchanged since tag v0.0.12, the version `shared/upstream/kube-vip/README.md` documents):
//! `pkg/provider/loadBalancer.go` (`syncLoadBalancer`, `checkLegacyLoadBalancerIPAnnotation`,
//! `discoverPool`, `getConfig`, `mapImplementedServices`, `discoverSharedVIPs`, `discoverVIPs`,
//! `discoverVIPsSingleStack`, `discoverVIPsDualStack`, `discoverFromPool`, `discoverInterface`),
//! `pkg/ipam/ipam.go` (`FindFreeAddress`, `OutOfIPsError`), `pkg/ipam/addressbuilder.go`
//! (`buildHostsFromCidr`, `buildAddressesFromRange`, `SplitCIDRsByIPFamily`,
//! `SplitRangesByIPFamily`), `pkg/config/config.go` (`search-order`, `skip-end-ips-in-cidr`),
//! `pkg/provider/provider.go` (ConfigMap `kubevip` in `kube-system`, the load-balancer class),
//! `pkg/provider/loadbalancerclass.go` (the class controller's events) and, for the Services
//! without a class, kubernetes/cloud-provider `controllers/service/controller.go`
//! (`syncLoadBalancerIfNeeded`, `processServiceCreateOrUpdate`: the finalizer and the events);
//! for kube-vip, kube-vip/kube-vip at `bee5cfe4a249`: `pkg/services/watch_services.go`
//! (`lbClassFilter`), `pkg/services/processor.go` (`AddOrModify`: `kube-vip.io/ignore`),
//! `pkg/instance/instance.go` (`FetchServiceAddresses`) and `pkg/services/services.go`
//! (`updateStatus`: the `kube-vip.io/vipHost` annotation and the ingress with its ports).
//! Nothing here calls kubecloud code.
//!
//! On every change to a `Service` or a `ConfigMap` it works every Service of type
//! `LoadBalancer` out again (oldest first), as the provider's retries eventually do:
//!
//! - **whose**: without a load-balancer class (the cloud-provider service controller), or, with
//!   [`KubeVipCloudProvider::with_load_balancer_class`] (`KUBEVIP_ENABLE_LOADBALANCERCLASS`),
//!   only those of that class (`kube-vip.io/kube-vip-class` by default);
//! - a Service being deleted loses the finalizer `service.kubernetes.io/load-balancer-cleanup`
//!   (the provider's delete does nothing else); others get it first;
//! - `spec.loadBalancerIP` without the annotation `kube-vip.io/loadbalancerIPs` is copied into
//!   the annotation (the legacy label `ipam-address` removed); a Service with the annotation
//!   gets the label `implementation: kube-vip` and nothing else: **requested addresses are taken
//!   as they are**, checked against no range and no other Service;
//! - otherwise the pool is `cidr-<namespace>`, else `range-<namespace>`, else `cidr-global`, else
//!   `range-global` of the ConfigMap (created empty when missing); none: `no address pools could
//!   be found`. The addresses in use are the annotations of the Services labelled
//!   `implementation: kube-vip` in the namespace (all namespaces for a global pool). With
//!   `allow-share-<namespace>` (else `allow-share-global`) `true`, an IPv4 address in use whose
//!   Services' ports are disjoint from this one's (and all have ports) is taken again (the
//!   provider iterates a Go map; the double takes the lowest such address);
//! - a pool with a `/` is CIDRs, else `from-to` ranges, comma-separated, merged per family;
//!   `0.0.0.0/32` gives every Service `0.0.0.0` (DHCP). Single-stack Services (no
//!   `ipFamilyPolicy`, or `SingleStack`) take the family of `ipFamilies[0]` (IPv4 without one,
//!   IPv6 when the pool has no IPv4): `could not find suitable pool for the IP family of the
//!   service`; dual-stack ones one address per family, with the upstream messages;
//! - addresses are searched from the lowest (`search-order: desc`: the highest), never an IPv4
//!   address ending in `.0` or `.255`; `skip-end-ips-in-cidr: "true"` leaves out each IPv4
//!   CIDR's first and last address (not of a /31 or /32). A full pool: `no addresses available
//!   in [<namespace>] cidr [<pool>]` (`range` for ranges);
//! - an assigned Service gets the label, the annotation (addresses comma-separated),
//!   `spec.loadBalancerIP` (the first) and `kube-vip.io/serviceInterface` from
//!   `interface-<namespace>`, else `interface-global`;
//! - a failure is a Warning Event `SyncLoadBalancerFailed` `Error syncing load balancer: failed
//!   to ensure load balancer: <why>` (with a class: `syncLoadBalancer` `Error syncing load
//!   balancer: <why>`), after a Normal `EnsuringLoadBalancer` `Ensuring load balancer`; success
//!   a Normal `EnsuredLoadBalancer` `Ensured load balancer`. Each Event is recorded once per
//!   Service, reason and message (client-go's recorder counts repeats on one Event).
//!
//! Differences: the provider caches each namespace's address set (`ipam.Manager`) and rebuilds
//! it only when the pool string changes, so a changed `skip-end-ips-in-cidr` alone waits for
//! that; the double builds it every time. Failed Services are retried on the next change to a
//! Service or the ConfigMap (the provider retries with a rate limiter).
//!
//! Then kube-vip: every Service of type `LoadBalancer` of its class (none, or the configured
//! one), not annotated `kube-vip.io/ignore: "true"`, with addresses (the annotation, else its
//! ingress, else `spec.loadBalancerIP`) gets `kube-vip.io/vipHost: <node>` and
//! `status.loadBalancer.ingress` with those addresses and the Service's ports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;

/// `kube-vip.io/loadbalancerIPs`: the Service's addresses, comma-separated.
pub const LOADBALANCER_IPS: &str = "kube-vip.io/loadbalancerIPs";
/// `kube-vip.io/serviceInterface`, from `interface-<namespace>`.
pub const SERVICE_INTERFACE: &str = "kube-vip.io/serviceInterface";
/// `kube-vip.io/vipHost`: the node announcing the address (written by kube-vip).
pub const VIP_HOST: &str = "kube-vip.io/vipHost";
/// `kube-vip.io/ignore`.
pub const IGNORE: &str = "kube-vip.io/ignore";
/// The label key the provider marks the Services it gave addresses with.
pub const IMPLEMENTATION_LABEL: &str = "implementation";
/// Its value.
pub const IMPLEMENTATION: &str = "kube-vip";
/// The legacy label the provider removes.
pub const LEGACY_IPAM_ADDRESS: &str = "ipam-address";
/// The default load-balancer class (`DefaultLoadbalancerClass`).
pub const DEFAULT_CLASS: &str = "kube-vip.io/kube-vip-class";
/// The cloud-provider service controller's finalizer.
pub const CLEANUP_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
/// The reason of the Warning Event of the cloud-provider service controller.
pub const SYNC_FAILED: &str = "SyncLoadBalancerFailed";
/// The reason of the Warning Event of the provider's own class controller.
pub const CLASS_SYNC_FAILED: &str = "syncLoadBalancer";

/// The simulated kube-vip-cloud-provider and kube-vip. Register it with
/// [`TestServerBuilder::controller`](crate::TestServerBuilder::controller).
///
/// ```
/// use kubecloud_testkit::{KubeVipCloudProvider, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder().controller(KubeVipCloudProvider::new()).start().await?;
/// assert!(server.controller("kube-vip-cloud-provider").is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct KubeVipCloudProvider {
    namespace: String,
    config_map: String,
    class: Option<String>,
    node: String,
}

impl Default for KubeVipCloudProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeVipCloudProvider {
    /// The provider reading ConfigMap `kubevip` in `kube-system`, for Services without a class;
    /// kube-vip announcing from `node-1`.
    pub fn new() -> Self {
        Self {
            namespace: "kube-system".into(),
            config_map: "kubevip".into(),
            class: None,
            node: "node-1".into(),
        }
    }

    /// Only Services of the class `class` (`KUBEVIP_ENABLE_LOADBALANCERCLASS=true`, with
    /// `KUBEVIP_CUSTOM_LOADBALANCERCLASS_NAME`; kube-vip with `lb_class_name`).
    pub fn with_load_balancer_class(mut self, class: impl Into<String>) -> Self {
        self.class = Some(class.into());
        self
    }

    /// The ConfigMap read (`KUBEVIP_NAMESPACE`, `KUBEVIP_CONFIG_MAP`).
    pub fn with_config_map(
        mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        self.namespace = namespace.into();
        self.config_map = name.into();
        self
    }

    /// The node kube-vip announces from (`kube-vip.io/vipHost`).
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }
}

#[async_trait]
impl Controller for KubeVipCloudProvider {
    fn name(&self) -> &str {
        "kube-vip-cloud-provider"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![Watched::new("", "services"), Watched::new("", "configmaps")]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        if ev.resource == "configmaps"
            && (ev.namespace.as_deref() != Some(&self.namespace) || ev.name != self.config_map)
        {
            return Ok(());
        }
        self.converge(api).await?;
        self.announce(api).await
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn annotation<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    svc["metadata"]["annotations"][key].as_str()
}

fn is_deleting(svc: &Value) -> bool {
    svc["metadata"]["deletionTimestamp"].is_string()
}

fn finalizers(svc: &Value) -> Vec<String> {
    svc["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| s(f).to_string())
        .collect()
}

fn ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["port"].as_i64())
        .collect()
}

/// An address as a number, and whether it is IPv6.
fn num(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

fn addr(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

/// A `netipx.IPSet` of one family: sorted, merged inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq)]
struct IpSet(Vec<(u128, u128)>);

impl IpSet {
    fn from_ranges(mut ranges: Vec<(u128, u128)>) -> IpSet {
        ranges.sort();
        let mut out: Vec<(u128, u128)> = Vec::new();
        for (a, b) in ranges {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        IpSet(out)
    }

    /// `Prefixes()`: the fewest CIDRs covering the set.
    fn prefixes(&self, v6: bool) -> Vec<(u128, u8)> {
        let bits: u32 = if v6 { 128 } else { 32 };
        let mut out = Vec::new();
        for &(mut a, b) in &self.0 {
            loop {
                let mut size = if a == 0 {
                    bits
                } else {
                    a.trailing_zeros().min(bits)
                };
                while size > 0 {
                    let last = a.checked_add((1u128 << size) - 1);
                    if last.is_some_and(|l| l <= b) {
                        break;
                    }
                    size -= 1;
                }
                out.push((a, (bits - size) as u8));
                let next = a.checked_add(1u128 << size);
                match next {
                    Some(n) if n <= b && size < 128 => a = n,
                    _ => break,
                }
            }
        }
        out
    }
}

/// One family's pool, as `discoverVIPs` splits it.
#[derive(Clone, Debug)]
struct FamilyPool {
    /// The pool string of that family (`SplitCIDRsByIPFamily` / `SplitRangesByIPFamily`).
    text: String,
    set: IpSet,
    cidr: bool,
    v6: bool,
}

/// The inclusive ranges of a pool string, IPv4 and IPv6 apart.
type ByFamily = (Vec<(u128, u128)>, Vec<(u128, u128)>);

fn parse_cidrs(pool: &str) -> Result<ByFamily, String> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for c in pool.split(',') {
        let net: ipnet::IpNet = c
            .parse()
            .map_err(|_| format!("netip.ParsePrefix({c:?}): invalid prefix"))?;
        let (first, is6) = num(net.network());
        let (last, _) = num(net.broadcast());
        if is6 { &mut v6 } else { &mut v4 }.push((first, last));
    }
    Ok((v4, v6))
}

fn parse_ranges(pool: &str) -> Result<ByFamily, String> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for r in pool.split(',') {
        let parts: Vec<&str> = r.split('-').collect();
        if parts.len() != 2 {
            return Err(format!("unable to parse IP range [{r}]"));
        }
        let ip = |t: &str| {
            t.parse::<IpAddr>()
                .map_err(|_| format!("ParseAddr({t:?}): unable to parse IP"))
        };
        let (a, b) = (num(ip(parts[0])?), num(ip(parts[1])?));
        // netipx drops a range whose ends are of different families or reversed.
        if a.1 != b.1 || a.0 > b.0 {
            continue;
        }
        if a.1 { &mut v6 } else { &mut v4 }.push((a.0, b.0));
    }
    Ok((v4, v6))
}

/// `SplitCIDRsByIPFamily` / `SplitRangesByIPFamily`: (IPv4 pool, IPv6 pool), each absent when
/// empty.
fn split_pool(pool: &str) -> Result<(Option<FamilyPool>, Option<FamilyPool>), String> {
    let cidr = pool.contains('/');
    let (v4, v6) = if cidr {
        parse_cidrs(pool)?
    } else {
        parse_ranges(pool)?
    };
    let family = |ranges: Vec<(u128, u128)>, v6: bool| {
        if ranges.is_empty() {
            return None;
        }
        let set = IpSet::from_ranges(ranges);
        let text = if cidr {
            set.prefixes(v6)
                .iter()
                .map(|(a, len)| format!("{}/{len}", addr(*a, v6)))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            set.0
                .iter()
                .map(|(a, b)| format!("{}-{}", addr(*a, v6), addr(*b, v6)))
                .collect::<Vec<_>>()
                .join(",")
        };
        Some(FamilyPool {
            text,
            set,
            cidr,
            v6,
        })
    };
    Ok((family(v4, false), family(v6, true)))
}

/// The ConfigMap's settings (`KubevipLBConfig`).
#[derive(Clone, Copy, Debug, Default)]
struct LbConfig {
    descending: bool,
    skip_end_ips: bool,
}

/// `buildHostsFromCidr` (for CIDR pools) or the range set itself.
fn hosts(pool: &FamilyPool, config: LbConfig) -> IpSet {
    if !pool.cidr || pool.v6 {
        return pool.set.clone();
    }
    let mut ranges = Vec::new();
    for (a, len) in pool.set.prefixes(false) {
        let last = a + (1u128 << (32 - u32::from(len))) - 1;
        if len == 32 || len == 31 || !config.skip_end_ips {
            ranges.push((a, last));
        } else {
            ranges.push((a + 1, last - 1));
        }
    }
    IpSet::from_ranges(ranges)
}

/// `FindFreeAddress`: the first (or last) address not in use, never an IPv4 `.0` or `.255`.
fn find_free(set: &IpSet, v6: bool, in_use: &BTreeSet<IpAddr>, config: LbConfig) -> Option<IpAddr> {
    let ok = |n: u128| {
        let ip = addr(n, v6);
        !in_use.contains(&ip) && (v6 || !matches!(n & 0xff, 0 | 255))
    };
    if config.descending {
        for &(a, b) in set.0.iter().rev() {
            let mut n = b;
            loop {
                if ok(n) {
                    return Some(addr(n, v6));
                }
                if n == a {
                    break;
                }
                n -= 1;
            }
        }
    } else {
        for &(a, b) in &set.0 {
            let mut n = a;
            loop {
                if ok(n) {
                    return Some(addr(n, v6));
                }
                if n == b {
                    break;
                }
                n += 1;
            }
        }
    }
    None
}

/// Why a pool had no address (`OutOfIPsError`).
enum PoolError {
    OutOfIps(String),
}

fn discover_address(
    namespace: &str,
    pool: &FamilyPool,
    in_use: &BTreeSet<IpAddr>,
    config: LbConfig,
) -> Result<IpAddr, PoolError> {
    find_free(&hosts(pool, config), pool.v6, in_use, config).ok_or_else(|| {
        PoolError::OutOfIps(format!(
            "no addresses available in [{namespace}] {} [{}]",
            if pool.cidr { "cidr" } else { "range" },
            pool.text
        ))
    })
}

/// `discoverVIPs`: the addresses for a Service, comma-separated.
fn discover_vips(
    namespace: &str,
    pool: &str,
    shared_v4: Option<IpAddr>,
    in_use: &BTreeSet<IpAddr>,
    config: LbConfig,
    svc: &Value,
) -> Result<String, String> {
    if pool == "0.0.0.0/32" {
        return Ok("0.0.0.0".into());
    }
    if pool.is_empty() {
        return Err("could not discover address: pool is not specified".into());
    }
    let (v4, v6) = split_pool(pool)?;
    let families: Vec<&str> = svc["spec"]["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    let policy = svc["spec"]["ipFamilyPolicy"].as_str();
    let take = |p: &FamilyPool| -> Result<IpAddr, PoolError> {
        match shared_v4 {
            Some(ip) if !p.v6 => Ok(ip),
            _ => discover_address(namespace, p, in_use, config),
        }
    };
    if policy.is_none() || policy == Some("SingleStack") {
        let chosen = match families.first() {
            Some(&"IPv6") => v6.as_ref(),
            Some(_) => v4.as_ref(),
            None => v4.as_ref().or(v6.as_ref()),
        };
        let Some(p) = chosen else {
            return Err("could not find suitable pool for the IP family of the service".into());
        };
        return match take(p) {
            Ok(ip) => Ok(ip.to_string()),
            Err(PoolError::OutOfIps(e)) => Err(e),
        };
    }
    let require = policy == Some("RequireDualStack");
    if require && (v4.is_none() || v6.is_none()) {
        return Err("service requires dual-stack, but the configuration does not have both IPv4 and IPv6 pools listed for the namespace".into());
    }
    let (primary, secondary) = if families.first() == Some(&"IPv6") {
        (v6.as_ref(), v4.as_ref())
    } else {
        (v4.as_ref(), v6.as_ref())
    };
    let mut vips = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut failed = [false, false];
    for (i, p) in [primary, secondary].into_iter().enumerate() {
        let Some(p) = p else { continue };
        match take(p) {
            Ok(ip) => vips.push(ip.to_string()),
            Err(PoolError::OutOfIps(e)) => {
                failed[i] = true;
                errors.push(e);
            }
        }
    }
    let rendered: String = errors.iter().map(|e| format!("\n\t- {e}")).collect();
    if policy == Some("PreferDualStack") && failed[0] && failed[1] {
        return Err(format!(
            "could not allocate any IP address for PreferDualStack service: {rendered}"
        ));
    }
    if require && (failed[0] || failed[1]) {
        return Err(format!(
            "could not allocate required IP addresses for RequireDualStack service: {rendered}"
        ));
    }
    Ok(vips.join(","))
}

/// `getConfig`: the namespace's value of `name`, else the global one, and whether global.
fn config_value<'a>(data: &'a Value, namespace: &str, name: &str) -> Option<(&'a str, bool)> {
    if let Some(v) = data[format!("{name}-{namespace}")].as_str() {
        return Some((v, false));
    }
    data[format!("{name}-global")].as_str().map(|v| (v, true))
}

/// `parseAddrList`.
fn addresses(list: &str) -> Result<Vec<IpAddr>, String> {
    list.split(',')
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| format!("ParseAddr({a:?}): unable to parse IP"))
        })
        .collect()
}

/// A unique suffix for Event names, as client-go's recorder makes them (`<object>.<hex>`).
fn event_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
    nanos.wrapping_add(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// What a sync did.
enum Outcome {
    /// Nothing to write.
    Done,
    /// The Service gets these addresses (and the interface annotation).
    Assign(String, Option<String>),
    /// It failed with this error.
    Failed(String),
}

impl KubeVipCloudProvider {
    fn responsible(&self, svc: &Value) -> bool {
        svc["spec"]["type"] == "LoadBalancer"
            && svc["spec"]["loadBalancerClass"].as_str() == self.class.as_deref()
    }

    async fn converge(&self, api: &ControllerApi) -> Result<(), ControllerError> {
        let mut services: Vec<Value> = api
            .list("v1", "Service", None)
            .await?
            .into_iter()
            .filter(|s| self.responsible(s))
            .collect();
        services.sort_by_key(|o| {
            let m = &o["metadata"];
            (
                s(&m["creationTimestamp"]).to_string(),
                s(&m["namespace"]).to_string(),
                s(&m["name"]).to_string(),
            )
        });
        for i in 0..services.len() {
            let svc = services[i].clone();
            let ns = s(&svc["metadata"]["namespace"]).to_string();
            let name = s(&svc["metadata"]["name"]).to_string();
            let mut fins = finalizers(&svc);
            if is_deleting(&svc) {
                if fins.iter().any(|f| f == CLEANUP_FINALIZER) {
                    let labelled =
                        svc["metadata"]["labels"][IMPLEMENTATION_LABEL] == IMPLEMENTATION;
                    if self.class.is_none() && labelled {
                        self.event_once(
                            api,
                            &svc,
                            "Normal",
                            "DeletingLoadBalancer",
                            "Deleting load balancer",
                        )
                        .await?;
                    }
                    fins.retain(|f| f != CLEANUP_FINALIZER);
                    api.merge_patch(
                        "v1",
                        "Service",
                        Some(&ns),
                        &name,
                        &json!({"metadata": {"finalizers": fins}}),
                    )
                    .await?;
                    let deleted = if self.class.is_none() {
                        "DeletedLoadBalancer"
                    } else {
                        "LoadBalancerDeleted"
                    };
                    self.event_once(api, &svc, "Normal", deleted, "Deleted load balancer")
                        .await?;
                }
                continue;
            }
            self.event_once(
                api,
                &svc,
                "Normal",
                "EnsuringLoadBalancer",
                "Ensuring load balancer",
            )
            .await?;
            if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
                fins.push(CLEANUP_FINALIZER.into());
                api.merge_patch(
                    "v1",
                    "Service",
                    Some(&ns),
                    &name,
                    &json!({"metadata": {"finalizers": fins}}),
                )
                .await?;
            }
            let outcome = self.sync(api, &svc, &services).await?;
            match outcome {
                Outcome::Done => {}
                Outcome::Assign(vips, interface) => {
                    let first = vips.split(',').next().unwrap_or_default().to_string();
                    let mut annotations = json!({ LOADBALANCER_IPS: vips });
                    if let Some(i) = interface {
                        annotations[SERVICE_INTERFACE] = json!(i);
                    }
                    let patched = api
                        .merge_patch(
                            "v1",
                            "Service",
                            Some(&ns),
                            &name,
                            &json!({
                                "metadata": {
                                    "labels": {IMPLEMENTATION_LABEL: IMPLEMENTATION},
                                    "annotations": annotations,
                                },
                                "spec": {"loadBalancerIP": first},
                            }),
                        )
                        .await?;
                    services[i] = patched;
                }
                Outcome::Failed(why) => {
                    let (reason, message) = match &self.class {
                        None => (
                            SYNC_FAILED,
                            format!(
                                "Error syncing load balancer: failed to ensure load balancer: {why}"
                            ),
                        ),
                        Some(_) => (
                            CLASS_SYNC_FAILED,
                            format!("Error syncing load balancer: {why}"),
                        ),
                    };
                    self.event_once(api, &svc, "Warning", reason, &message)
                        .await?;
                    continue;
                }
            }
            self.event_once(
                api,
                &services[i],
                "Normal",
                "EnsuredLoadBalancer",
                "Ensured load balancer",
            )
            .await?;
        }
        Ok(())
    }

    /// `syncLoadBalancer` for one Service; `services` are those of the provider as known now.
    async fn sync(
        &self,
        api: &ControllerApi,
        svc: &Value,
        services: &[Value],
    ) -> Result<Outcome, ControllerError> {
        let meta = &svc["metadata"];
        let ns = s(&meta["namespace"]);
        let name = s(&meta["name"]);
        let requested = annotation(svc, LOADBALANCER_IPS).filter(|v| !v.is_empty());
        // `checkLegacyLoadBalancerIPAnnotation`.
        if let Some(ip) = svc["spec"]["loadBalancerIP"]
            .as_str()
            .filter(|v| !v.is_empty())
        {
            if requested.is_none() {
                api.merge_patch(
                    "v1",
                    "Service",
                    Some(ns),
                    name,
                    &json!({"metadata": {
                        "annotations": {LOADBALANCER_IPS: ip},
                        "labels": {LEGACY_IPAM_ADDRESS: null},
                    }}),
                )
                .await?;
            }
            return Ok(Outcome::Done);
        }
        if requested.is_some() {
            if meta["labels"][IMPLEMENTATION_LABEL] != IMPLEMENTATION {
                api.merge_patch(
                    "v1",
                    "Service",
                    Some(ns),
                    name,
                    &json!({"metadata": {"labels": {IMPLEMENTATION_LABEL: IMPLEMENTATION}}}),
                )
                .await?;
            }
            return Ok(Outcome::Done);
        }
        let cm = match api
            .get_opt("v1", "ConfigMap", Some(&self.namespace), &self.config_map)
            .await?
        {
            Some(cm) => cm,
            None => {
                api.create(json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": self.config_map, "namespace": self.namespace},
                }))
                .await?
            }
        };
        let data = &cm["data"];
        let allow_share = config_value(data, ns, "allow-share")
            .is_some_and(|(v, _)| matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True"));
        let Some((pool, global)) =
            config_value(data, ns, "cidr").or_else(|| config_value(data, ns, "range"))
        else {
            return Ok(Outcome::Failed("no address pools could be found".into()));
        };
        // `mapImplementedServices` over the labelled Services (of every class: the list selects
        // by label only).
        let all = api
            .list("v1", "Service", if global { None } else { Some(ns) })
            .await?;
        let mut current: BTreeMap<(String, String), Value> = all
            .into_iter()
            .map(|o| {
                (
                    (
                        s(&o["metadata"]["namespace"]).to_string(),
                        s(&o["metadata"]["name"]).to_string(),
                    ),
                    o,
                )
            })
            .collect();
        for o in services {
            let key = (
                s(&o["metadata"]["namespace"]).to_string(),
                s(&o["metadata"]["name"]).to_string(),
            );
            if current.contains_key(&key) {
                current.insert(key, o.clone());
            }
        }
        let mut in_use = BTreeSet::new();
        let mut port_map: BTreeMap<IpAddr, BTreeSet<i64>> = BTreeMap::new();
        for o in current.values() {
            if o["metadata"]["labels"][IMPLEMENTATION_LABEL] != IMPLEMENTATION {
                continue;
            }
            let Some(list) = annotation(o, LOADBALANCER_IPS) else {
                continue;
            };
            let ips = match addresses(list) {
                Ok(ips) => ips,
                Err(e) => return Ok(Outcome::Failed(e)),
            };
            for ip in ips {
                if allow_share && ip.is_ipv4() {
                    let p = ports(o);
                    let set = port_map.entry(ip).or_default();
                    if p.is_empty() {
                        set.insert(0);
                    } else {
                        set.extend(p);
                    }
                }
                in_use.insert(ip);
            }
        }
        let config = LbConfig {
            descending: data["search-order"] == "desc",
            skip_end_ips: data["skip-end-ips-in-cidr"] == "true",
        };
        let shared = if allow_share {
            let mine: BTreeSet<i64> = ports(svc).into_iter().collect();
            port_map
                .iter()
                .find(|(_, used)| !used.contains(&0) && used.is_disjoint(&mine))
                .map(|(ip, _)| *ip)
        } else {
            None
        };
        match discover_vips(ns, pool, shared, &in_use, config, svc) {
            Ok(vips) => {
                let interface = if vips.is_empty() {
                    None
                } else {
                    data[format!("interface-{ns}")]
                        .as_str()
                        .or_else(|| data["interface-global"].as_str())
                        .map(String::from)
                };
                Ok(Outcome::Assign(vips, interface))
            }
            Err(e) => Ok(Outcome::Failed(e)),
        }
    }

    /// kube-vip: the node annotation and the ingress of every Service with addresses.
    async fn announce(&self, api: &ControllerApi) -> Result<(), ControllerError> {
        let services = api.list("v1", "Service", None).await?;
        for svc in services {
            if !self.responsible(&svc)
                || is_deleting(&svc)
                || annotation(&svc, IGNORE) == Some("true")
            {
                continue;
            }
            let ingress_now: Vec<&str> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str())
                .collect();
            let wanted: Vec<String> = match annotation(&svc, LOADBALANCER_IPS) {
                Some(list) => list
                    .split(',')
                    .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                    .map(|ip| ip.to_string())
                    .collect(),
                None if !ingress_now.is_empty() => {
                    ingress_now.iter().map(|s| s.to_string()).collect()
                }
                None => svc["spec"]["loadBalancerIP"]
                    .as_str()
                    .filter(|v| !v.is_empty())
                    .map(|v| vec![v.to_string()])
                    .unwrap_or_default(),
            };
            if wanted.is_empty() {
                continue;
            }
            let ns = s(&svc["metadata"]["namespace"]);
            let name = s(&svc["metadata"]["name"]);
            if annotation(&svc, VIP_HOST) != Some(self.node.as_str()) {
                api.merge_patch(
                    "v1",
                    "Service",
                    Some(ns),
                    name,
                    &json!({"metadata": {"annotations": {VIP_HOST: self.node}}}),
                )
                .await?;
            }
            let port_status: Vec<Value> = svc["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| json!({"port": p["port"], "protocol": p["protocol"].as_str().unwrap_or("TCP")}))
                .collect();
            let ingress: Vec<Value> = wanted
                .iter()
                .map(|ip| json!({"ip": ip, "ports": port_status}))
                .collect();
            if svc["status"]["loadBalancer"]["ingress"] != json!(ingress) {
                api.merge_patch_status(
                    "v1",
                    "Service",
                    Some(ns),
                    name,
                    &json!({"status": {"loadBalancer": {"ingress": ingress}}}),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Records an Event unless the Service already has one with this reason and message.
    async fn event_once(
        &self,
        api: &ControllerApi,
        svc: &Value,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ControllerError> {
        let meta = &svc["metadata"];
        let ns = s(&meta["namespace"]);
        let uid = &meta["uid"];
        let already = api
            .list_where("v1", "Event", Some(ns), |e| {
                &e["involvedObject"]["uid"] == uid
                    && e["reason"] == reason
                    && e["message"] == message
            })
            .await?;
        if !already.is_empty() {
            return Ok(());
        }
        let now = crate::meta::now();
        let component = if self.class.is_none() {
            "service-controller"
        } else {
            "kube-vip-cloud-provider"
        };
        api.create(json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{}.{:016x}", s(&meta["name"]), event_suffix()),
                "namespace": ns,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Service",
                "namespace": ns,
                "name": meta["name"],
                "uid": uid,
                "resourceVersion": meta["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_split_and_merge_by_family_as_upstream_prints_them() {
        let (v4, v6) = split_pool("192.168.0.200/30,192.168.0.204/30,2001::10/127").unwrap();
        assert_eq!(v4.unwrap().text, "192.168.0.200/29");
        assert_eq!(v6.unwrap().text, "2001::10/127");
        let (v4, _) = split_pool("10.0.0.5-10.0.0.9,10.0.0.8-10.0.0.12").unwrap();
        assert_eq!(v4.unwrap().text, "10.0.0.5-10.0.0.12");
    }

    #[test]
    fn free_addresses_skip_dot_zero_and_dot_255_and_the_cidr_ends_when_asked() {
        let (v4, _) = split_pool("10.0.0.0/30").unwrap();
        let pool = v4.unwrap();
        let none = BTreeSet::new();
        let first = find_free(
            &hosts(&pool, LbConfig::default()),
            false,
            &none,
            LbConfig::default(),
        );
        assert_eq!(first, Some("10.0.0.1".parse().unwrap()));
        let skip = LbConfig {
            skip_end_ips: true,
            descending: true,
        };
        let last = find_free(&hosts(&pool, skip), false, &none, skip);
        assert_eq!(last, Some("10.0.0.2".parse().unwrap()));
        let used: BTreeSet<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let err = discover_address("acme", &pool, &used, LbConfig::default())
            .err()
            .map(|e| match e {
                PoolError::OutOfIps(m) => m,
            });
        assert_eq!(
            err.as_deref(),
            Some("no addresses available in [acme] cidr [10.0.0.0/30]")
        );
    }
}
