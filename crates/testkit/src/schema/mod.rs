//! Upstream schema catalog and validator (being written).
