//! The request log and counters: what clients sent and what the double answered.
//!
//! Only HTTP requests are recorded. Simulated controllers and seeding act in process and do not
//! appear here, so a test can assert exactly what the code under test sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::routing::Verb;

/// One HTTP request and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (without `?`), empty if none.
    pub query: String,
    /// The Kubernetes verb.
    pub verb: Verb,
    /// API group (`""` for core), empty for discovery.
    pub group: String,
    /// Resource (plural), e.g. `virtualmachines`; empty for discovery.
    pub resource: String,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// Namespace in the URL.
    pub namespace: Option<String>,
    /// Object name in the URL.
    pub name: Option<String>,
    /// Status code sent, or `None` when the connection was dropped by a fault.
    pub status: Option<u16>,
    /// Request `Content-Type`.
    pub content_type: Option<String>,
    /// Request `Accept` (what the client asked the answer to be, e.g. metadata only).
    pub accept: Option<String>,
    /// Request body size in bytes.
    pub body_size: usize,
    /// Whether an injected fault produced the answer.
    pub faulted: bool,
    /// The latency injected before answering.
    pub delay: std::time::Duration,
}

/// A handle on the request log, cheap to clone. Obtained from
/// [`TestServer::requests`](crate::TestServer::requests).
#[derive(Clone)]
pub struct Requests {
    log: Arc<Mutex<Vec<RequestRecord>>>,
    /// How many are recorded, for [`Requests::reached`].
    recorded: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            log: Arc::default(),
            recorded: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Requests {
    pub(crate) fn record(&self, r: RequestRecord) {
        tracing::debug!(verb = %r.verb, path = %r.path, status = ?r.status, "request");
        let mut log = self.lock();
        log.push(r);
        self.recorded.send_replace(log.len());
    }

    /// Resolves once `n` requests are recorded (since the last [`Requests::reset`]): the
    /// `n`-th has been answered (or dropped by a fault), its answer maybe not yet read by the
    /// client. For interrupting a client at a given request, without polling.
    ///
    /// ```
    /// # async fn demo(server: kubecloud_testkit::TestServer) {
    /// let tenth = server.requests().reached(server.requests().total() + 10);
    /// tokio::select! {
    ///     _ = tenth => { /* the work below is dropped after its tenth request */ }
    ///     _ = async { /* work sending requests */ } => {}
    /// }
    /// # }
    /// ```
    pub fn reached(&self, n: usize) -> impl Future<Output = ()> + Send + use<> {
        let mut recorded = self.recorded.subscribe();
        async move {
            // The sender lives as long as any `Requests` handle; if all are gone, so is the
            // server, and nothing more will ever be recorded.
            if recorded.wait_for(|&count| count >= n).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every recorded request, oldest first.
    pub fn all(&self) -> Vec<RequestRecord> {
        self.lock().clone()
    }

    /// How many requests were recorded.
    pub fn total(&self) -> usize {
        self.lock().len()
    }

    /// Requests with this verb on this resource (plural, any group, main resource or
    /// subresource). `resource` may also be `"plural/subresource"` to count only that subresource.
    pub fn count(&self, verb: Verb, resource: &str) -> usize {
        let (plural, sub) = match resource.split_once('/') {
            Some((p, s)) => (p, Some(s)),
            None => (resource, None),
        };
        self.count_where(|r| {
            r.verb == verb
                && r.resource == plural
                && sub.is_none_or(|s| r.subresource.as_deref() == Some(s))
        })
    }

    /// Requests with this verb, on any resource.
    pub fn count_verb(&self, verb: Verb) -> usize {
        self.count_where(|r| r.verb == verb)
    }

    /// Requests answered with this status code.
    pub fn count_status(&self, code: u16) -> usize {
        self.count_where(|r| r.status == Some(code))
    }

    /// Requests matching a predicate.
    pub fn count_where(&self, f: impl Fn(&RequestRecord) -> bool) -> usize {
        self.lock().iter().filter(|r| f(r)).count()
    }

    /// Requests that changed something or tried to (create, update, patch, apply, delete,
    /// deletecollection): what "nothing was sent" assertions usually mean.
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.lock()
            .iter()
            .filter(|r| {
                matches!(
                    r.verb,
                    Verb::Create
                        | Verb::Update
                        | Verb::Patch
                        | Verb::Apply
                        | Verb::Delete
                        | Verb::DeleteCollection
                )
            })
            .cloned()
            .collect()
    }

    /// Request counts by (verb, resource, status code); `None` for dropped connections.
    /// Handy to print after a benchmark.
    pub fn summary(&self) -> BTreeMap<(Verb, String, Option<u16>), usize> {
        let mut out = BTreeMap::new();
        for r in self.lock().iter() {
            *out.entry((r.verb, r.resource.clone(), r.status))
                .or_insert(0) += 1;
        }
        out
    }

    /// Forgets everything recorded so far.
    pub fn reset(&self) {
        let mut log = self.lock();
        log.clear();
        self.recorded.send_replace(0);
    }
}
