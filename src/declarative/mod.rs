//! Tenants as one unit: describe a tenant once ([`TenantSpec`]), see what applying it would do
//! ([`Plan`]), carry it out ([`crate::TenantHandle::apply`]) and remove it
//! ([`crate::TenantHandle::destroy`]).
//!
//! Names are deterministic and every backend labels what it creates with the tenant, so no
//! local state is needed: an interrupted apply, applied again, converges.

mod apply;
mod order;
mod plan;
mod quota;
mod spec;
mod validate;

pub use apply::{ApplyEvent, ApplyOptions, ApplyReport, Progress};
#[cfg(feature = "kubernetes")]
pub(crate) use plan::check_references_within;
pub use plan::{Action, FieldChange, Plan, Step};
pub use spec::TenantSpec;
