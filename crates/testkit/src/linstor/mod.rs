//! A LINSTOR controller double: the REST API (`/v1/...`) on `127.0.0.1`, keeping state like the
//! controller does (nodes, storage pools with capacity per node, resource groups, resource
//! definitions with their volume definition, resources with DRBD disk state, snapshots).
//!
//! - **Placement** as LINSTOR's autoplacer does it: a spawn puts `place_count` diskful replicas on
//!   distinct nodes whose pool (from the group's or the request's storage pool list) has room,
//!   most free space first; a group with `diskless_on_remaining` gets diskless resources on the
//!   other nodes, and two replicas get a diskless tie-breaker on a third node (reported as INFO).
//!   When it cannot place, it answers 500 with `FAIL_NOT_ENOUGH_NODES` and creates nothing.
//! - **Answers** are `ApiCallRc` lists with the real return codes; error status codes follow the
//!   first error entry (`shared/upstream/linstor/NOTES.md`).
//! - **Validation**: every request body and every answer is checked against the upstream OpenAPI
//!   document (unknown fields rejected), where NOTES.md says the real controller deviates the
//!   controller wins. A bad request is answered 400; every violation (request or answer) is kept in
//!   [`LinstorServer::violations`] so tests can assert there were none.
//! - **TLS** ([`LinstorServerBuilder::tls`], [`TestPki`]): HTTPS with a server certificate signed
//!   by a test CA and, as Piraeus sets it up, a client certificate signed by the same CA required;
//!   [`LinstorServer::tls_handshakes`] counts completed and failed handshakes.
//! - **Faults** ([`LinstorFault`]): an error status, a delay (to trip client timeouts), a dropped
//!   connection before the request is carried out, or after it (the client never learns that it
//!   happened). **Counters**: [`LinstorServer::requests`] lists every request with its origin
//!   (a client on the socket, or the CSI stand-in in process).
//!
//! ```
//! use kubecloud_testkit::linstor::LinstorServer;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let linstor = LinstorServer::builder()
//!     .nodes(["node-a", "node-b", "node-c"])
//!     .pool_on_all_nodes("thin", "LVM_THIN", 100 << 20)
//!     .resource_group("fast", 2, ["thin"])
//!     .start()
//!     .await?;
//! let handle = linstor.handle();
//! let (status, answer) = handle
//!     .call("POST", "/v1/resource-groups/fast/spawn",
//!           &serde_json::json!({"resource_definition_name": "pvc-1", "volume_sizes": [1048576]}))
//!     .await?;
//! assert_eq!(status, 201);
//! assert!(answer.as_array().is_some());
//! assert_eq!(linstor.replicas("pvc-1").len(), 3, "two replicas and a tie-breaker");
//! assert!(linstor.violations().is_empty());
//! # Ok(()) }
//! ```

mod http;
mod openapi;
pub mod rc;
mod state;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use openapi::OpenApi;
pub use tls::{CertifiedKey, ServerTls, TestPki, TlsSetupError};

use http::{Outcome, Shared};
use state::{Group, Pool, State};

/// Who sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client on the socket (the code under test).
    Client,
    /// An in-process caller ([`LinstorHandle`], used by the CSI stand-in).
    InProcess,
}

/// One request and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinstorRequest {
    /// Who sent it.
    pub origin: Origin,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Whether an injected fault acted on it.
    pub faulted: bool,
}

impl LinstorRequest {
    /// Whether this request could change state (anything but `GET`).
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinstorFaultAction {
    /// Answer with this status and an `ApiCallRc` list (`FAIL_UNKNOWN_ERROR`), doing nothing.
    Status(u16),
    /// Wait this long, then carry out the request and answer (trips client timeouts).
    Delay(Duration),
    /// Close the connection before carrying out the request.
    DropBefore,
    /// Carry out the request, then close the connection without answering.
    DropAfter,
}

/// One fault rule: the first matching rule acts on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinstorFault {
    method: Option<String>,
    path_contains: Option<String>,
    origin: Option<Origin>,
    remaining: Option<u32>,
    action: LinstorFaultAction,
}

impl LinstorFault {
    /// A rule acting on every request.
    pub fn new(action: LinstorFaultAction) -> Self {
        Self {
            method: None,
            path_contains: None,
            origin: None,
            remaining: None,
            action,
        }
    }
    /// Answer with `code`.
    pub fn status(code: u16) -> Self {
        Self::new(LinstorFaultAction::Status(code))
    }
    /// Delay the answer.
    pub fn delay(d: Duration) -> Self {
        Self::new(LinstorFaultAction::Delay(d))
    }
    /// Drop the connection before doing anything.
    pub fn drop_before() -> Self {
        Self::new(LinstorFaultAction::DropBefore)
    }
    /// Do the work, then drop the connection.
    pub fn drop_after() -> Self {
        Self::new(LinstorFaultAction::DropAfter)
    }
    /// Only requests with this HTTP method.
    pub fn on_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }
    /// Only requests whose path contains `part`.
    pub fn on_path(mut self, part: &str) -> Self {
        self.path_contains = Some(part.to_string());
        self
    }
    /// Only requests from `origin`.
    pub fn from(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }
    /// Act at most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, origin: Origin) -> bool {
        self.remaining != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
            && self.origin.is_none_or(|o| o == origin)
    }
}

/// Why the double could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinstorStartError {
    /// The OpenAPI document could not be loaded.
    #[error("loading the LINSTOR OpenAPI document: {0}")]
    Document(String),
    /// The socket could not be bound.
    #[error("binding 127.0.0.1: {0}")]
    Bind(#[from] std::io::Error),
    /// The TLS settings could not be used.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
}

/// TLS handshakes the double saw (see [`LinstorServer::tls_handshakes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsHandshakes {
    /// Handshakes that completed.
    pub completed: usize,
    /// Handshakes that failed (a client refusing the certificate, no or a bad client
    /// certificate, plain HTTP on the HTTPS port).
    pub failed: usize,
}

/// Seeds for a [`LinstorServer`]; start with [`LinstorServer::builder`].
#[must_use]
#[derive(Debug, Default)]
pub struct LinstorServerBuilder {
    state: State,
    tls: Option<ServerTls>,
    bind: Option<std::net::SocketAddr>,
}

impl LinstorServerBuilder {
    /// Satellite nodes.
    pub fn nodes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, nodes: I) -> Self {
        self.state.nodes.extend(nodes.into_iter().map(Into::into));
        self
    }

    /// A storage pool `name` of `provider` (`LVM`, `LVM_THIN`, `ZFS`, `ZFS_THIN`) with
    /// `capacity_kib` on `node`.
    pub fn pool(mut self, node: &str, name: &str, provider: &str, capacity_kib: u64) -> Self {
        self.state.pools.push(Pool {
            node: node.into(),
            name: name.into(),
            provider: provider.into(),
            total_kib: capacity_kib,
        });
        self
    }

    /// The same pool on every node added so far.
    pub fn pool_on_all_nodes(mut self, name: &str, provider: &str, capacity_kib: u64) -> Self {
        for node in self.state.nodes.clone() {
            self = self.pool(&node, name, provider, capacity_kib);
        }
        self
    }

    /// A resource group placing `place_count` replicas in `storage_pools`.
    pub fn resource_group<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        name: &str,
        place_count: u32,
        storage_pools: I,
    ) -> Self {
        self.state.groups.insert(
            name.into(),
            Group {
                name: name.into(),
                place_count,
                storage_pools: storage_pools.into_iter().map(Into::into).collect(),
                diskless_on_remaining: false,
            },
        );
        self
    }

    /// The DRBD disk state new diskful resources start in (default `UpToDate`).
    pub fn initial_disk_state(mut self, state: &str) -> Self {
        self.state.initial_disk_state = state.into();
        self
    }

    /// How many status queries of a clone answer `CLONING` before `COMPLETE` (default 0).
    pub fn clone_rounds(mut self, rounds: u32) -> Self {
        self.state.clone_rounds = rounds;
        self
    }

    /// Serves HTTPS with these settings (the URL is then `https://127.0.0.1:<port>`).
    ///
    /// ```
    /// use kubecloud_testkit::linstor::{LinstorServer, TestPki};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pki = TestPki::generate()?;
    /// let linstor = LinstorServer::builder().nodes(["a"]).tls(pki.server_tls()).start().await?;
    /// assert!(linstor.url().starts_with("https://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The address to listen on (default `127.0.0.1:0`: loopback, any free port).
    pub fn bind(mut self, addr: std::net::SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Binds the address (default 127.0.0.1, a random port) and starts serving.
    pub async fn start(mut self) -> Result<LinstorServer, LinstorStartError> {
        let api = OpenApi::upstream().map_err(LinstorStartError::Document)?;
        if self.state.initial_disk_state.is_empty() {
            self.state.initial_disk_state = "UpToDate".into();
        }
        let acceptor = match &self.tls {
            Some(tls) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls.config()?))),
            None => None,
        };
        let bind = self
            .bind
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(self.state),
            log: Mutex::default(),
            faults: Mutex::default(),
            violations: Mutex::default(),
            api,
            handshakes: Mutex::default(),
        });
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let task = tokio::spawn(http::accept_loop(listener, shared.clone(), acceptor));
        tracing::debug!(%addr, scheme, "LINSTOR double listening");
        Ok(LinstorServer {
            shared,
            url: format!("{scheme}://{addr}"),
            task,
        })
    }
}

/// A LINSTOR controller double listening on 127.0.0.1. Stops when dropped.
pub struct LinstorServer {
    shared: Arc<Shared>,
    url: String,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for LinstorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinstorServer")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for LinstorServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A replica as the double sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The node.
    pub node: String,
    /// The storage pool, `None` when diskless.
    pub pool: Option<String>,
    /// The DRBD disk state.
    pub disk_state: String,
    /// Whether the resource is in use (DRBD primary).
    pub in_use: bool,
}

impl LinstorServer {
    /// Seeds to start from.
    pub fn builder() -> LinstorServerBuilder {
        LinstorServerBuilder::default()
    }

    /// `http://127.0.0.1:<port>`, or `https://` when serving TLS.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An in-process handle (requests go through the same routing, validation and faults).
    pub fn handle(&self) -> LinstorHandle {
        LinstorHandle {
            shared: self.shared.clone(),
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<LinstorRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The TLS handshakes seen so far (all zero without TLS).
    pub fn tls_handshakes(&self) -> TlsHandshakes {
        *self
            .shared
            .handshakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the request log.
    pub fn reset_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Schema violations seen so far (requests and answers).
    pub fn violations(&self) -> Vec<String> {
        self.shared
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: LinstorFault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The names of the resource definitions.
    pub fn resource_definitions(&self) -> Vec<String> {
        self.shared.lock().rds.keys().cloned().collect()
    }

    /// The size of volume 0 of `rd`, in KiB.
    pub fn volume_size_kib(&self, rd: &str) -> Option<u64> {
        self.shared.lock().rds.get(rd).and_then(|r| r.size_kib)
    }

    /// The resources of `rd`, by node.
    pub fn replicas(&self, rd: &str) -> Vec<ReplicaInfo> {
        let s = self.shared.lock();
        s.rds
            .get(rd)
            .map(|r| {
                r.resources
                    .iter()
                    .map(|(node, res)| ReplicaInfo {
                        node: node.clone(),
                        pool: res.pool.clone(),
                        disk_state: res.disk_state.clone(),
                        in_use: res.in_use,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The snapshots, as `(resource definition, snapshot)`.
    pub fn snapshots(&self) -> Vec<(String, String)> {
        self.shared.lock().snaps.keys().cloned().collect()
    }

    /// Sets the DRBD disk state of `rd` on `node` (as the satellite would report it).
    pub fn set_disk_state(&self, rd: &str, node: &str, state: &str) {
        if let Some(r) = self
            .shared
            .lock()
            .rds
            .get_mut(rd)
            .and_then(|r| r.resources.get_mut(node))
        {
            r.disk_state = state.into();
        }
    }

    /// Marks `rd` in use (DRBD primary) on `node`, or not.
    pub fn set_in_use(&self, rd: &str, node: &str, in_use: bool) {
        if let Some(r) = self
            .shared
            .lock()
            .rds
            .get_mut(rd)
            .and_then(|r| r.resources.get_mut(node))
        {
            r.in_use = in_use;
        }
    }

    /// KiB in use in `pool` on `node`.
    pub fn used_kib(&self, node: &str, pool: &str) -> u64 {
        self.shared.lock().used_kib(node, pool)
    }
}

/// Calls into a [`LinstorServer`] without the socket (for simulated components such as the
/// CSI stand-in). Cheap to clone.
#[derive(Clone)]
pub struct LinstorHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LinstorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinstorHandle")
    }
}

/// The connection was dropped by an injected fault: the caller cannot know whether the request
/// was carried out.
#[derive(Debug, thiserror::Error)]
#[error("connection to the LINSTOR controller dropped")]
pub struct ConnectionDropped;

impl LinstorHandle {
    /// Sends `method path` with `body` (`Value::Null` for none; the path may carry a query).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), ConnectionDropped> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        match self
            .shared
            .dispatch(Origin::InProcess, method, path, query, &bytes)
            .await
        {
            Outcome::Answer(a) => Ok(a),
            Outcome::Drop => Err(ConnectionDropped),
        }
    }
}
