//! Label selectors as MetalLB's typed models hold them. kopium generates one struct per field
//! that holds a `metav1.LabelSelector` (`serviceAllocation.namespaceSelectors`,
//! `ipAddressPoolSelectors`, …); [`Selector`] reads them all alike, and [`selects`] is the
//! selector semantics of `metav1.LabelSelector` (all `matchLabels` and all `matchExpressions`
//! must hold; an unknown operator selects nothing).

use std::collections::BTreeMap;

use kubecloud_models::metallb::bgp_advertisement::BgpAdvertisementIpAddressPoolSelectors;
use kubecloud_models::metallb::ip_address_pool::{
    IpAddressPoolServiceAllocationNamespaceSelectors,
    IpAddressPoolServiceAllocationServiceSelectors,
};
use kubecloud_models::metallb::l2_advertisement::L2AdvertisementIpAddressPoolSelectors;

/// One `matchExpressions` requirement.
#[derive(Clone, Copy, Debug)]
pub struct Requirement<'a> {
    /// The label key.
    pub key: &'a str,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: &'a str,
    /// The values `In`/`NotIn` compare with.
    pub values: &'a [String],
}

/// A `metav1.LabelSelector` in one of the shapes kopium generates.
pub trait Selector {
    /// Its `matchLabels`.
    fn match_labels(&self) -> Option<&BTreeMap<String, String>>;
    /// Its `matchExpressions`.
    fn requirements(&self) -> Vec<Requirement<'_>>;
}

macro_rules! label_selector {
    ($($t:ty),* $(,)?) => {$(
        impl Selector for $t {
            fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
                self.match_labels.as_ref()
            }
            fn requirements(&self) -> Vec<Requirement<'_>> {
                self.match_expressions
                    .iter()
                    .flatten()
                    .map(|e| Requirement {
                        key: &e.key,
                        operator: &e.operator,
                        values: e.values.as_deref().unwrap_or_default(),
                    })
                    .collect()
            }
        }
    )*};
}

label_selector!(
    IpAddressPoolServiceAllocationNamespaceSelectors,
    IpAddressPoolServiceAllocationServiceSelectors,
    L2AdvertisementIpAddressPoolSelectors,
    BgpAdvertisementIpAddressPoolSelectors,
);

/// Whether `labels` satisfy `selector`.
///
/// ```
/// use std::collections::BTreeMap;
/// use kubecloud_metallb::models::l2_advertisement::L2AdvertisementIpAddressPoolSelectors;
/// use kubecloud_metallb::selectors::selects;
/// let selector = L2AdvertisementIpAddressPoolSelectors {
///     match_labels: Some(BTreeMap::from([("tier".to_string(), "public".to_string())])),
///     ..Default::default()
/// };
/// let labels = BTreeMap::from([("tier".to_string(), "public".to_string())]);
/// assert!(selects(&selector, &labels));
/// assert!(!selects(&selector, &BTreeMap::new()));
/// ```
pub fn selects(selector: &impl Selector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let requirements_ok = selector.requirements().iter().all(|r| {
        let value = labels.get(r.key);
        match r.operator {
            "In" => value.is_some_and(|v| r.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && requirements_ok
}

/// Whether any of `selectors` selects `labels` (none selects nothing).
pub fn any_selects<S: Selector>(selectors: &[S], labels: &BTreeMap<String, String>) -> bool {
    selectors.iter().any(|s| selects(s, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecloud_models::metallb::ip_address_pool::IpAddressPoolServiceAllocationServiceSelectorsMatchExpressions as Expr;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with(operator: &str, values: &[&str]) -> IpAddressPoolServiceAllocationServiceSelectors {
        IpAddressPoolServiceAllocationServiceSelectors {
            match_expressions: Some(vec![Expr {
                key: "tier".into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            match_labels: None,
        }
    }

    #[test]
    fn expressions_follow_label_selector_semantics() {
        let public = labels(&[("tier", "public")]);
        let none = labels(&[]);
        assert!(selects(&with("In", &["public", "dmz"]), &public));
        assert!(!selects(&with("In", &["dmz"]), &public));
        assert!(!selects(&with("In", &["public"]), &none));
        assert!(selects(&with("NotIn", &["dmz"]), &public));
        assert!(selects(&with("NotIn", &["dmz"]), &none));
        assert!(!selects(&with("NotIn", &["public"]), &public));
        assert!(selects(&with("Exists", &[]), &public));
        assert!(!selects(&with("Exists", &[]), &none));
        assert!(selects(&with("DoesNotExist", &[]), &none));
        assert!(!selects(&with("Bogus", &[]), &public));
    }

    #[test]
    fn labels_and_expressions_must_all_hold() {
        let mut selector = with("Exists", &[]);
        selector.match_labels = Some(labels(&[("zone", "a")]));
        assert!(selects(&selector, &labels(&[("tier", "x"), ("zone", "a")])));
        assert!(!selects(
            &selector,
            &labels(&[("tier", "x"), ("zone", "b")])
        ));
        assert!(!any_selects::<IpAddressPoolServiceAllocationServiceSelectors>(&[], &labels(&[])));
    }
}
