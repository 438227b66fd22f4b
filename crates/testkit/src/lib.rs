//! Test doubles that speak the real protocols: a Kubernetes API server on a real socket, with
//! simulated controllers, fault and latency injection, and request counters.
//!
//! [`TestServer`] listens on `127.0.0.1` (random port) and serves HTTP/1.1 the way
//! kube-apiserver does, for every kind in the upstream [`schema::Catalog`]: the KubeVirt, CDI,
//! Kube-OVN, MetalLB, Multus, Piraeus and volume-snapshot CRDs and the core kinds kubecloud uses
//! (Namespace, Secret, ConfigMap, Service, PersistentVolumeClaim, PersistentVolume, Pod, Event,
//! StorageClass, CSIDriver, Node). A plain `kube::Client` talks to it over TCP, so the code under
//! test runs unchanged: `Api`, `Patch::Apply`, `watcher`, `await_condition`, `Discovery`, retries.
//!
//! # Quick start
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//! use kubecloud_testkit::{TestServer, Verb};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::start().await?;
//! // Fixtures go straight into the store (validated like any write; watches see them).
//! server.seed_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded, namespace: default}\n")?;
//!
//! let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("made".into());
//! cms.create(&PostParams::default(), &cm).await?;
//!
//! assert_eq!(server.cluster().list("v1", "ConfigMap", Some("default"))?.len(), 2);
//! assert_eq!(server.requests().count(Verb::Create, "configmaps"), 1);
//! # Ok(())
//! # }
//! ```
//!
//! `server.client()` is `kube::Client::try_from(kube::Config::new(server.url()))`: default
//! namespace `default`, no auth, and kube's default retry policy (429, 503 and 504 are retried).
//! Use [`TestServer::kube_config`] to change the config before building your own client.
//!
//! # Testing a small operator
//!
//! The operator below ensures a VirtualMachine with server-side apply and waits, on a watch, until
//! it is ready. In the test, a simulated KubeVirt controller (a [`Controller`]) plays virt-controller:
//! it marks every VirtualMachine ready through the API, as the real one would.
//!
//! ```
//! use async_trait::async_trait;
//! use kube::api::{Api, DynamicObject, Patch, PatchParams};
//! use kube::core::{ApiResource, GroupVersionKind};
//! use kube::runtime::wait::await_condition;
//! use kubecloud_testkit::{Controller, ControllerApi, ControllerError, EventType, ObjectEvent, TestServer, Verb, Watched};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! // --- the code under test ---
//! fn vms(client: kube::Client, ns: &str) -> Api<DynamicObject> {
//!     let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
//!     Api::namespaced_with(client, ns, &ApiResource::from_gvk_with_plural(&gvk, "virtualmachines"))
//! }
//!
//! async fn ensure_vm(client: kube::Client, name: &str) -> Result<(), kube::Error> {
//!     let api = vms(client, "default");
//!     let vm = json!({
//!         "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
//!         "metadata": {"name": name},
//!         "spec": {"runStrategy": "Always",
//!                  "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}}
//!     });
//!     api.patch(name, &PatchParams::apply("my-operator"), &Patch::Apply(vm)).await?;
//!     let ready = |o: Option<&DynamicObject>| o.is_some_and(|o| o.data["status"]["ready"] == true);
//!     await_condition(api, name, ready).await.expect("watch");
//!     Ok(())
//! }
//!
//! // --- the test ---
//! struct FakeVirtController;
//!
//! #[async_trait]
//! impl Controller for FakeVirtController {
//!     fn name(&self) -> &str { "virt-controller" }
//!     fn watches(&self) -> Vec<Watched> { vec![Watched::new("kubevirt.io", "virtualmachines")] }
//!     async fn reconcile(&self, api: &ControllerApi, ev: &ObjectEvent) -> Result<(), ControllerError> {
//!         if ev.kind != EventType::Deleted && ev.object["status"]["ready"] != true {
//!             api.merge_patch_status("kubevirt.io/v1", "VirtualMachine", ev.namespace.as_deref(), &ev.name,
//!                                    &json!({"status": {"ready": true, "printableStatus": "Running"}})).await?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::builder().controller(FakeVirtController).start().await?;
//! tokio::time::timeout(Duration::from_secs(10), ensure_vm(server.client(), "vm1")).await??;
//!
//! let requests = server.requests();
//! assert_eq!(requests.count(Verb::Apply, "virtualmachines"), 1, "one apply per object");
//! assert_eq!(requests.count(Verb::Get, "virtualmachines"), 0, "no polling: it waits on a watch");
//! let vm = server.cluster().get("kubevirt.io/v1", "VirtualMachine", Some("default"), "vm1")?;
//! assert_eq!(vm["status"]["printableStatus"], "Running");
//! # Ok(())
//! # }
//! ```
//!
//! # What the double does
//!
//! - **Discovery**: `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}` (with
//!   `{plural}/status` entries), aggregated discovery v2 when asked for, and `/version`;
//!   `/openapi/v3` (paths and operations, for kubectl's validation and patch choice).
//! - **Verbs**: get, list (label selectors with `=`, `==`, `!=`, `in`, `notin`, exists, `!`;
//!   field selectors; `limit`/`continue`; across namespaces), create (`generateName`), update
//!   (409 on a stale `resourceVersion`), delete (finalizers, `propagationPolicy`, preconditions),
//!   deletecollection, JSON patch, merge patch, strategic merge patch (built-in kinds; 415 for
//!   custom resources, as on a real server), server-side apply (`fieldManager`, `force`,
//!   `managedFields` in `FieldsV1`, 409 listing conflicting fields per manager, removal of fields
//!   a manager stops applying, create on apply), `dryRun=All`, `fieldValidation`.
//! - **Object rules**: the status subresource is separate from the main resource where the type
//!   has one; `metadata.generation` counts changes outside metadata (and status); `uid`,
//!   `creationTimestamp`, a global `resourceVersion` counter; writes that change nothing are not
//!   stored (same `resourceVersion`, no event); `apiVersion`, `kind`, namespace and name must agree
//!   with the URL; objects in a missing namespace are 404 `namespaces "x" not found`, in a
//!   terminating one 403.
//! - **CustomResourceDefinitions** (`apiextensions.k8s.io/v1`): create or apply one (as
//!   `kubectl apply -f crd.yaml` does) and, once [`CrdController`] has set `Established`, its
//!   resource is served like the upstream ones (discovery, verbs, watch, `/status`, validation);
//!   deleting the CRD deletes its objects and stops serving it.
//! - **Validation** of every write with [`schema::ResourceType::validate`]: 422 `Invalid` with one
//!   cause per field, worded as kube-apiserver words it.
//! - **Errors** as `Status` bodies with kube-apiserver's reasons and messages
//!   (`virtualmachines.kubevirt.io "vm1" not found`); see [`ApiError`].
//! - **Watch** with `resourceVersion`, `resourceVersionMatch`, `allowWatchBookmarks`,
//!   `sendInitialEvents`, `timeoutSeconds` and selectors; 410 `Expired` as an `ERROR` event when
//!   resuming from a revision older than the retained history ([`Cluster::compact`],
//!   [`TestServerBuilder::history_limit`]).
//!
//! # Controllers
//!
//! Simulated controllers run beside the server and act through a [`ControllerApi`]: in the double,
//! the in-process [`Cluster`] handle, which calls the same code as the HTTP handlers (admission, validation, managed fields, resourceVersions,
//! watch events) without the socket: their writes are real writes, but they are not in the request
//! log and injected faults and latency do not hit them. Built in and started by default:
//! [`GarbageCollector`] (owner references; background, foreground and orphan propagation),
//! [`NamespaceController`] (namespace deletion) and [`PvcBinder`] (dynamic provisioning and
//! binding), and [`PvcProtection`] (kube-controller-manager's PVC protection: a claim a pod uses
//! keeps the `kubernetes.io/pvc-protection` finalizer, which admission gives every claim, until
//! the pod is gone; without it, as without kube-controller-manager, claims never finish deleting).
//! Register more with [`TestServerBuilder::controller`] or
//! [`TestServer::add_controller`]; control one with its [`ControllerHandle`]
//! ([`TestServer::controller`]): pause, delay, fail.
//!
//! # The whole stack, and as a server
//!
//! [`FakeCloud`] starts the API double with every simulated controller and the LINSTOR double,
//! seeded like a cluster with Piraeus, KubeVirt, CDI, Kube-OVN and MetalLB installed. The
//! `kubecloud-fake-cloud` binary runs it as a server and writes a kubeconfig for `kubectl`.
//!
//! [`csi`] simulates other storage: a CSI driver (Ceph RBD, CephFS, Longhorn, Mayastor,
//! LocalPV-LVM, democratic-csi, a generic one) with the kubernetes-csi sidecars' behaviour —
//! provisioning and binding, `WaitForFirstConsumer`, expansion, snapshots, clones, refusals as
//! `ProvisioningFailed` events — installed on any [`TestServer`] ([`csi::install`]) or in a
//! fake cloud instead of LINSTOR ([`FakeCloudBuilder::csi`]).
//!
//! # Running your operator's tests on kind or k3s with kubecloud-sim
//!
//! The simulated KubeVirt + CDI, Kube-OVN, MetalLB and LINSTOR CSI controllers also run against
//! any Kubernetes API server, through `kube::Client` (watches, server-side apply with each
//! controller's field manager, the status subresource): the `kubecloud-sim` binary, or
//! [`sim::Simulation::start`] in a test process, installs their CRDs if asked, starts a LINSTOR
//! double for the CSI driver and runs them, the way KWOK simulates nodes and pods.
//!
//! ```text
//! $ kind create cluster --name sim && kind get kubeconfig --name sim > /tmp/sim.kubeconfig
//! $ cargo run -p kubecloud-testkit --bin kubecloud-sim -- --kubeconfig /tmp/sim.kubeconfig --install-crds
//! linstor controller at https://127.0.0.1:41233
//! ready
//! $ KUBECONFIG=/tmp/sim.kubeconfig cargo test   # your operator's tests, in another shell
//! ```
//!
//! Options: `--context C`, `--linstor-listen ADDR`, `--only kubevirt,cdi,kubeovn,metallb,linstor-csi`.
//! What a real control plane already does (garbage collection, namespace deletion, PVC
//! protection, CRD establishment) is not run. The crate's `README.md` lists what is simulated
//! and what differs from the real systems (nothing runs in the data plane; the launcher pods are
//! real pods to a real kubelet; a second default StorageClass; CRDs without CEL rules); the
//! [`sim`] and [`remote`] modules describe the machinery.
//!
//! # Faults, latency, counters
//!
//! [`TestServer::faults`] injects errors by verb, resource and rate (500, 503, 409, 429 with
//! `Retry-After`, dropped connections) and latency (fixed or uniform), drawn from a `ChaCha8Rng`
//! seeded with [`TestServerBuilder::seed`]. [`TestServer::requests`] records every HTTP request
//! (method, path, query, verb, resource, namespace, name, status, content type, body size) so a
//! test can assert "no polling", "one request per object" or "nothing sent for bad input".
//!
//! # Where the double differs from kube-apiserver, on purpose
//!
//! - Field validation is kube-apiserver's: without `fieldValidation` (or with `Warn`) unknown
//!   fields are pruned and each unknown or duplicate field gets a `Warning` header; `Strict` is
//!   400 `strict decoding error: duplicate field "..", unknown field ".."`; `Ignore` prunes
//!   silently; server-side apply fails on an undeclared field whatever the mode (500 `failed to
//!   create typed patch object ...: field not declared in schema`). Differences: the strict
//!   error lists duplicates first and unknown fields sorted for built-in kinds too (the real
//!   typed decoder interleaves them in document order); duplicate keys are not detected in YAML
//!   bodies or in JSON patch operations; undeclared fields in an apply are printed with list
//!   indexes (`[0]`) where structured-merge-diff prints keys (`[name="a"]`). Writes through
//!   [`Cluster`] (controllers, seeds) are always `Strict`;
//!   [`TestServerBuilder::field_validation`] changes the default of HTTP requests.
//! - One copy per object, no conversion: an object written as `metallb.io/v1beta1` `BGPPeer`
//!   reads back as `v1beta2` with only `apiVersion` changed.
//! - Lists are served at the latest revision: `continue` tokens page through the current state
//!   (not a snapshot) until their revision is compacted (then 410, without the real answer's
//!   inconsistent-continue token); `resourceVersionMatch=Exact` for an older revision is 410.
//!   List and watch options are validated as `ValidateListOptions` does (422); a
//!   `resourceVersion` the store has not reached is waited for 3 s, then 504
//!   `ResourceVersionTooLarge`; `resourceVersion=0` ignores `limit`; built-in list items carry
//!   no `kind`/`apiVersion`. History is compacted on demand ([`Cluster::compact`]) and every
//!   5 minutes ([`TestServerBuilder::compaction_interval`]).
//! - Field management merges lists as their schema declares (`x-kubernetes-list-type` `map` by
//!   `x-kubernetes-list-map-keys`, `set`, `atomic` or unannotated as a whole), custom resources
//!   and built-in kinds alike; an associative item missing a key field is owned as a whole list
//!   (the real server refuses it, or uses the key field's schema default). Strategic merge patch
//!   on built-in kinds knows the usual merge keys and `$patch` directives.
//! - Custom resources get their CRD schema's defaults (on every write and on read). Built-in
//!   kinds get only the defaults, allocations and validation of the `defaults` and `builtin`
//!   modules (namespace finalizer and phase, `Pending` phases, Service type, `clusterIP`, IP
//!   families, node ports, traffic policies, port protocol and target port, Secret
//!   `stringData` and `type`, PVC `volumeMode`, the default StorageClass, the
//!   `kubernetes.io/pvc-protection` finalizer, the `PersistentVolumeClaimResize` admission and
//!   the claim update rules with `RecoverVolumeExpansionFailure`), not the whole of
//!   kube-apiserver's Go validation: e.g. no `kubernetes.io/pv-protection` on PersistentVolumes. `metadata.generation` only on
//!   custom resources and Pods. Mutating admission webhooks registered in process
//!   ([`admission`], e.g. [`Kubemacpool`]'s), no validating ones; no CEL rules, RBAC,
//!   authentication or quotas.
//! - DELETE answers 200 with the object while finalizers hold it, and when it is gone with the
//!   object for pods, services, claims, volumes, namespaces, nodes and storage classes (their
//!   registries' `ReturnDeletedObject`) or a `Status` `Success` for the others; no graceful
//!   deletion (`gracePeriodSeconds` is ignored; pods go at once); no `/scale`, `/log`, `/exec` or other subresources besides
//!   `/status`, a namespace's `/finalize` and KubeVirt's `subresources.kubevirt.io` VM
//!   `start`/`stop`/`restart` (see [`KubeVirtController`]); `as=PartialObjectMetadata[List]`
//!   requests get metadata-only answers as from kube-apiserver. `as=Table` (what `kubectl get` asks for) gets a `Table` with a CRD's
//!   printer columns, but only `Name` and `Age` for built-in kinds.
//! - Answers are JSON only: an `Accept` without a JSON-compatible type (protobuf or YAML only) is
//!   406. Request bodies are JSON, or protobuf for `Namespace`, `ConfigMap` and `Secret` (what
//!   `kubectl create namespace|configmap|secret` send); other protobuf bodies (e.g. `kubectl
//!   create service`) are 415 — `kubectl create -f` and `kubectl apply` send JSON.
//!   `/openapi/v3` documents have no component schemas (`kubectl explain` fails); `/openapi/v2`
//!   is a Swagger 2.0 document of the same paths with a definition per kind holding only its
//!   `x-kubernetes-group-version-kind` and type metadata, in JSON only (its protobuf form is 406). `/healthz`, `/livez` and `/readyz` answer as kube-apiserver does
//!   (`ok`, `?verbose`, one check by name), listing only the checks the double has a meaning for.
//! - Field selectors on built-in kinds accept any field path (the real server has a fixed list per
//!   kind); custom resources accept `metadata.name` and `metadata.namespace` only.
//! - The garbage collector treats owners of kinds the double does not serve as present (foreground
//!   deletion follows kube-controller-manager: only `blockOwnerDeletion` dependents hold).
//!
//! # Building
//!
//! This crate depends on `kube` (for [`TestServer::client`]), which needs a `k8s-openapi`
//! version feature: like any library using kube, enable one in the dev-dependencies of the crate
//! that uses the testkit (the workspace uses `v1_35`). A bare `cargo build -p kubecloud-testkit`
//! without one fails in `k8s-openapi`'s build script; `cargo test` and `cargo clippy --all-targets`
//! do not.

pub mod admission;
mod api;
mod apiextensions;
mod builtin;
mod cluster;
mod controllers;
mod counters;
pub mod csi;
mod defaults;
mod discovery;
mod duplicates;
pub mod fake_cloud;
mod faults;
mod kubevirt_console;
mod kubevirt_guest_agent;
mod kubevirt_subresources;
pub mod linstor;
mod meta;
mod negotiation;
mod openapi_v2;
mod openapi_v3;
mod partial;
mod patch;
mod protobuf;
mod quota;
pub mod remote;
mod routing;
pub mod schema;
mod selectors;
mod server;
pub mod sim;
mod ssa;
mod status;
mod store;
mod table;
mod watch;

pub use api::FieldValidation;
pub use cluster::{Cluster, ObjectEvent};
pub use controllers::authz::{self, Rbac};
pub use controllers::cdi::CdiController;
pub use controllers::cdi_catalog;
pub use controllers::crd::CrdController;
pub use controllers::kubemacpool::{self, Kubemacpool};
pub use controllers::kubeovn::KubeOvnController;
pub use controllers::kubeovn_security;
pub use controllers::kubevirt::{KubeVirtController, KubeVirtKnobs};
pub use controllers::kubevirt_guest::{self, GUEST_AGENT_LABEL};
pub use controllers::kubevirt_snapshot::KubeVirtSnapshotController;
pub use controllers::linstor_csi::LinstorCsi;
pub use controllers::multi_networkpolicy::{self, MultiNetworkPolicyController, MultiPolicies};
pub use controllers::pvc_protection::{PVC_PROTECTION, PvcProtection};
pub use controllers::whereabouts::{self, WhereaboutsController, WhereaboutsKnobs};
pub use controllers::{CiliumBgpControlPlane, cilium_bgp};
pub use controllers::{CiliumLbIpam, MetalLbController, cilium_lbipam, metallb};
pub use controllers::{
    Controller, ControllerApi, ControllerError, ControllerHandle, GarbageCollector,
    NamespaceController, PvcBinder, Watched,
};
pub use controllers::{KubeVipCloudProvider, kubevip_cloud_provider};
pub use counters::{RequestRecord, Requests};
pub use fake_cloud::{FakeCloud, FakeCloudBuilder, FakeCloudError, LoadBalancerSystem};
pub use faults::{Fault, FaultAction, Faults, Latency};
pub use routing::Verb;
pub use server::{StartError, TestServer, TestServerBuilder};
pub use status::ApiError;
pub use store::EventType;
