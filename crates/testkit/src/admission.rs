//! Mutating admission webhooks, as kube-apiserver calls them: a registered [`MutatingWebhook`]
//! sees every create and update of the resources its rules name (main resource only, not
//! `status`), in namespaces its `namespaceSelector` selects, after the object was decoded and
//! defaulted and the built-in mutating admission plugins ran, and before the object is
//! validated and stored (apiserver `pkg/endpoints/handlers/create.go` and `update.go`: mutating
//! admission, then the strategy's validation, then validating admission, then storage). What it
//! changes in the object is what is validated and stored; a denial fails the request with the
//! webhook's code and `admission webhook "<name>" denied the request: <message>`
//! (apiserver `pkg/admission/plugin/webhook/errors/statuserror.go`, `ToStatusErr`: a code below
//! 400 becomes 400).
//!
//! Modelled from `k8s.io/api/admissionregistration/v1` (`MutatingWebhook`: `rules`,
//! `namespaceSelector`, `sideEffects`) and `k8s.io/api/admission/v1` (`AdmissionRequest`:
//! `operation`, `namespace`, `name`, `oldObject`, `dryRun`). The double calls the webhook in
//! process while it holds the store (no HTTP round trip), so the webhook cannot call the API
//! back: what it reads of the cluster is in its [`AdmissionRequest`] (the stored old object)
//! or its own state, which a controller of its own keeps (as a real webhook's informers do).
//!
//! ```
//! use kubecloud_testkit::admission::{AdmissionRequest, Denial, MutatingWebhook, Operation};
//! use serde_json::{Value, json};
//!
//! /// Labels every ConfigMap created in a namespace labelled `stamp: "yes"`.
//! struct Stamp;
//! impl MutatingWebhook for Stamp {
//!     fn name(&self) -> &str { "stamp.example.com" }
//!     fn handles(&self, group: &str, resource: &str, op: Operation) -> bool {
//!         group.is_empty() && resource == "configmaps" && op == Operation::Create
//!     }
//!     fn namespace_selector(&self) -> Value { json!({"matchLabels": {"stamp": "yes"}}) }
//!     fn admit(&self, _: &AdmissionRequest<'_>, object: &mut Value) -> Result<(), Denial> {
//!         object["metadata"]["labels"]["stamped"] = json!("true");
//!         Ok(())
//!     }
//! }
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use crate::status::ApiError;

/// Which write an admission request is (`admission/v1` `Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// POST, or an apply that creates.
    Create,
    /// PUT, PATCH, or an apply that updates.
    Update,
}

/// What a webhook is told about the request (`admission/v1` `AdmissionRequest`).
#[derive(Debug)]
pub struct AdmissionRequest<'a> {
    /// Create or update.
    pub operation: Operation,
    /// API group (`""` for core).
    pub group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// The object's namespace (`""` for cluster-scoped objects).
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The stored object, on an update.
    pub old_object: Option<&'a Value>,
    /// Whether the request is a dry run: a webhook with side effects must not make them
    /// (`sideEffects: NoneOnDryRun`).
    pub dry_run: bool,
}

/// A webhook's refusal (`AdmissionResponse` with `allowed: false` and a `status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The HTTP code the webhook answers with (a code below 400 is sent as 400).
    pub code: u16,
    /// Why.
    pub message: String,
}

impl Denial {
    /// A refusal with `code` and `message`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A mutating admission webhook registered with the API double
/// ([`TestServerBuilder::mutating_webhook`](crate::TestServerBuilder::mutating_webhook)).
pub trait MutatingWebhook: Send + Sync + 'static {
    /// The webhook's name (`mutatevirtualmachines.kubemacpool.io`), in denial messages.
    fn name(&self) -> &str;

    /// Whether its `rules` match the operation on `group`/`resource`.
    fn handles(&self, group: &str, resource: &str, operation: Operation) -> bool;

    /// Its `namespaceSelector` (a `LabelSelector`; `{}` selects every namespace). Matched
    /// against the labels of the object's namespace; cluster-scoped objects are always sent.
    fn namespace_selector(&self) -> Value;

    /// Mutates `object` (the whole object as it would be stored) or refuses the request.
    fn admit(&self, request: &AdmissionRequest<'_>, object: &mut Value) -> Result<(), Denial>;
}

/// Whether a `LabelSelector` (`matchLabels`, `matchExpressions`) selects `labels`: the empty
/// selector selects everything, an unknown operator nothing (apimachinery
/// `metav1.LabelSelectorAsSelector`).
///
/// ```
/// use std::collections::BTreeMap;
/// use kubecloud_testkit::admission::selects;
/// let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
/// assert!(selects(&serde_json::json!({}), &labels));
/// assert!(selects(&serde_json::json!({"matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["x"]}]}), &labels));
/// assert!(!selects(&serde_json::json!({"matchLabels": {"a": "2"}}), &labels));
/// ```
pub fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => labels
                    .get(key)
                    .is_some_and(|v| values.contains(&v.as_str())),
                Some("NotIn") => labels
                    .get(key)
                    .is_none_or(|v| !values.contains(&v.as_str())),
                Some("Exists") => labels.contains_key(key),
                Some("DoesNotExist") => !labels.contains_key(key),
                _ => false,
            }
        });
    exact && expressions
}

/// The labels of a stored object.
pub(crate) fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// The denial as kube-apiserver answers it (`ToStatusErr`).
pub(crate) fn denied(webhook: &str, denial: Denial) -> ApiError {
    // controller-runtime's `admission.Errored(code, err)` sets the code and message only.
    let code = denial.code.max(400);
    let message = if denial.message.is_empty() {
        format!("admission webhook {webhook:?} denied the request without explanation")
    } else {
        format!(
            "admission webhook {webhook:?} denied the request: {}",
            denial.message
        )
    };
    ApiError::new(code, "", message)
}
