//! The phase-step timer: one background task per cloud runs every asynchronous step (a VM
//! booting, an import progressing, an address being announced) from one queue ordered by due
//! time and call order.
//!
//! Steps only move a resource to its next phase; every choice (nodes, addresses, MACs) is made
//! in the synchronous part of the API call that caused it, so the outcome depends only on the
//! sequence of calls. A step carries the epoch its resource had when it was scheduled; any later
//! change gives the resource a new epoch, which turns stale steps into no-ops.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kubecloud_core::Tenant;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Inner;
use crate::state::State;

/// What a step advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepKind {
    Vm,
    Volume,
    Snapshot,
    VmSnapshot,
    Exposure,
    CatalogImage,
}

/// One scheduled step.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) kind: StepKind,
    pub(crate) tenant: Tenant,
    pub(crate) name: String,
    pub(crate) epoch: u64,
}

struct Entry {
    at: Instant,
    seq: u64,
    step: Step,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that the max-heap yields the earliest step first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The queue of pending steps and the bookkeeping of the task that runs them.
pub(crate) struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
    epoch: u64,
    delay: Duration,
    notify: Arc<Notify>,
    /// The generation of the running driver task, if one runs.
    driver: Option<u64>,
    generation: u64,
}

impl Queue {
    pub(crate) fn new(delay: Duration, notify: Arc<Notify>) -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
            epoch: 0,
            delay,
            notify,
            driver: None,
            generation: 0,
        }
    }

    /// A fresh epoch, unique in this cloud: invalidates every step scheduled before.
    pub(crate) fn next_epoch(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }

    /// Schedules the next step of a resource one step delay from now and returns the resource's
    /// new epoch.
    pub(crate) fn schedule(&mut self, kind: StepKind, tenant: &Tenant, name: &str) -> u64 {
        let epoch = self.next_epoch();
        let at = Instant::now() + self.delay;
        let earliest = self.heap.peek().is_none_or(|head| at < head.at);
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            step: Step {
                kind,
                tenant: tenant.clone(),
                name: name.to_string(),
                epoch,
            },
        });
        if earliest {
            self.notify.notify_one();
        }
        epoch
    }

    fn pop_due(&mut self, now: Instant) -> Option<Step> {
        if self.heap.peek()?.at <= now {
            self.heap.pop().map(|e| e.step)
        } else {
            None
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }
}

impl State {
    /// Runs every step that is due, in order.
    fn run_due(&mut self, now: Instant) {
        while let Some(step) = self.queue.pop_due(now) {
            match step.kind {
                StepKind::Vm => self.advance_vm(&step.tenant, &step.name, step.epoch),
                StepKind::Volume => self.advance_volume(&step.tenant, &step.name, step.epoch),
                StepKind::Snapshot => self.advance_snapshot(&step.tenant, &step.name, step.epoch),
                StepKind::VmSnapshot => {
                    self.advance_vm_snapshot(&step.tenant, &step.name, step.epoch)
                }
                StepKind::Exposure => self.advance_exposure(&step.tenant, &step.name, step.epoch),
                StepKind::CatalogImage => self.advance_catalog_image(&step.name, step.epoch),
            }
        }
    }
}

/// Starts the driver task on the current tokio runtime unless one runs already. Outside a tokio
/// runtime nothing starts (and steps wait for the next call made inside one).
pub(crate) fn ensure_running(inner: &Arc<Inner>, state: &mut State) {
    if state.queue.driver.is_some() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    state.queue.generation += 1;
    let generation = state.queue.generation;
    state.queue.driver = Some(generation);
    let notify = state.queue.notify.clone();
    let alive = Alive {
        inner: Arc::downgrade(inner),
        generation,
    };
    runtime.spawn(run(alive, notify));
}

/// Marks the driver as gone when its task ends, including when its runtime shuts down, so that
/// the next call on another runtime starts a new one.
struct Alive {
    inner: Weak<Inner>,
    generation: u64,
}

impl Drop for Alive {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut state = inner.lock();
            if state.queue.driver == Some(self.generation) {
                state.queue.driver = None;
            }
        }
    }
}

/// The driver loop. `alive` is an argument so that it is part of the task from the moment it is
/// spawned: a runtime that shuts down before ever polling the task still drops it.
async fn run(alive: Alive, notify: Arc<Notify>) {
    let inner = alive.inner.clone();
    let generation = alive.generation;
    loop {
        let deadline = {
            // Hold the cloud only while working, so dropping the last handle ends the task.
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let mut state = inner.lock();
            if state.queue.driver != Some(generation) {
                return;
            }
            state.run_due(Instant::now());
            state.queue.next_deadline()
        };
        match deadline {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = notify.notified() => {}
                }
            }
            None => notify.notified().await,
        }
    }
    // `alive` drops here (or with the task), marking the driver gone.
}
