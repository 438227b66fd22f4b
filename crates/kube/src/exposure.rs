//! Exposures as Services of type `LoadBalancer`, shared by the load-balancer backends (MetalLB,
//! Cilium LB-IPAM): the Service for an [`ExposureSpec`] (each backend adds its own annotations
//! and labels), whether a live Service already says what a desired one says, and the addresses
//! its status holds.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubecloud_core::{AddressRequest, Error, ExposureSpec, Protocol, Result, Tenant};

use crate::{holds, tenant_namespace};

fn kube_protocol(p: Protocol) -> Result<&'static str> {
    match p {
        Protocol::Tcp => Ok("TCP"),
        Protocol::Udp => Ok("UDP"),
        Protocol::Sctp => Ok("SCTP"),
        other => Err(Error::invalid(
            "ports",
            format!("a load balancer forwards tcp, udp or sctp, not {other}"),
        )),
    }
}

/// The `LoadBalancer` Service exposing `spec`'s VMs for `tenant`, with `labels` and the
/// backend's `annotations`: one named port per exposure port, `externalTrafficPolicy: Local`
/// when `local_traffic_only` (else `Cluster`), single-stack IPv6 for a requested IPv6 address.
/// Checks the spec first.
///
/// ```
/// use std::collections::BTreeMap;
/// use kubecloud_core::{ExposureSpec, ServicePort, Tenant};
/// let acme = Tenant::new("acme")?;
/// let spec = ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)]);
/// let svc = kubecloud_kube::exposure::load_balancer_service(&acme, &spec, BTreeMap::new(), BTreeMap::new())?;
/// assert_eq!(svc.spec.unwrap().ports.unwrap()[0].name.as_deref(), Some("tcp-443"));
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn load_balancer_service(
    tenant: &Tenant,
    spec: &ExposureSpec,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Result<Service> {
    spec.validate()?;
    let ports = spec
        .ports
        .iter()
        .map(|p| {
            let protocol = kube_protocol(p.protocol)?;
            Ok(ServicePort {
                name: Some(format!("{}-{}", protocol.to_ascii_lowercase(), p.port)),
                port: i32::from(p.port),
                target_port: Some(IntOrString::Int(i32::from(p.target_port.unwrap_or(p.port)))),
                protocol: Some(protocol.to_string()),
                ..ServicePort::default()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut svc = Service {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(tenant_namespace(tenant)),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(spec.selector.clone()),
            ports: Some(ports),
            external_traffic_policy: Some(
                if spec.local_traffic_only {
                    "Local"
                } else {
                    "Cluster"
                }
                .into(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    if matches!(spec.address, AddressRequest::Ip(IpAddr::V6(_))) {
        single_stack_ipv6(&mut svc);
    }
    Ok(svc)
}

/// Makes the Service single-stack IPv6, so the load balancer gives it an IPv6 address (for a
/// requested IPv6 address, or a pool with IPv6 addresses only).
pub fn single_stack_ipv6(svc: &mut Service) {
    if let Some(spec) = svc.spec.as_mut() {
        spec.ip_families = Some(vec!["IPv6".into()]);
        spec.ip_family_policy = Some("SingleStack".into());
    }
}

/// Whether the live Service already says all `desired` says, and nothing the backend no longer
/// says: no dropped selector label and none of the backend's `annotations` dropped or changed.
pub fn service_unchanged(current: &Service, desired: &Service, annotations: &[&str]) -> bool {
    fn picked<'a>(s: &'a Service, keys: &[&str]) -> Vec<Option<&'a String>> {
        let present = s.metadata.annotations.as_ref();
        keys.iter()
            .map(|k| present.and_then(|a| a.get(*k)))
            .collect()
    }
    let selector = |s: &Service| s.spec.as_ref().and_then(|s| s.selector.clone());
    holds(current, desired)
        && picked(current, annotations) == picked(desired, annotations)
        && selector(current) == selector(desired)
}

/// Whether a Service is a load-balancer exposure (the network backend's internal services are
/// ClusterIP Services with the same ownership labels, in the same namespace).
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// Every ingress address of the Service's status.
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref())
        .filter_map(|lb| lb.ingress.as_ref())
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect()
}

/// The Service's first ingress address, if the load balancer gave it one.
pub fn ingress_ip(svc: &Service) -> Option<IpAddr> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .as_deref()?
        .parse()
        .ok()
}
