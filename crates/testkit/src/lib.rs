//! kubecloud testkit (being written).
pub mod schema;
