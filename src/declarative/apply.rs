//! Carrying out a [`Plan`]: each step as soon as the steps it depends on are done (the graph of
//! `order.rs`), independent steps in parallel with bounded concurrency, waiting through watches,
//! reporting progress, stopping cleanly on failure.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::sync::{Semaphore, SemaphorePermit};

use kubecloud_core::wait::{self, Deadline, Observed};
use kubecloud_core::{Error, ResourceKind, Result, RunStrategy};

use super::plan::{Action, Desired, Plan, Step};
use super::spec::TenantSpec;
use crate::TenantHandle;

/// How to apply a plan.
///
/// ```
/// let options = kubecloud::ApplyOptions { concurrency: 32, ..Default::default() };
/// assert!(options.wait);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    /// Steps being sent at once, at most this many (the bound on requests in flight). Waiting
    /// for a sent resource to be ready or gone does not count against it: waits go through one
    /// shared watch per kind and send nothing.
    pub concurrency: usize,
    /// Wait until created resources are ready (VMs running, volumes ready, addresses assigned)
    /// and deleted ones are gone before the steps that depend on them start. Without it, each
    /// step is sent and not waited on, not even inside the backends
    /// ([`wait::send_only`](kubecloud_core::wait::send_only)): Kube-OVN's VPCs and subnets are
    /// sent without waiting for Kube-OVN to report them ready. What still waits is what a later
    /// step cannot be sent without: a Kube-OVN IP reservation's address and MAC (the VM using
    /// it is pinned to them) and some deletions (the next step may reuse the name or the
    /// address). Each backend declares these ([`Cloud::kept_waits`](crate::Cloud::kept_waits)),
    /// and the plan reports them on its steps ([`Plan::kept_waits`]).
    pub wait: bool,
    /// The deadline of the whole apply, or of the whole [`TenantHandle::destroy`]: every step,
    /// and every wait inside it (the backends' own waits included, whatever their own timeouts),
    /// ends by `timeout` after the call started, not `timeout` per step or per object. A step
    /// still running then fails with [`Error::Timeout`], naming the resource, what it waited for
    /// and the last state seen (for a claim a pod still uses: `PersistentVolumeClaim
    /// acme/web-root: phase Bound, deletionTimestamp set, finalizers
    /// [kubernetes.io/pvc-protection]`). A rollback after a failed apply gets a `timeout` of
    /// its own.
    pub timeout: Duration,
    /// On failure, delete what this apply created (in reverse order).
    pub rollback_on_failure: bool,
    /// Allow a plan that deletes everything the tenant has ([`Plan::deletes_everything`]: an
    /// empty spec applied to a tenant that has something). Off by default, so an empty or
    /// comment-only file is refused rather than taken as "remove it all";
    /// [`TenantHandle::destroy`] sets it.
    pub allow_delete_all: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            wait: true,
            timeout: Duration::from_secs(300),
            rollback_on_failure: false,
            allow_delete_all: false,
        }
    }
}

/// Where one resource stands during an apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Progress {
    /// Planned, not started.
    Pending,
    /// Being sent.
    Applying,
    /// Sent; waiting for it to be ready (or gone).
    Waiting,
    /// Done.
    Ready,
    /// Failed, with the reason.
    Failed(String),
    /// Deleted again by a rollback.
    RolledBack,
}

/// One progress event of an apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplyEvent {
    /// The resource's kind.
    pub kind: ResourceKind,
    /// The resource's name.
    pub name: String,
    /// What is done to it.
    pub action: Action,
    /// Where it stands.
    pub progress: Progress,
}

/// What an apply did and did not do.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    /// Steps carried out, in the order they finished.
    pub done: Vec<(Action, ResourceKind, String)>,
    /// Steps that failed, with the reason.
    pub failed: Vec<(Action, ResourceKind, String, String)>,
    /// Steps not started because an earlier one failed.
    pub not_started: Vec<(Action, ResourceKind, String)>,
    /// Resources this apply created and then deleted again (with `rollback_on_failure`).
    pub rolled_back: Vec<(ResourceKind, String)>,
}

impl ApplyReport {
    /// Whether every step was carried out.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty()
    }
}

/// Whether a create found the resource made meanwhile by another apply, and took it over.
enum TakenOver {
    Yes,
    No,
}

/// Refuses a plan that deletes everything the tenant has unless the options allow it.
fn check_delete_all(plan: &Plan, options: ApplyOptions) -> Result<()> {
    if plan.deletes_everything && !options.allow_delete_all {
        return Err(Error::invalid(
            "allowDeleteAll",
            format!(
                "the spec describes nothing, so applying it would delete all {} resources of \
                 tenant {}; set ApplyOptions::allow_delete_all (`--allow-delete-all`) or use destroy",
                plan.count(Action::Delete),
                plan.tenant
            ),
        ));
    }
    Ok(())
}

type Sink<'a> = &'a (dyn Fn(ApplyEvent) + Send + Sync);

/// A step's result, and whether it created something.
type StepOutcome = (Result<()>, bool);

impl TenantHandle {
    /// Carries out `plan` (see [`TenantHandle::apply_with_progress`]); fails with the first
    /// failed step's own error (typed: a [`Error::Timeout`] names the resource, what was awaited
    /// and the last state seen; a refusal names the field), after finishing or stopping what
    /// was in flight.
    pub async fn apply(&self, plan: &Plan, options: ApplyOptions) -> Result<ApplyReport> {
        check_delete_all(plan, options)?;
        match self.carry_out(plan, options, &|_| {}).await {
            (report, None) => Ok(report),
            (_, Some(first_error)) => Err(first_error),
        }
    }

    /// Carries out `plan`, calling `on_event` for every change of a resource's progress.
    /// Deletions come first, dependents before dependencies; then creations and changes, each
    /// as soon as what its spec names is done (a VM once its subnet, volumes and security groups
    /// are ready; an exposure once the VMs it selects run, without waiting for the others), in
    /// parallel, at most [`ApplyOptions::concurrency`] sending at once. After a failure no new
    /// step starts; steps in flight finish; the report says exactly what was and was not done.
    /// Applying the same spec again converges.
    pub async fn apply_with_progress(
        &self,
        plan: &Plan,
        options: ApplyOptions,
        on_event: &(dyn Fn(ApplyEvent) + Send + Sync),
    ) -> ApplyReport {
        if let Err(refused) = check_delete_all(plan, options) {
            // Nothing starts: the whole plan is refused.
            return ApplyReport {
                failed: vec![(
                    Action::Delete,
                    ResourceKind::Tenant,
                    plan.tenant.to_string(),
                    refused.to_string(),
                )],
                not_started: plan
                    .steps
                    .iter()
                    .map(|s| (s.action, s.kind, s.name.clone()))
                    .collect(),
                ..ApplyReport::default()
            };
        }
        self.carry_out(plan, options, on_event).await.0
    }

    /// [`TenantHandle::apply_with_progress`], also returning the first failed step's own error.
    /// The steps run under one [`Deadline`], [`ApplyOptions::timeout`] from now; a rollback
    /// under another.
    async fn carry_out(
        &self,
        plan: &Plan,
        options: ApplyOptions,
        on_event: Sink<'_>,
    ) -> (ApplyReport, Option<Error>) {
        if let Some(quota) = &plan.quota
            && let Err(refused) = self.set_quota(quota).await
        {
            // The quota comes first: nothing else starts without it.
            let report = ApplyReport {
                failed: vec![(
                    Action::Update,
                    ResourceKind::Tenant,
                    plan.tenant.to_string(),
                    refused.to_string(),
                )],
                not_started: plan
                    .steps
                    .iter()
                    .map(|s| (s.action, s.kind, s.name.clone()))
                    .collect(),
                ..ApplyReport::default()
            };
            return (report, Some(refused));
        }
        // Boxed: the futures of an apply are deep, and a test thread's stack is small.
        let steps = Box::pin(self.run_steps(plan, options, on_event));
        let steps = crate::quota::checked_by_plan(Deadline::after(options.timeout).scope(steps));
        // Without waiting, not on the backends' controllers either (wait::send_only).
        let (mut report, created_but_failed, first_error) = if options.wait {
            steps.await
        } else {
            wait::send_only(steps).await
        };
        if options.rollback_on_failure && !report.failed.is_empty() {
            let roll_back =
                Box::pin(self.roll_back(&mut report, created_but_failed, options, on_event));
            Deadline::after(options.timeout).scope(roll_back).await;
        }
        (report, first_error)
    }

    /// Runs the steps of `plan`; returns the report, what was created by steps that then failed
    /// (for a rollback), and the first failed step's error.
    async fn run_steps(
        &self,
        plan: &Plan,
        options: ApplyOptions,
        on_event: Sink<'_>,
    ) -> (ApplyReport, Vec<(ResourceKind, String)>, Option<Error>) {
        for step in &plan.steps {
            on_event(event(step, Progress::Pending));
        }
        let failed = AtomicBool::new(false);
        // At most `concurrency` steps send at once; a step gives its slot back when it starts
        // waiting, so the waits (on the shared watches, no requests) overlap as a raw loop of
        // requests followed by one watch would.
        let slots = Semaphore::new(options.concurrency.max(1));
        let mut report = ApplyReport::default();
        let mut created_but_failed = Vec::new();
        let mut first_error = None;
        let mut order = super::order::graph(&plan.steps);
        let mut ready: VecDeque<usize> = order.start().into();
        let mut started = vec![false; plan.steps.len()];
        // Boxed as `Send` futures: the whole apply future is then `Send` by construction (a
        // kube-runtime reconciler, the operator example, must be).
        let mut running: FuturesUnordered<BoxFuture<'_, (usize, Option<StepOutcome>)>> =
            FuturesUnordered::new();
        loop {
            if !failed.load(Ordering::SeqCst) {
                for i in ready.drain(..) {
                    started[i] = true;
                    let step = &plan.steps[i];
                    let (failed, slots) = (&failed, &slots);
                    running.push(
                        async move {
                            let slot = slots.acquire().await.ok();
                            if failed.load(Ordering::SeqCst) {
                                return (i, None);
                            }
                            let outcome = self.run_step(step, options, on_event, slot).await;
                            if outcome.0.is_err() {
                                failed.store(true, Ordering::SeqCst);
                            }
                            (i, Some(outcome))
                        }
                        .boxed(),
                    );
                }
            }
            let Some((i, outcome)) = running.next().await else {
                break;
            };
            let step = &plan.steps[i];
            match outcome {
                None => report
                    .not_started
                    .push((step.action, step.kind, step.name.clone())),
                Some((Ok(()), _)) => {
                    report
                        .done
                        .push((step.action, step.kind, step.name.clone()));
                    let mut now_ready = Vec::new();
                    order.done(i, &mut now_ready);
                    ready.extend(now_ready);
                }
                Some((Err(err), created)) => {
                    on_event(event(step, Progress::Failed(err.to_string())));
                    report.failed.push((
                        step.action,
                        step.kind,
                        step.name.clone(),
                        err.to_string(),
                    ));
                    if created {
                        created_but_failed.push((step.kind, step.name.clone()));
                    }
                    first_error.get_or_insert(err);
                }
            }
        }
        report.not_started.extend(
            plan.steps
                .iter()
                .zip(&started)
                .filter(|(_, started)| !**started)
                .map(|(s, _)| (s.action, s.kind, s.name.clone())),
        );
        (report, created_but_failed, first_error)
    }

    /// Plans an empty spec and applies it: removes everything the tenant owns, in reverse
    /// dependency order (the resources of one level in parallel, at most
    /// [`ApplyOptions::concurrency`] at once), waiting until each resource is gone together with
    /// what it owned: on Kubernetes the backends delete in the foreground and wait through
    /// watches until the garbage collector and the CSI driver are done (a VM's instance and
    /// launcher pod, its import claim and PersistentVolume), so when `destroy` returns nothing of
    /// the tenant is left but its namespace. Shared resources it does not own (an
    /// administrator's address pools) are left alone.
    ///
    /// [`ApplyOptions::timeout`] is the deadline of the whole destroy, planning included: it
    /// returns by then, whatever the backends' own delete timeouts. If something is not gone by
    /// then (a claim whose `kubernetes.io/pvc-protection` finalizer stays because a pod still
    /// uses it, an object with another controller's finalizer), it fails with
    /// [`Error::Timeout`] naming the resource, the condition and the last state seen, e.g.
    /// `timed out after 120s waiting for volume "web-root": gone (last seen:
    /// PersistentVolumeClaim acme/web-root: phase Bound, deletionTimestamp set, finalizers
    /// [kubernetes.io/pvc-protection])`. Any failure is the first failed step's own error; what
    /// was and was not done is then left as it was, and destroying again carries on.
    pub async fn destroy(&self, options: ApplyOptions) -> Result<ApplyReport> {
        let options = ApplyOptions {
            allow_delete_all: true,
            ..options
        };
        let destroy = async {
            let plan = Box::pin(self.plan(&TenantSpec::default())).await?;
            match Box::pin(self.carry_out(&plan, options, &|_| {})).await {
                (report, None) => Ok(report),
                (_, Some(first_error)) => Err(first_error),
            }
        };
        let tenant = self.name().to_string();
        wait::within(
            options.timeout,
            ResourceKind::Tenant,
            &tenant,
            "destroyed",
            destroy,
        )
        .await
    }

    async fn roll_back(
        &self,
        report: &mut ApplyReport,
        created_but_failed: Vec<(ResourceKind, String)>,
        options: ApplyOptions,
        on_event: Sink<'_>,
    ) {
        let mut created: Vec<(ResourceKind, String)> = report
            .done
            .iter()
            .filter(|(action, _, _)| *action == Action::Create)
            .map(|(_, kind, name)| (*kind, name.clone()))
            .chain(created_but_failed)
            .collect();
        created.sort_by_key(|(kind, _)| std::cmp::Reverse(super::plan::level(*kind)));
        for (kind, name) in created {
            let step = Step {
                action: Action::Delete,
                kind,
                name: name.clone(),
                changes: Vec::new(),
                live: None,
                desired: None,
                kept_wait: None,
            };
            if self.run_step(&step, options, &|_| {}, None).await.0.is_ok() {
                on_event(ApplyEvent {
                    kind,
                    name: name.clone(),
                    action: Action::Create,
                    progress: Progress::RolledBack,
                });
                report.rolled_back.push((kind, name));
            }
        }
    }

    /// Runs one step; the flag says whether it created something (even if waiting then failed),
    /// so a rollback knows to remove it. `slot` (a place among the steps sending at once) is
    /// given back once the step only waits.
    async fn run_step(
        &self,
        step: &Step,
        options: ApplyOptions,
        on_event: Sink<'_>,
        mut slot: Option<SemaphorePermit<'_>>,
    ) -> (Result<()>, bool) {
        on_event(event(step, Progress::Applying));
        let sending = async {
            match step.action {
                Action::Delete => self
                    .delete_one(step.kind, &step.name, options, &mut slot)
                    .await
                    .map(|()| TakenOver::No),
                // The deletion is waited for before the creation is sent: keep the slot.
                Action::Replace => match self
                    .delete_one(step.kind, &step.name, options, &mut None)
                    .await
                {
                    Ok(()) => self.create_one(step).await.map(|()| TakenOver::No),
                    Err(e) => Err(e),
                },
                Action::Create => match self.create_one(step).await {
                    // Another apply of this tenant (another process) created it since the plan.
                    Err(e) if e.is_already_exists() => {
                        self.take_over(step).await.map(|()| TakenOver::Yes)
                    }
                    other => other.map(|()| TakenOver::No),
                },
                Action::Update => self.create_one(step).await.map(|()| TakenOver::No),
            }
        };
        // Bounded by the deadline of the apply (the waits inside end by it with their own last
        // state seen; a request still unanswered then ends here).
        let waiting_for = match step.action {
            Action::Delete => "gone",
            Action::Replace => "replaced",
            Action::Create => "created",
            Action::Update => "updated",
        };
        let sent = wait::within(
            options.timeout,
            step.kind,
            &step.name,
            waiting_for,
            Box::pin(sending),
        )
        .await;
        drop(slot);
        let taken_over = matches!(sent, Ok(TakenOver::Yes));
        if let Err(e) = sent {
            return (Err(e), false);
        }
        // What another apply created is not this apply's to roll back.
        let created = step.action == Action::Create && !taken_over;
        if options.wait && step.action != Action::Delete {
            on_event(event(step, Progress::Waiting));
            if let Err(e) = self.wait_ready(step, options.timeout).await {
                return (Err(e), created);
            }
        }
        on_event(event(step, Progress::Ready));
        (Ok(()), created)
    }

    /// A resource this apply was to create exists already: another apply of the tenant (another
    /// process, the same spec applied twice at once) created it after this plan was made. It is
    /// planned alone against what is there now: nothing to do if it is as the spec says, the
    /// update that plan asks for if it can change in place, else a `Conflict` naming it.
    async fn take_over(&self, step: &Step) -> Result<()> {
        let Some(desired) = step.desired.clone() else {
            return Err(Error::already_exists(step.kind, &step.name));
        };
        let spec = TenantSpec::of_one(desired);
        let plan = self.plan(&spec).await?;
        let again = plan
            .steps
            .iter()
            .find(|s| s.kind == step.kind && s.name == step.name);
        tracing::debug!(
            tenant = %self.name(),
            kind = %step.kind,
            name = %step.name,
            change = again.is_some(),
            "created meanwhile by another apply: taken over"
        );
        match again {
            None => Ok(()),
            Some(s) if s.action == Action::Update => self.create_one(s).await,
            Some(_) => Err(Error::conflict(
                step.kind,
                &step.name,
                "another apply created it at the same time with a different spec, which cannot \
                 change in place",
            )),
        }
    }

    async fn create_one(&self, step: &Step) -> Result<()> {
        let Some(desired) = &step.desired else {
            return Err(Error::invalid(
                "plan",
                format!("step {} {} has no spec", step.kind, step.name),
            ));
        };
        match desired {
            Desired::Vpc(s) => self.network().create_vpc(s).await.map(drop),
            Desired::Subnet(s) => self.network().create_subnet(s).await.map(drop),
            Desired::SecurityGroup(s) if step.action == Action::Update => {
                self.network().update_security_group(s).await.map(drop)
            }
            Desired::SecurityGroup(s) => self.network().create_security_group(s).await.map(drop),
            Desired::IpReservation(s) => self.network().reserve_ip(s).await.map(drop),
            Desired::Volume(s) if step.action == Action::Update => {
                self.volumes().resize(&s.name, s.size).await.map(drop)
            }
            Desired::Volume(s) => self.volumes().create(s).await.map(drop),
            Desired::Vm(s) => self.vms().apply(s).await.map(drop),
            Desired::Service(s) => self.network().create_service(s).await.map(drop),
            Desired::AddressPool(s) if step.action == Action::Update => {
                self.load_balancer().update_pool(s).await.map(drop)
            }
            Desired::AddressPool(s) => self.load_balancer().create_pool(s).await.map(drop),
            Desired::Exposure(s) => self.load_balancer().expose(s).await.map(drop),
        }
    }

    /// Deletes one resource and waits until it is gone, giving `slot` back once it only waits.
    async fn delete_one(
        &self,
        kind: ResourceKind,
        name: &str,
        options: ApplyOptions,
        slot: &mut Option<SemaphorePermit<'_>>,
    ) -> Result<()> {
        let mut gone = |r: Result<()>| {
            slot.take();
            match r {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            }
        };
        match kind {
            ResourceKind::Vpc => gone(self.network().delete_vpc(name).await),
            ResourceKind::Subnet => gone(self.network().delete_subnet(name).await),
            ResourceKind::SecurityGroup => gone(self.network().delete_security_group(name).await),
            ResourceKind::IpReservation => gone(self.network().release_ip(name).await),
            ResourceKind::Service => gone(self.network().delete_service(name).await),
            ResourceKind::AddressPool => gone(self.load_balancer().delete_pool(name).await),
            ResourceKind::Volume => {
                gone(self.volumes().delete(name, false).await)?;
                self.wait_gone(name, self.volumes().watch(name).await, options)
                    .await
            }
            ResourceKind::Vm => {
                gone(self.vms().delete(name).await)?;
                self.wait_gone(name, self.vms().watch(name).await, options)
                    .await
            }
            ResourceKind::Exposure => {
                gone(self.load_balancer().release(name).await)?;
                self.wait_gone(name, self.load_balancer().watch(name).await, options)
                    .await
            }
            other => Err(Error::invalid("plan", format!("cannot delete a {other}"))),
        }
    }

    /// Waits until a watch ends (the resource `name` is gone); a watch refused with "not found"
    /// means it is gone already. Ends by [`ApplyOptions::timeout`] or the deadline of the apply,
    /// if earlier, with the last state seen.
    async fn wait_gone<T: Observed>(
        &self,
        name: &str,
        watch: Result<futures::stream::BoxStream<'static, Result<T>>>,
        options: ApplyOptions,
    ) -> Result<()> {
        let mut states = match watch {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        if !options.wait {
            return Ok(());
        }
        let bound = Deadline::for_wait(options.timeout);
        let mut last = None;
        let drained = async {
            while let Some(state) = states.next().await {
                if let Ok(state) = state {
                    last = Some(state);
                }
            }
        };
        match bound.run(drained).await {
            Some(()) => Ok(()),
            None => Err(Error::timeout(
                T::KIND,
                name,
                "gone",
                bound.budget(),
                last.as_ref()
                    .map_or_else(|| "present".to_string(), Observed::summary),
            )),
        }
    }

    async fn wait_ready(&self, step: &Step, timeout: Duration) -> Result<()> {
        match &step.desired {
            Some(Desired::Vm(spec)) if spec.run_strategy == RunStrategy::Always => self
                .vms()
                .wait(&spec.name, wait::vm_running(), timeout)
                .await
                .map(drop),
            Some(Desired::Volume(spec)) => self
                .volumes()
                .wait(&spec.name, wait::volume_ready(), timeout)
                .await
                .map(drop),
            Some(Desired::Exposure(spec)) => self
                .load_balancer()
                .wait(&spec.name, wait::exposure_assigned(), timeout)
                .await
                .map(drop),
            _ => Ok(()),
        }
    }
}

fn event(step: &Step, progress: Progress) -> ApplyEvent {
    ApplyEvent {
        kind: step.kind,
        name: step.name.clone(),
        action: step.action,
        progress,
    }
}
