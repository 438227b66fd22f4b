//! kubecloud facade (being written).
