//! Nodes and VM placement: node selectors against node labels, preferred nodes, spread groups,
//! then the least loaded node, then the first by name; always deterministic.

use std::collections::HashMap;

use kubecloud_core::{Labels, Placement, labels_match};

/// The label every node carries with its name, as on Kubernetes.
pub(crate) const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A cluster node.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) labels: Labels,
    /// VMs assigned to this node (running, starting, or arriving by migration).
    pub(crate) load: u32,
    /// Cordoned: no VM is placed on it and none migrates to it (`spec.unschedulable`).
    pub(crate) unschedulable: bool,
}

impl Node {
    pub(crate) fn new(name: String) -> Self {
        let labels = [(HOSTNAME_LABEL.to_string(), name.clone())].into();
        Self {
            name,
            labels,
            load: 0,
            unschedulable: false,
        }
    }
}

/// Per-tenant spread groups: how many of the group's VMs each node holds.
pub(crate) type SpreadCounts = HashMap<String, Vec<u32>>;

/// The best node for a VM with `placement`, other than `exclude`; `None` if no node matches the
/// selector. Ranks by fewest VMs of the same spread group, then preference order, then load,
/// then node order.
pub(crate) fn choose(
    nodes: &[Node],
    placement: &Placement,
    spread: &SpreadCounts,
    exclude: Option<usize>,
) -> Option<usize> {
    let group = placement
        .spread_group
        .as_ref()
        .and_then(|g| spread.get(g.as_str()));
    nodes
        .iter()
        .enumerate()
        .filter(|(i, node)| {
            Some(*i) != exclude
                && !node.unschedulable
                && labels_match(&placement.node_selector, &node.labels)
        })
        .min_by_key(|(i, node)| {
            let same_group = group.map_or(0, |counts| counts.get(*i).copied().unwrap_or(0));
            let preference = placement
                .preferred_nodes
                .iter()
                .position(|p| *p == node.name)
                .unwrap_or(usize::MAX);
            (same_group, preference, node.load, *i)
        })
        .map(|(i, _)| i)
}

/// How many nodes other than `current` could take a VM with `placement`.
pub(crate) fn other_candidates(
    nodes: &[Node],
    placement: &Placement,
    current: Option<usize>,
) -> usize {
    nodes
        .iter()
        .enumerate()
        .filter(|(i, node)| {
            Some(*i) != current
                && !node.unschedulable
                && labels_match(&placement.node_selector, &node.labels)
        })
        .count()
}

/// Counts a VM of spread group `group` on `node`.
pub(crate) fn assign(
    nodes: &mut [Node],
    spread: &mut SpreadCounts,
    group: Option<&str>,
    node: usize,
) {
    nodes[node].load += 1;
    if let Some(group) = group {
        let len = nodes.len();
        spread
            .entry(group.to_string())
            .or_insert_with(|| vec![0; len])[node] += 1;
    }
}

/// Stops counting a VM of spread group `group` on `node`.
pub(crate) fn unassign(
    nodes: &mut [Node],
    spread: &mut SpreadCounts,
    group: Option<&str>,
    node: usize,
) {
    nodes[node].load = nodes[node].load.saturating_sub(1);
    if let Some(counts) = group.and_then(|g| spread.get_mut(g)) {
        counts[node] = counts[node].saturating_sub(1);
        if counts.iter().all(|c| *c == 0) {
            spread.remove(group.unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<Node> {
        (1..=n).map(|i| Node::new(format!("node-{i}"))).collect()
    }

    #[test]
    fn least_loaded_first_then_node_order() {
        let mut nodes = nodes(3);
        let mut spread = SpreadCounts::new();
        let placement = Placement::default();
        let mut picked = Vec::new();
        for _ in 0..4 {
            let i = choose(&nodes, &placement, &spread, None).unwrap();
            assign(&mut nodes, &mut spread, None, i);
            picked.push(i);
        }
        assert_eq!(picked, vec![0, 1, 2, 0]);
    }

    #[test]
    fn selector_matches_the_hostname_label() {
        let nodes = nodes(3);
        let mut placement = Placement::default();
        placement
            .node_selector
            .insert(HOSTNAME_LABEL.into(), "node-3".into());
        assert_eq!(
            choose(&nodes, &placement, &SpreadCounts::new(), None),
            Some(2)
        );
        assert_eq!(
            choose(&nodes, &placement, &SpreadCounts::new(), Some(2)),
            None
        );
        placement
            .node_selector
            .insert(HOSTNAME_LABEL.into(), "nowhere".into());
        assert_eq!(choose(&nodes, &placement, &SpreadCounts::new(), None), None);
    }

    #[test]
    fn spread_beats_preference_and_preference_beats_load() {
        let mut nodes = nodes(3);
        let mut spread = SpreadCounts::new();
        nodes[1].load = 5;
        let placement = Placement {
            preferred_nodes: vec!["node-2".into()],
            spread_group: Some("db".into()),
            ..Placement::default()
        };
        assert_eq!(choose(&nodes, &placement, &spread, None), Some(1));
        assign(&mut nodes, &mut spread, Some("db"), 1);
        assert_eq!(choose(&nodes, &placement, &spread, None), Some(0));
        unassign(&mut nodes, &mut spread, Some("db"), 1);
        assert!(spread.is_empty());
    }
}
