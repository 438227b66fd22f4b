//! Typed Rust models of the kinds kubecloud's backends send and read, **generated** from the
//! upstream CRDs (`../shared/upstream`, see its `PROVENANCE.md`) with
//! [kopium](https://github.com/kube-rs/kopium) 0.24.1. Nothing here is written by hand except
//! this file: every other module is the output of `crates/models/generate.sh`, and CI fails when
//! the committed modules differ from what that command produces (whenever the upstream schemas
//! are beside the repository). Each generated file names the upstream file, the CRD version and
//! the upstream commit it came from.
//!
//! | module | system | kinds |
//! |---|---|---|
//! | [`kubevirt`] | KubeVirt | `VirtualMachine`, `VirtualMachineInstance`, `VirtualMachineInstanceMigration` (`kubevirt.io/v1`); `VirtualMachineSnapshot`, `VirtualMachineRestore` (`snapshot.kubevirt.io/v1beta1`) |
//! | [`cdi`] | CDI | `DataVolume`, `DataSource`, `DataImportCron` (`cdi.kubevirt.io/v1beta1`) |
//! | [`kubeovn`] | Kube-OVN | `Vpc`, `Subnet`, `IP`, `Vip`, `SecurityGroup`, `OvnEip`, `OvnFip`, `OvnSnatRule` (`kubeovn.io/v1`) |
//! | [`cilium`] | Cilium | `CiliumLoadBalancerIPPool`, `CiliumBGPClusterConfig`, `CiliumBGPPeerConfig`, `CiliumBGPAdvertisement` (`cilium.io/v2`); `CiliumL2AnnouncementPolicy` (`cilium.io/v2alpha1`) |
//! | [`metallb`] | MetalLB | `IPAddressPool`, `L2Advertisement`, `BGPAdvertisement`, `BFDProfile`, `Community` (`metallb.io/v1beta1`); `BGPPeer` (`metallb.io/v1beta2`) |
//! | [`piraeus`] | Piraeus | `LinstorCluster` (`piraeus.io/v1`) |
//! | [`snapshot`] | CSI snapshots | `VolumeSnapshot`, `VolumeSnapshotContent` (`snapshot.storage.k8s.io/v1`) |
//! | [`multus`] | Multus | `NetworkAttachmentDefinition` (`k8s.cni.cncf.io/v1`) |
//! | [`whereabouts`] | whereabouts | `IPPool`, `OverlappingRangeIPReservation` (`whereabouts.cni.cncf.io/v1alpha1`) |
//! | [`multi_networkpolicy`] | multi-networkpolicy | `MultiNetworkPolicy` (`k8s.cni.cncf.io/v1beta1`) |
//!
//! Every kind is a `kube::CustomResource` (so `kube::Api<VirtualMachine>` works), with `Clone`,
//! `Debug`, `PartialEq` and, where every field allows it, `Default`. Field names follow Rust
//! conventions and serialize to the upstream names. Optional upstream fields are `Option`s; a
//! required field missing from an object, or a field of the wrong type, is a decode error naming
//! the field.
//!
//! Two choices keep the models as lax as the upstream CRDs, never stricter:
//! - **Conditions are each system's own** (`--no-condition`): kopium would otherwise map any
//!   list of conditions to `metav1.Condition`, whose `lastTransitionTime`, `reason` and `message`
//!   are required, while CDI, KubeVirt and Kube-OVN write conditions without them (an empty
//!   `message` is omitted, an unset time is `null`).
//! - **A missing `spec`**: kube-derive gives every root a required `spec`, but most CRDs do not
//!   require one (MetalLB's `L2Advertisement` announcing every pool has none). Reading through
//!   `kubecloud-kube` fills in an empty `spec` for such objects (`kubecloud_kube::convert` and
//!   every typed get, list and watch); decoding one with `serde_json` directly does not.
//!
//! Kinds kopium cannot generate are not here: `VolumeSnapshotClass` keeps its fields at the top
//! level, without a `spec`, which kopium does not model.
//!
//! Why kopium and not a published crate: no maintained crate matches these upstream versions
//! field by field (the KubeVirt, Kube-OVN and MetalLB CRDs move with every release); kopium is
//! kube-rs' own generator and produces `kube`-native types from exactly the CRDs the tests
//! validate against.
//!
//! ```
//! use kubecloud_models::kubeovn::Vip;
//! let vip: Vip = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "kubeovn.io/v1", "kind": "Vip",
//!     "metadata": {"name": "acme-db"},
//!     "spec": {"subnet": "acme-front", "namespace": "acme", "v4ip": "10.1.0.10"},
//! }))?;
//! assert_eq!(vip.spec.v4ip.as_deref(), Some("10.1.0.10"));
//! # Ok::<(), serde_json::Error>(())
//! ```

#![allow(missing_docs)]
#![allow(clippy::all, clippy::pedantic)]
// The descriptions are the CRDs' own text: brackets and angle brackets in them are not links or HTML.
#![allow(
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]

pub mod cdi;
pub mod cilium;
pub mod kubeovn;
pub mod kubevirt;
pub mod metallb;
pub mod multi_networkpolicy;
pub mod multus;
pub mod piraeus;
pub mod snapshot;
pub mod whereabouts;
