//! kubecloud in-memory backend (being written).
