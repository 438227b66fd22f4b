//! `ResourceQuota`, as kube-apiserver's quota admission plugin and kube-controller-manager's
//! resource quota controller enforce and maintain it.
//!
//! Modelled on kubernetes' source (read, not copied):
//! - `staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go`
//!   (`CheckRequest`): the quotas of the object's namespace whose `status.hard` names a
//!   resource the object's evaluator tracks are pertinent; a pod missing a request or limit a
//!   quota constrains is refused (`failed quota: <name>: must specify <res>`); a pertinent quota
//!   without `status.used` for those resources is refused (`status unknown for quota: ...`);
//!   the object's usage (on update: the growth over the old object, never negative) is added
//!   to `status.used`, and a request taking any resource past `status.hard` is refused with
//!   403 Forbidden `<resource> "<name>" is forbidden: exceeded quota: <quota>, requested:
//!   <res>=<q>, used: <res>=<q>, limited: <res>=<q>` (resources sorted, only those exceeded).
//!   Otherwise the new usage is written to every pertinent quota's `status.used` in the same
//!   transaction as the object, so two racing creates can never both pass a limit (the real
//!   plugin gets the same from its optimistic-concurrency update of the quota). Writes to the
//!   `status` subresource are charged but never refused. Dry runs are checked, not charged.
//! - `pkg/quota/v1/evaluator/core/` (`pods.go`, `persistent_volume_claims.go`, `services.go`)
//!   and the generic object-count evaluator: see [`usage`].
//! - `pkg/controller/resourcequota/resource_quota_controller.go` (`syncResourceQuota`):
//!   `status.hard` is `spec.hard`, and `status.used` is recomputed from every object of the
//!   namespace. The real controller does this asynchronously (a new quota answers `status
//!   unknown` until it has run, deletions are released on its next sync); the double does it
//!   in the write that creates or changes a quota and in the one that deletes a counted object.
//!
//! Not modelled: quota scopes and scope selectors (a quota with either is pertinent to every
//! object, which is stricter), `LimitedResources` admission configuration, extended resources.

pub(crate) mod quantity;
pub(crate) mod usage;

use serde_json::{Map, Value, json};

use crate::status::ApiError;
use crate::store::{ObjKey, Txn};
use quantity::Amount;
use usage::{Evaluator, ResourceList};

const GROUP: &str = "";
const PLURAL: &str = "resourcequotas";

/// Whether the resource is `ResourceQuota` itself.
pub(crate) fn is_quota(group: &str, plural: &str) -> bool {
    group == GROUP && plural == PLURAL
}

fn parse_list(v: &Value) -> ResourceList {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Amount::from_json(q).map(|a| (k.clone(), a)))
        .collect()
}

fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// `prettyPrint`: `name=quantity` pairs sorted by name, joined by commas.
fn pretty(list: &ResourceList, keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("{k}={}", list.get(k).copied().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// One write to admit: what is written, and the stored object it replaces.
pub(crate) struct Request<'a> {
    pub(crate) group: &'a str,
    pub(crate) plural: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) new: &'a Value,
    pub(crate) old: Option<&'a Value>,
    /// A write to the `status` subresource: charged, never refused.
    pub(crate) status_only: bool,
    pub(crate) dry_run: bool,
}

/// Quota admission of one create or update (see the module docs). On success the pertinent
/// quotas' `status.used` carry the new usage (unless a dry run).
pub(crate) fn admit(txn: &mut Txn<'_>, req: &Request<'_>) -> Result<(), ApiError> {
    if req.namespace.is_empty() || is_quota(req.group, req.plural) {
        return Ok(());
    }
    let evaluator = Evaluator::of(req.group, req.plural);
    if req.old.is_some() && !evaluator.handles_update() {
        return Ok(());
    }
    let quotas = txn.list(GROUP, PLURAL, Some(req.namespace));
    if quotas.is_empty() {
        return Ok(());
    }
    let forbidden = |message: String| ApiError::forbidden(req.group, req.plural, req.name, message);
    let mut pertinent = Vec::new();
    for (key, quota) in quotas {
        let quota_name = key.name.clone();
        let hard = parse_list(&quota["status"]["hard"]);
        let restricted: Vec<&str> = hard
            .keys()
            .map(String::as_str)
            .filter(|r| evaluator.matches(req.group, req.plural, r))
            .collect();
        if restricted.is_empty() {
            continue;
        }
        let missing = evaluator.missing(req.new, &restricted);
        if !missing.is_empty() {
            return Err(forbidden(format!(
                "failed quota: {quota_name}: must specify {}",
                missing.join(",")
            )));
        }
        let used = parse_list(&quota["status"]["used"]);
        if restricted.iter().any(|r| !used.contains_key(*r)) {
            let mut names: Vec<&str> = restricted.clone();
            names.sort_unstable();
            return Err(forbidden(format!(
                "status unknown for quota: {quota_name}, resources: {}",
                names.join(",")
            )));
        }
        pertinent.push((key, quota, hard, used));
    }
    if pertinent.is_empty() {
        return Ok(());
    }
    let input = evaluator.usage(req.group, req.plural, req.new);
    if let Some((name, _)) = input.iter().find(|(_, a)| a.is_negative()) {
        return Err(forbidden(format!(
            "quota usage is negative for resource(s): {name}"
        )));
    }
    let delta: ResourceList = match req.old {
        Some(old) => {
            let before = evaluator.usage(req.group, req.plural, old);
            input
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.minus_floor(before.get(k).copied().unwrap_or_default()),
                    )
                })
                .collect()
        }
        None => input,
    };
    let delta: ResourceList = delta.into_iter().filter(|(_, v)| !v.is_zero()).collect();
    if delta.is_empty() {
        return Ok(());
    }
    let mut updates = Vec::new();
    for (key, mut quota, hard, used) in pertinent {
        let requested: ResourceList = delta
            .iter()
            .filter(|(k, _)| hard.contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            continue;
        }
        let mut new_used = used.clone();
        for (k, v) in &requested {
            let now = new_used.get(k).copied().unwrap_or_default().plus(*v);
            new_used.insert(k.clone(), now);
        }
        if !req.status_only {
            let exceeded: Vec<String> = requested
                .keys()
                .filter(|k| new_used[*k] > hard[*k])
                .cloned()
                .collect();
            if !exceeded.is_empty() {
                tracing::debug!(quota = %key.name, namespace = req.namespace, ?exceeded, "quota exceeded");
                return Err(forbidden(format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    key.name,
                    pretty(&requested, &exceeded),
                    pretty(&used, &exceeded),
                    pretty(&hard, &exceeded),
                )));
            }
        }
        quota["status"]["used"] = to_json(&new_used);
        updates.push((key, quota));
    }
    if !req.dry_run {
        for (key, quota) in updates {
            txn.put(key, quota);
        }
    }
    Ok(())
}

/// What the resource quota controller does for every quota of `namespace`: `status.hard` from
/// `spec.hard`, `status.used` counted from the namespace's objects. Writes only what changed.
pub(crate) fn sync(txn: &mut Txn<'_>, namespace: &str) {
    if namespace.is_empty() {
        return;
    }
    let quotas = txn.list(GROUP, PLURAL, Some(namespace));
    if quotas.is_empty() {
        return;
    }
    let mut totals = ResourceList::new();
    for (plural, evaluator) in [
        ("pods", Evaluator::Pods),
        ("persistentvolumeclaims", Evaluator::Claims),
        ("services", Evaluator::Services),
    ] {
        for (_, object) in txn.range("", plural, Some(namespace)) {
            for (k, v) in evaluator.usage("", plural, object) {
                let now = totals.get(&k).copied().unwrap_or_default().plus(v);
                totals.insert(k, now);
            }
        }
    }
    for (key, mut quota) in quotas {
        let hard = parse_list(&quota["spec"]["hard"]);
        let used: ResourceList = hard
            .keys()
            .map(|k| (k.clone(), used_of(txn, namespace, k, &totals)))
            .collect();
        let status = json!({"hard": to_json(&hard), "used": to_json(&used)});
        if quota["status"] != status {
            quota["status"] = status;
            txn.put(key, quota);
        }
    }
}

/// The namespace's use of `resource`: from the evaluators' totals, or an object count.
fn used_of(txn: &Txn<'_>, namespace: &str, resource: &str, totals: &ResourceList) -> Amount {
    if let Some(a) = totals.get(resource) {
        return *a;
    }
    if let Some(counted) = resource.strip_prefix("count/") {
        let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
        return Amount::count(txn.range(group, plural, Some(namespace)).count() as u64);
    }
    Amount::count(0)
}

/// Whether a write to `key` calls for [`sync`] of its namespace: a quota itself changed, or a
/// counted object went away.
pub(crate) fn touches(key: &ObjKey, txn: &Txn<'_>) -> bool {
    !key.namespace.is_empty()
        && (is_quota(&key.group, &key.resource)
            || txn
                .range(GROUP, PLURAL, Some(&key.namespace))
                .next()
                .is_some())
}
