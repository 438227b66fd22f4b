//! The reconciler: one `Tenant` object is one kubecloud tenant. Apply plans and applies its spec
//! and reports conditions and the plan summary on the status subresource; deletion destroys the
//! tenant through a finalizer before the object goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kubecloud::{ApplyOptions, Cloud, TenantHandle};
use serde_json::json;
use tracing::{info, warn};

use super::resource::{Condition, PlanSummary, Tenant, TenantStatus};

/// The finalizer that keeps a `Tenant` until its resources are destroyed.
pub const FINALIZER: &str = "kubecloud.io/destroy-tenant";
/// The field manager of status writes (server-side apply on the status subresource).
pub const STATUS_MANAGER: &str = "kubecloud-operator";
/// How often a healthy tenant is planned again, to repair drift.
pub const RESYNC: Duration = Duration::from_secs(300);
/// The first retry delay after a temporary error; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a reconcile failed. Temporary failures are retried with backoff (see [`error_policy`]);
/// permanent ones are reported as the `Failed` condition instead of being returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes request failed (writing status, the finalizer).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// kubecloud failed with a temporary error.
    #[error("{0}")]
    Cloud(#[from] kubecloud::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// What the reconciler needs.
pub struct Context {
    /// The client the `Tenant` objects are read and written with.
    pub client: kube::Client,
    /// The cloud tenants are applied to.
    pub cloud: Cloud,
    /// How plans are applied and tenants destroyed.
    pub apply: ApplyOptions,
    /// Consecutive temporary failures per tenant, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The generation last brought to a final state (ready or failed) per tenant, and when.
    settled: Mutex<HashMap<String, (Option<i64>, Instant)>>,
}

impl Context {
    /// A context with default apply options.
    pub fn new(client: kube::Client, cloud: Cloud) -> Arc<Self> {
        Arc::new(Context {
            client,
            cloud,
            apply: ApplyOptions::default(),
            failures: Mutex::default(),
            settled: Mutex::default(),
        })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this generation of the tenant was settled less than [`RESYNC`] ago: then a
    /// reconcile (triggered by the operator's own status write) has nothing to do.
    fn is_settled(&self, name: &str, generation: Option<i64>) -> bool {
        let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        settled
            .get(name)
            .is_some_and(|(g, at)| *g == generation && at.elapsed() < RESYNC)
    }

    fn settle(&self, name: &str, generation: Option<i64>) {
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        settled.insert(name.to_owned(), (generation, Instant::now()));
    }

    fn unsettle(&self, name: &str) {
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        settled.remove(name);
    }
}

/// Runs the controller until the watch ends. Every change of a `Tenant` (its own status writes
/// too) triggers a reconcile; one whose generation is already settled returns at once without a
/// request (see [`Context`]), so only spec changes, deletion and the periodic resync plan again.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((tenant, action)) => tracing::debug!(%tenant, ?action, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

/// Reconciles one `Tenant`: the finalizer first, then apply or destroy.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let name = tenant.name_any();
    let action = finalizer::finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Event::Apply(t) => apply(&t, &api, &ctx).await,
            Event::Cleanup(t) => cleanup(&t, &api, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.failures().remove(&name);
    Ok(action)
}

/// Requeues after a temporary failure: 0.5 s, doubling per consecutive failure, at most 5 min.
pub fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures();
    let n = failures.entry(tenant.name_any()).or_insert(0);
    let delay = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(*n))
        .min(MAX_BACKOFF);
    *n = n.saturating_add(1);
    warn!(tenant = %tenant.name_any(), %error, retry_in = ?delay, "reconcile failed; will retry");
    Action::requeue(delay)
}

/// The tenant the object stands for; an error when its name is not a valid tenant name.
fn tenant_of(t: &Tenant, ctx: &Context) -> Result<TenantHandle, kubecloud::Error> {
    ctx.cloud.tenant(&t.name_any())
}

async fn apply(t: &Tenant, api: &Api<Tenant>, ctx: &Context) -> Result<Action, Error> {
    let name = t.name_any();
    let generation = t.meta().generation;
    if ctx.is_settled(&name, generation) {
        return Ok(Action::requeue(RESYNC));
    }
    let handle = match tenant_of(t, ctx) {
        Ok(h) => h,
        Err(e) => {
            let message = format!("the name is not a valid tenant name: {e}");
            fail(t, api, "InvalidName", &message).await?;
            ctx.settle(&name, generation);
            return Ok(Action::await_change());
        }
    };
    let spec = match t.spec.to_tenant_spec() {
        Ok(spec) => spec,
        Err(e) => {
            fail(t, api, "InvalidSpec", &e.to_string()).await?;
            ctx.settle(&name, generation);
            return Ok(Action::await_change());
        }
    };
    let plan = match handle.plan(&spec).await {
        Ok(plan) => plan,
        Err(e) => return give_up_or_retry(t, api, ctx, "PlanFailed", e).await,
    };
    let summary = PlanSummary::of(&plan, generation);
    if !plan.is_empty() {
        info!(tenant = %name, steps = plan.steps.len(), "applying");
        let message = format!("applying {} steps", plan.steps.len());
        let mut status = status_of(t);
        status.plan = Some(PlanSummary {
            last_applied_generation: status.plan.and_then(|p| p.last_applied_generation),
            ..summary.clone()
        });
        set(
            &mut status,
            generation,
            "Progressing",
            true,
            "Applying",
            &message,
        );
        set(
            &mut status,
            generation,
            "Ready",
            false,
            "Applying",
            &message,
        );
        set(&mut status, generation, "Failed", false, "Applying", "");
        write_status(api, &name, &status).await?;
        if let Err(e) = handle.apply(&plan, ctx.apply).await {
            return give_up_or_retry(t, api, ctx, "ApplyFailed", e).await;
        }
    }
    let mut status = status_of(t);
    if !plan.is_empty() || status.plan.is_none() {
        status.plan = Some(summary);
    }
    let message = "the tenant matches its spec";
    set(&mut status, generation, "Ready", true, "Applied", message);
    set(
        &mut status,
        generation,
        "Progressing",
        false,
        "Applied",
        message,
    );
    set(&mut status, generation, "Failed", false, "Applied", "");
    write_status(api, &name, &status).await?;
    ctx.settle(&name, generation);
    info!(tenant = %name, ?generation, "ready");
    Ok(Action::requeue(RESYNC))
}

async fn cleanup(t: &Tenant, api: &Api<Tenant>, ctx: &Context) -> Result<Action, Error> {
    let Ok(handle) = tenant_of(t, ctx) else {
        // Nothing was ever created under an invalid name.
        return Ok(Action::await_change());
    };
    info!(tenant = %t.name_any(), "destroying");
    ctx.unsettle(&t.name_any());
    match handle.destroy(ctx.apply).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) => {
            let mut status = status_of(t);
            let generation = t.meta().generation;
            let message = format!("destroying the tenant: {e}");
            set(
                &mut status,
                generation,
                "Progressing",
                true,
                "Destroying",
                &message,
            );
            write_status(api, &t.name_any(), &status).await?;
            Err(e.into())
        }
    }
}

/// Reports a permanent failure as the `Failed` condition (nothing to retry until the spec
/// changes), or returns a temporary one for [`error_policy`] to retry.
async fn give_up_or_retry(
    t: &Tenant,
    api: &Api<Tenant>,
    ctx: &Context,
    reason: &str,
    e: kubecloud::Error,
) -> Result<Action, Error> {
    if e.is_temporary() {
        let mut status = status_of(t);
        let message = format!("will retry: {e}");
        set(
            &mut status,
            t.meta().generation,
            "Progressing",
            true,
            "Retrying",
            &message,
        );
        write_status(api, &t.name_any(), &status).await?;
        return Err(e.into());
    }
    fail(t, api, reason, &e.to_string()).await?;
    ctx.settle(&t.name_any(), t.meta().generation);
    Ok(Action::await_change())
}

async fn fail(t: &Tenant, api: &Api<Tenant>, reason: &str, message: &str) -> Result<(), Error> {
    warn!(tenant = %t.name_any(), reason, message, "tenant failed");
    let generation = t.meta().generation;
    let mut status = status_of(t);
    set(&mut status, generation, "Failed", true, reason, message);
    set(&mut status, generation, "Ready", false, reason, message);
    set(
        &mut status,
        generation,
        "Progressing",
        false,
        reason,
        message,
    );
    write_status(api, &t.name_any(), &status).await
}

fn status_of(t: &Tenant) -> TenantStatus {
    t.status.clone().unwrap_or_default()
}

/// Sets condition `type_`, keeping its transition time if its status does not change.
fn set(
    status: &mut TenantStatus,
    generation: Option<i64>,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
) {
    let value = if value { "True" } else { "False" };
    let since = status
        .condition(type_)
        .filter(|c| c.status == value)
        .map(|c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: since.unwrap_or_else(now),
        observed_generation: generation,
    };
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(condition);
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status.observed_generation = generation;
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Server-side apply of the whole status with the operator's own field manager.
async fn write_status(api: &Api<Tenant>, name: &str, status: &TenantStatus) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": Tenant::api_version(&()),
        "kind": Tenant::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}
