//! kubecloud core (being written).
