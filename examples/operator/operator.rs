//! The operator as a library: the `Tenant` resource, the reconciler and the cloud it drives.
//! `main.rs` wraps it in a command; `tests/operator.rs` runs it against the testkit doubles.
#![allow(dead_code, reason = "the binary and the tests each use a part")]

#[path = "cloud.rs"]
pub mod cloud;
#[path = "reconcile.rs"]
pub mod reconcile;
#[path = "resource.rs"]
pub mod resource;
