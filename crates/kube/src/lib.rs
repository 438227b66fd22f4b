//! # kubecloud-kube
//!
//! The one place where kubecloud speaks Kubernetes, shared by every backend:
//!
//! - [`ownership`]: the tenant → namespace mapping, the ownership labels every object carries,
//!   and [`ensure_owned`], the check that an object belongs to the calling tenant (answering
//!   "not found" otherwise, so tenants cannot probe each other);
//! - [`Writer`]: server-side apply with one field manager, skipping objects that would not
//!   change, idempotent deletes, retries of temporary failures with backoff;
//! - [`wait_for`] / [`object_states`]: waiting through watches (never polling), failing fast on
//!   terminal states, with explicit timeouts; dropped watches resume;
//! - [`Informers`]: one shared watch per kind feeding every wait on objects of that kind
//!   ([`Writer::wait_for`], [`Writer::states`]), so waiting for a thousand VMs opens a handful of
//!   watches, not thousands;
//! - [`from_kube`]: the mapping of API server answers (status codes and `Status` bodies) to
//!   [`kubecloud_core::Error`].
//!
//! ## Crates chosen, and why
//! - `kube` + `k8s-openapi` + `kube-runtime` (through `kube`'s `runtime` feature): the standard
//!   Kubernetes client; its watcher resumes dropped watches and handles `410 Gone` (used by
//!   [`wait_for`]/[`object_states`]). [`Informers`] runs the same list-then-watch loop written
//!   out on `kube`'s `Api::list`/`Api::watch`, because kube-runtime's watcher does not expose
//!   the revision of its list, which the shared store needs (see the `informers` module docs).
//! - `memchr`: finds `"managedFields"` in list bodies quickly, so lists are decoded without
//!   that field (nothing here reads it from lists, and decoding it cost more than the rest).
//! - `http`/`http-body-util`: list bodies are read into one buffer of the announced length
//!   through `Client::send` rather than `Client::request_text`, which copies megabyte bodies twice
//!   and checks them as UTF-8 before the JSON decoder does it again.
//! - `backon`: retries with jittered exponential backoff (well kept, async-native), used only for
//!   errors that [`kubecloud_core::Error::is_temporary`] marks temporary.

mod apply;
mod decode;
mod delete;
mod errors;
mod informers;
mod lean;
mod lists;
pub mod names;
mod namespace;
pub mod ownership;
pub mod render;
mod retry;
mod wait;

pub mod cdi;
pub mod claims;
pub mod connect;
pub mod exposure;
pub mod plugin;
pub mod quota;

pub use apply::{APPLIED_HASH, Writer, applied_hash, holds, is_subset};
pub use decode::convert;
pub use errors::{from_kube, is_not_found};
pub use informers::Informers;
pub use lists::shared_lists;
pub use namespace::{ensure_namespace, namespace_object};
pub use ownership::{
    FIELD_MANAGER, MANAGED_BY, MANAGER, NAME, TENANT, ensure_owned, is_owned, ownership_labels,
    tenant_namespace, tenant_selector,
};
pub use retry::RetryPolicy;
pub use wait::{object_states, object_summary, wait_described, wait_for, wait_on};

/// Re-exported so backends name the same versions.
pub use k8s_openapi;
/// Re-exported so backends name the same versions.
pub use kube;
