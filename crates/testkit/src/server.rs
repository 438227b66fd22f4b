//! The HTTP/1.1 server: the socket, request routing, faults and latency, the request log.

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::admission::MutatingWebhook;
use crate::api::{
    CatalogRef, Core, DeleteOpts, FieldValidation, ListOpts, Sub, Target, WriteOpts, is_builtin,
};
use crate::cluster::Cluster;
use crate::controllers::{
    self, Controller, ControllerHandle, GarbageCollector, NamespaceController, PvcBinder,
};
use crate::counters::{RequestRecord, Requests};
use crate::discovery;
use crate::faults::{FaultAction, Faults, Latency};
use crate::patch::PatchKind;
use crate::routing::{self, ResourcePath, Route, Verb};
use crate::schema::{Catalog, CatalogError};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, qualified_resource};
use crate::store::Store;
use crate::watch::{self, WatchOpts};

type Body = BoxBody<Bytes, Infallible>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The upstream schema catalog could not be loaded.
    #[error("loading the schema catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The socket could not be bound.
    #[error("binding the listening socket: {0}")]
    Bind(#[from] std::io::Error),
    /// The `kube::Client` for the server could not be built.
    #[error("building a kube client: {0}")]
    Client(#[from] kube::Error),
    /// A seed object was refused.
    #[error("seeding: {0}")]
    Seed(#[from] ApiError),
}

/// Options for a [`TestServer`]; start with [`TestServer::builder`].
#[must_use]
pub struct TestServerBuilder {
    catalog: Option<CatalogRef>,
    seed: u64,
    history_limit: usize,
    compaction_interval: Option<Duration>,
    latency: Latency,
    field_validation: FieldValidation,
    default_controllers: bool,
    controllers: Vec<Arc<dyn Controller>>,
    bookmark_interval: Duration,
    seed_yaml: Vec<String>,
    bind: SocketAddr,
    webhooks: Vec<Arc<dyn MutatingWebhook>>,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            catalog: None,
            seed: 0,
            history_limit: 10_000,
            compaction_interval: Some(Duration::from_secs(300)),
            latency: Latency::None,
            field_validation: FieldValidation::Warn,
            default_controllers: true,
            controllers: Vec::new(),
            bookmark_interval: Duration::from_secs(10),
            seed_yaml: Vec::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhooks: Vec::new(),
        }
    }
}

impl TestServerBuilder {
    /// Serve this catalog instead of [`Catalog::upstream`].
    pub fn catalog(mut self, catalog: &'static Catalog) -> Self {
        self.catalog = Some(CatalogRef::Static(catalog));
        self
    }

    /// Serve this catalog instead of [`Catalog::upstream`] (e.g. from [`Catalog::load_from`]).
    pub fn owned_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(CatalogRef::Shared(Arc::new(catalog)));
        self
    }

    /// Seed of the generators behind uids, generated names, cluster IPs, fault draws and
    /// latency draws (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How many events the store retains for watches resuming from a `resourceVersion`
    /// (default 10 000); older ones get 410.
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// How often the store compacts its history, as kube-apiserver compacts etcd
    /// (`--etcd-compaction-interval`, default 5 minutes): each compaction forgets the history up
    /// to the revision of the previous one, so a watch or a `continue` token older than one to
    /// two intervals gets 410 Expired. `None` never compacts on a timer
    /// ([`Cluster::compact`](crate::Cluster::compact) still does on demand).
    pub fn compaction_interval(mut self, every: Option<Duration>) -> Self {
        self.compaction_interval = every;
        self
    }

    /// Latency added to every HTTP request (also settable later through [`TestServer::faults`]).
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// How unknown and duplicate fields are treated when a request does not say
    /// (`fieldValidation`). Default [`FieldValidation::Warn`], kube-apiserver's default; set
    /// `Strict` to make every request without the parameter fail on a typo.
    pub fn field_validation(mut self, fv: FieldValidation) -> Self {
        self.field_validation = fv;
        self
    }

    /// Do not start the built-in controllers (garbage collector, namespace controller,
    /// PVC binder).
    pub fn without_default_controllers(mut self) -> Self {
        self.default_controllers = false;
        self
    }

    /// Starts this controller with the server.
    pub fn controller(mut self, controller: impl Controller) -> Self {
        self.controllers.push(Arc::new(controller));
        self
    }

    /// Registers a mutating admission webhook (see [`crate::admission`]): called on the
    /// creates and updates it handles from the start, seeded objects included.
    pub fn mutating_webhook(mut self, webhook: impl MutatingWebhook) -> Self {
        self.webhooks.push(Arc::new(webhook));
        self
    }

    /// [`TestServerBuilder::mutating_webhook`] for a shared webhook.
    pub fn mutating_webhook_arc(mut self, webhook: Arc<dyn MutatingWebhook>) -> Self {
        self.webhooks.push(webhook);
        self
    }

    /// How often watches that allow bookmarks get one (default 10 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Objects (multi-document YAML) stored at start, before any controller runs.
    pub fn seed_yaml(mut self, yaml: &str) -> Self {
        self.seed_yaml.push(yaml.to_string());
        self
    }

    /// The address to listen on (default `127.0.0.1:0`: loopback, any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Binds the address (default 127.0.0.1 on a random port) and starts serving.
    pub async fn start(self) -> Result<TestServer, StartError> {
        let catalog = match self.catalog {
            Some(c) => c,
            None => CatalogRef::Static(Catalog::upstream()?),
        };
        let core = Arc::new(Core {
            catalog: crate::apiextensions::LiveCatalog::new(catalog)?,
            store: Store::new(self.history_limit, self.seed),
            default_validation: self.field_validation,
            webhooks: std::sync::RwLock::new(self.webhooks),
        });
        let cluster = Cluster::new(core.clone());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            cluster.create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        for yaml in &self.seed_yaml {
            cluster.seed_yaml(yaml)?;
        }
        let listener = TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            core,
            requests: Requests::default(),
            faults: Faults::new(self.seed, self.latency),
            bookmark_interval: self.bookmark_interval,
            addr,
        });
        let (shutdown, _) = signal::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            shutdown.subscribe(),
        ))];
        if let Some(every) = self.compaction_interval.filter(|d| !d.is_zero()) {
            let core = shared.core.clone();
            tasks.push(tokio::spawn(async move {
                // As kube-apiserver's compactor: each tick compacts to the revision seen at
                // the previous tick (apiserver pkg/storage/etcd3/compact.go).
                let mut previous = None;
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Some(rv) = previous {
                        core.store.compact_to(rv);
                    }
                    previous = Some(core.store.lock().current_rv());
                }
            }));
        }
        // Part of the API server (apiextensions), so always on.
        let mut controllers: Vec<Arc<dyn Controller>> =
            vec![Arc::new(controllers::crd::CrdController)];
        if self.default_controllers {
            controllers.push(Arc::new(GarbageCollector));
            controllers.push(Arc::new(NamespaceController));
            controllers.push(Arc::new(PvcBinder));
            // kube-apiserver's StorageObjectInUseProtection admission gives every claim the
            // `kubernetes.io/pvc-protection` finalizer, so the controller that removes it is
            // always on, as kube-controller-manager's is.
            controllers.push(Arc::new(controllers::pvc_protection::PvcProtection));
        }
        // One controller per name: registering a default one again adds nothing.
        for c in self.controllers {
            if !controllers.iter().any(|have| have.name() == c.name()) {
                controllers.push(c);
            }
        }
        let mut handles = Vec::new();
        for c in controllers {
            let (h, t) = controllers::spawn(cluster.clone(), c);
            handles.push(h);
            tasks.push(t);
        }
        let url = format!("http://{addr}");
        let config = kube::Config::new(url.parse().expect("a valid URL"));
        let client = kube::Client::try_from(config)?;
        tracing::debug!(%url, "kube API double listening");
        Ok(TestServer {
            shared,
            cluster,
            client,
            url,
            tasks: std::sync::Mutex::new(tasks),
            controllers: std::sync::Mutex::new(handles),
            shutdown,
        })
    }
}

struct Shared {
    core: Arc<Core>,
    requests: Requests,
    faults: Faults,
    bookmark_interval: Duration,
    addr: SocketAddr,
}

/// A Kubernetes API server double listening on 127.0.0.1. Stops when dropped.
pub struct TestServer {
    shared: Arc<Shared>,
    cluster: Cluster,
    client: kube::Client,
    url: String,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    controllers: std::sync::Mutex<Vec<ControllerHandle>>,
    shutdown: signal::Sender<bool>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl TestServer {
    /// Starts a server with the upstream catalog and default options.
    pub async fn start() -> Result<TestServer, StartError> {
        Self::builder().start().await
    }

    /// Options for a server.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A `kube::Client` for this server: `kube::Config::new(url)` (default namespace `default`,
    /// no auth, kube's default retry policy for 429/503/504), as a user would build it.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A `kube::Config` for this server, to customise before building a client.
    pub fn kube_config(&self) -> kube::Config {
        kube::Config::new(self.url.parse().expect("a valid URL"))
    }

    /// The in-process API handle: seed, read back, write without HTTP.
    pub fn cluster(&self) -> Cluster {
        self.cluster.clone()
    }

    /// Seeds every object in a multi-document YAML string (see [`Cluster::seed_yaml`]).
    pub fn seed_yaml(&self, yaml: &str) -> Result<Vec<Value>, ApiError> {
        self.cluster.seed_yaml(yaml)
    }

    /// The request log and counters.
    pub fn requests(&self) -> Requests {
        self.shared.requests.clone()
    }

    /// Fault and latency injection.
    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// The handle of a running controller, by name (`garbage-collector`,
    /// `namespace-controller`, `persistentvolume-binder`, or a registered one).
    pub fn controller(&self, name: &str) -> Option<ControllerHandle> {
        self.controllers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|h| h.name() == name)
            .cloned()
    }

    /// Registers a mutating admission webhook now (see [`crate::admission`]): it sees the
    /// writes that follow.
    pub fn add_mutating_webhook(&self, webhook: impl MutatingWebhook) {
        self.shared
            .core
            .webhooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(webhook));
    }

    /// Starts another controller now; it first sees every existing object it watches.
    pub fn add_controller(&self, controller: impl Controller) -> ControllerHandle {
        self.add_controller_arc(Arc::new(controller))
    }

    /// [`TestServer::add_controller`] for a shared controller.
    pub(crate) fn add_controller_arc(&self, controller: Arc<dyn Controller>) -> ControllerHandle {
        let (h, t) = controllers::spawn(self.cluster.clone(), controller);
        self.controllers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(h.clone());
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(t);
        h
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: signal::Receiver<bool>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                // KubeVirt's console and VNC subresources upgrade to websockets.
                .with_upgrades();
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                },
                _ = shutdown.wait_for(|s| *s) => {}
            }
        });
    }
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct Dropped;

/// The checks kube-apiserver lists under each health endpoint that the double has a meaning
/// for (the real server lists more: post-start hooks, KMS, ...; all pass here).
const HEALTH_CHECKS: &[&str] = &["ping", "log", "etcd"];
const READY_CHECKS: &[&str] = &["ping", "log", "etcd", "informer-sync", "shutdown"];

/// `GET /healthz|/livez|/readyz[/<check>][?verbose]` as kube-apiserver answers it
/// (k8s.io/apiserver/pkg/server/healthz): `200 ok` in `text/plain`; with `verbose`, one
/// `[+]<check> ok` line per check and `<endpoint> check passed`; an unknown check is 404.
fn health(endpoint: &str, check: Option<&str>, verbose: bool) -> Result<Response<Body>, ApiError> {
    let checks = if endpoint == "readyz" {
        READY_CHECKS
    } else {
        HEALTH_CHECKS
    };
    let text = match check {
        Some(c) if !checks.contains(&c) => return Err(not_found_path()),
        Some(_) => "ok".to_string(),
        None if verbose => {
            let mut lines: Vec<String> = checks.iter().map(|c| format!("[+]{c} ok")).collect();
            lines.push(format!("{endpoint} check passed"));
            lines.join("\n") + "\n"
        }
        None => "ok".to_string(),
    };
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert("Retry-After", v);
    }
    r
}

/// Everything the log needs, gathered before dispatch.
struct Incoming_ {
    method: String,
    path: String,
    query: String,
    content_type: String,
    accept: String,
    user_agent: String,
    body: Bytes,
    /// The websocket handshake, for KubeVirt's console subresources.
    handshake: crate::kubevirt_console::Handshake,
}

async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let upgrade = req
        .headers()
        .contains_key(hyper::header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let handshake =
        crate::kubevirt_console::Handshake::new(parts.method.as_str(), &parts.headers, upgrade);
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut inc = Incoming_ {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        content_type: header(CONTENT_TYPE),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        body,
        handshake,
    };
    // Protobuf bodies of the kinds `kubectl create <kind>` sends are decoded to JSON (the
    // request log keeps the type the client sent).
    let sent_content_type = inc.content_type.clone();
    let decoded = (matches!(inc.method.as_str(), "POST" | "PUT")
        && inc.content_type.starts_with(crate::protobuf::MEDIA_TYPE))
    .then(|| crate::protobuf::to_json(&inc.body));
    let refused = match decoded {
        Some(Ok(json)) => {
            inc.body = Bytes::from(json.to_string());
            inc.content_type = "application/json".into();
            None
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    let q = routing::query(Some(&inc.query));
    let catalog = shared.core.catalog.current();
    let route = routing::route(&inc.path, |g, v, p| {
        catalog.by_plural(g, v, p).is_some_and(|t| t.namespaced)
            || crate::kubevirt_subresources::is_namespaced(g, p)
            || crate::kubevirt_guest_agent::is_namespaced(g, p)
    });
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let (verb, rp) = match &route {
        Route::Resource(rp) => (
            routing::verb(&inc.method, rp, watch, &inc.content_type),
            Some(rp.clone()),
        ),
        Route::NotFound => (Verb::Other, None),
        _ => (Verb::Discovery, None),
    };
    let mut record = RequestRecord {
        method: inc.method.clone(),
        path: inc.path.clone(),
        query: inc.query.clone(),
        verb,
        group: rp.as_ref().map(|r| r.group.clone()).unwrap_or_default(),
        resource: rp.as_ref().map(|r| r.plural.clone()).unwrap_or_default(),
        subresource: rp.as_ref().and_then(|r| r.subresource.clone()),
        namespace: rp.as_ref().and_then(|r| r.namespace.clone()),
        name: rp.as_ref().and_then(|r| r.name.clone()),
        status: None,
        content_type: (!sent_content_type.is_empty()).then_some(sent_content_type),
        accept: (!inc.accept.is_empty()).then(|| inc.accept.clone()),
        body_size: inc.body.len(),
        faulted: false,
        delay: Duration::ZERO,
    };

    let (delay, mut fault) = shared.faults.decide(verb, &record.resource);
    record.delay = delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut cut_after = None;
    if let Some(FaultAction::CutWatch { after }) = fault {
        record.faulted = true;
        cut_after = Some(after);
        fault = None;
    }
    if let Some(action) = fault {
        record.faulted = true;
        let response = match action {
            FaultAction::DropConnection => {
                shared.requests.record(record);
                return Err(Dropped);
            }
            FaultAction::TooManyRequests { retry_after_secs } => ApiError {
                details: json!({"retryAfterSeconds": retry_after_secs}),
                retry_after: Some(retry_after_secs),
                ..ApiError::new(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                )
            },
            FaultAction::Status(code) => injected_status(code, rp.as_ref()),
            FaultAction::CutWatch { .. } => unreachable!("answered below"),
        };
        record.status = Some(response.code);
        shared.requests.record(record);
        return Ok(error_response(&response));
    }

    let dispatched = match refused {
        Some(e) => Err(e),
        None => dispatch(&shared, &route, verb, &inc, &q).await,
    };
    let mut response = match dispatched {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if let Some(after) = cut_after {
        // The watch's stream ends after `after`, whatever it was sending.
        response = response.map(|body| {
            let frames =
                http_body_util::BodyStream::new(body).take_until(tokio::time::sleep(after));
            BodyExt::boxed(StreamBody::new(frames))
        });
    }
    record.status = Some(response.status().as_u16());
    shared.requests.record(record);
    Ok(response)
}

fn injected_status(code: u16, rp: Option<&ResourcePath>) -> ApiError {
    let (group, plural, name) = match rp {
        Some(rp) => (
            rp.group.as_str(),
            rp.plural.as_str(),
            rp.name.as_deref().unwrap_or(""),
        ),
        None => ("", "", ""),
    };
    match code {
        409 => ApiError::conflict(
            group,
            plural,
            name,
            "injected conflict; please apply your changes to the latest version and try again",
        ),
        500 => ApiError::internal("injected fault"),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected fault)",
        ),
        504 => ApiError::new(
            504,
            "Timeout",
            "the server was unable to return a response in the time allotted (injected fault)",
        ),
        _ => ApiError::new(
            code,
            "Unknown",
            format!("injected fault on {}", qualified_resource(group, plural)),
        ),
    }
}

fn not_found_path() -> ApiError {
    ApiError {
        details: json!({}),
        ..ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    route: &Route,
    verb: Verb,
    inc: &Incoming_,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let catalog = &shared.core.catalog.current();
    if verb == Verb::Discovery && inc.method != "GET" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    if let Route::Health(endpoint, check) = route {
        return health(endpoint, check.as_deref(), q.contains_key("verbose"));
    }
    crate::negotiation::check(&inc.accept)?;
    if matches!(inc.method.as_str(), "POST" | "PUT") {
        crate::negotiation::check_body(&inc.content_type)?;
    }
    if inc.method == "GET"
        && let Some(doc) = crate::openapi_v3::serve(catalog, &inc.path)
    {
        return Ok(json_response(200, &doc));
    }
    if inc.method == "GET" && inc.path.trim_end_matches('/') == "/openapi/v2" {
        return Ok(json_response(200, &crate::openapi_v2::document(catalog)));
    }
    let aggregated = discovery::wants_aggregated(&inc.accept);
    let doc = match route {
        Route::Version => Some(discovery::version()),
        Route::CoreVersions if aggregated => {
            return Ok(aggregated_response(discovery::aggregated(catalog, true)));
        }
        Route::CoreVersions => Some(discovery::api_versions(&shared.addr.to_string())),
        Route::CoreResources => discovery::resource_list(catalog, "", "v1"),
        Route::Groups if aggregated => {
            return Ok(aggregated_response(discovery::aggregated(catalog, false)));
        }
        Route::Groups => Some(discovery::api_group_list(catalog)),
        Route::Group(g) => discovery::api_group(catalog, g),
        Route::GroupResources(g, v) => discovery::resource_list(catalog, g, v),
        // Answered above, before content negotiation.
        Route::NotFound | Route::Health(..) => return Err(not_found_path()),
        Route::Resource(rp) => return resource_request(shared, rp, verb, inc, q).await,
    };
    doc.map(|d| json_response(200, &d))
        .ok_or_else(not_found_path)
}

fn aggregated_response(doc: Value) -> Response<Body> {
    let mut r = json_response(200, &doc);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_V2),
    );
    r
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

/// Write options from the query. Without `fieldManager`, non-apply writes are attributed to the
/// `User-Agent` up to its first `/`, as kube-apiserver does.
fn write_opts(
    q: &HashMap<String, String>,
    inc: &Incoming_,
    verb: Verb,
) -> Result<WriteOpts, ApiError> {
    let from_agent = (verb != Verb::Apply)
        .then(|| inc.user_agent.split('/').next().unwrap_or("").to_string())
        .filter(|m| !m.is_empty());
    // The options kind kube-apiserver validates (and names in a 422) for this verb.
    let options_kind = match verb {
        Verb::Create => "CreateOptions",
        Verb::Update => "UpdateOptions",
        _ => "PatchOptions",
    };
    let dry_run: Vec<&str> = q.get("dryRun").map(String::as_str).into_iter().collect();
    // A JSON patch body is a list of operations, not the object: its keys are not the object's.
    let json_body = match verb {
        Verb::Create | Verb::Update => true,
        Verb::Patch => !inc.content_type.starts_with("application/json-patch+json"),
        _ => false,
    };
    Ok(WriteOpts {
        manager: q.get("fieldManager").cloned().or(from_agent),
        dry_run: crate::api::parse_dry_run(&dry_run, options_kind)?,
        field_validation: match q.get("fieldValidation") {
            Some(s) => FieldValidation::parse(s, options_kind)?,
            None => None,
        },
        force: q.get("force").is_some_and(|f| f == "true"),
        duplicate_fields: if json_body {
            crate::duplicates::find(&inc.body)
        } else {
            Vec::new()
        },
        admission_dry_run: None,
    })
}

/// What a DELETE answers (apiserver `pkg/endpoints/handlers/delete.go`, `pkg/registry/generic/
/// registry/store.go` `Delete` and `finalizeDelete`): the object when its deletion is deferred
/// (finalizers, including `foregroundDeletion` and `orphan`, or a namespace's own finalizers);
/// when it is gone at once, the object for the kinds whose registry sets `ReturnDeletedObject`
/// (pods, services, claims, volumes, namespaces, nodes, storage classes), else a `Status` with
/// `status: Success` and `details` naming it (`kind` is the resource, as upstream sets it).
fn delete_answer(rt: &crate::schema::ResourceType, object: Value) -> Value {
    let deferred = object["metadata"]["deletionTimestamp"].is_string();
    let returns_object = rt.group.is_empty()
        && matches!(
            rt.kind.as_str(),
            "Pod" | "Service" | "PersistentVolumeClaim" | "PersistentVolume" | "Namespace" | "Node"
        )
        || (rt.group == "storage.k8s.io" && rt.kind == "StorageClass");
    if deferred || returns_object {
        return object;
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": object["metadata"]["name"],
            "group": rt.group,
            "kind": rt.plural,
            "uid": object["metadata"]["uid"],
        },
    })
}

/// kube-apiserver's `ValidateListOptions` (apimachinery
/// `pkg/apis/meta/internalversion/validation/validation.go`), for lists and watches: 422 on
/// `ListOptions.meta.k8s.io ""` naming each rule broken.
fn validate_list_options(q: &HashMap<String, String>, watch: bool) -> Result<(), ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let (rv, rvm, cont) = (
        get("resourceVersion"),
        get("resourceVersionMatch"),
        get("continue"),
    );
    let initial_events = q.contains_key("sendInitialEvents");
    let mut errs: Vec<(String, &'static str, String)> = Vec::new();
    let forbidden = |field: &str, m: &str| {
        (
            field.to_string(),
            "FieldValueForbidden",
            format!("Forbidden: {m}"),
        )
    };
    let unsupported = |values: &str| {
        (
            "resourceVersionMatch".to_string(),
            "FieldValueNotSupported",
            format!("Unsupported value: {rvm:?}: supported values: {values}"),
        )
    };
    if watch {
        if initial_events && rvm != "NotOlderThan" {
            errs.push(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !rvm.is_empty() {
            if !initial_events {
                errs.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if rvm != "NotOlderThan" {
                errs.push(unsupported("\"NotOlderThan\""));
            }
            if !cont.is_empty() {
                errs.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !rvm.is_empty() {
            if rv.is_empty() {
                errs.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if !cont.is_empty() {
                errs.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if rvm != "Exact" && rvm != "NotOlderThan" {
                errs.push(unsupported("\"Exact\", \"NotOlderThan\", \"\""));
            }
            if rvm == "Exact" && rv == "0" {
                errs.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if initial_events {
            errs.push(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_fields(
        "meta.k8s.io",
        "ListOptions",
        "",
        &errs,
    ))
}

/// A list or watch from a revision the store has not reached waits for it, as the watch cache
/// does, then fails with 504 `ResourceVersionTooLarge`.
async fn wait_until_fresh(core: &Core, lo: &ListOpts) -> Result<(), ApiError> {
    let Some(rv) = lo
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse::<u64>().ok())
    else {
        return Ok(());
    };
    if rv <= core.store.lock().current_rv() {
        return Ok(());
    }
    crate::api::wait_for_revision(&core.store, rv).await
}

fn list_opts(q: &HashMap<String, String>, builtin: bool) -> Result<ListOpts, ApiError> {
    Ok(ListOpts {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(
            q.get("fieldSelector").map(String::as_str).unwrap_or(""),
            !builtin,
        )?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").cloned().filter(|c| !c.is_empty()),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: q.get("resourceVersionMatch").cloned(),
    })
}

fn delete_opts(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        parse_json(body)?
    };
    let orphan = b["orphanDependents"]
        .as_bool()
        .or_else(|| q.get("orphanDependents").map(|v| v == "true"));
    let propagation = b["propagationPolicy"]
        .as_str()
        .map(String::from)
        .or_else(|| q.get("propagationPolicy").cloned())
        .or_else(|| {
            orphan.map(|o| {
                if o {
                    "Orphan".to_string()
                } else {
                    "Background".to_string()
                }
            })
        });
    let mut dry_run: Vec<&str> = b["dryRun"]
        .as_array()
        .map(|d| d.iter().map(|x| x.as_str().unwrap_or_default()).collect())
        .unwrap_or_default();
    dry_run.extend(q.get("dryRun").map(String::as_str));
    let dry_run = crate::api::parse_dry_run(&dry_run, "DeleteOptions")?;
    Ok(DeleteOpts {
        propagation,
        precondition_uid: b["preconditions"]["uid"].as_str().map(String::from),
        precondition_rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
        dry_run,
    })
}

fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

async fn resource_request(
    shared: &Arc<Shared>,
    rp: &ResourcePath,
    verb: Verb,
    inc: &Incoming_,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let core = &shared.core;
    if rp.group == crate::kubevirt_subresources::GROUP
        && crate::kubevirt_console::handles(&rp.plural, rp.subresource.as_deref())
        && let (Some(ns), Some(name), Some(sub)) = (
            rp.namespace.as_deref(),
            rp.name.as_deref(),
            rp.subresource.as_deref(),
        )
    {
        return crate::kubevirt_console::serve(
            &Cluster::new(core.clone()),
            ns,
            name,
            sub,
            &inc.handshake,
        );
    }
    if crate::kubevirt_guest_agent::serves(&rp.group, &rp.plural, rp.subresource.as_deref()) {
        let body = crate::kubevirt_guest_agent::serve(
            &Cluster::new(core.clone()),
            &inc.method,
            rp.namespace.as_deref(),
            rp.name.as_deref(),
            rp.subresource.as_deref().unwrap_or_default(),
        )?;
        return Ok(json_response(200, &body));
    }
    if rp.group == crate::kubevirt_subresources::GROUP {
        crate::kubevirt_subresources::serve(
            &Cluster::new(core.clone()),
            &inc.method,
            rp.namespace.as_deref(),
            &rp.plural,
            rp.name.as_deref(),
            rp.subresource.as_deref(),
        )?;
        return Ok(json_response(202, &json!({})));
    }
    let rt = core
        .catalog
        .current()
        .by_plural(&rp.group, &rp.version, &rp.plural)
        .cloned()
        .ok_or_else(not_found_path)?;
    if (!rt.namespaced && rp.namespace.is_some())
        || (rt.namespaced && rp.name.is_some() && rp.namespace.is_none())
    {
        return Err(not_found_path());
    }
    let sub = match rp.subresource.as_deref() {
        None => None,
        Some("status") if rt.status_subresource => Some(Sub::Status),
        Some("finalize") if rt.group.is_empty() && rt.kind == "Namespace" => Some(Sub::Finalize),
        Some(_) => return Err(not_found_path()),
    };
    let builtin = is_builtin(&rt);
    let t = Target {
        rt,
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        sub,
    };
    // `kubectl get` asks for a Table; the status subresource answers objects.
    let table = (crate::table::wants_table(&inc.accept) && t.sub.is_none())
        .then(|| q.get("includeObject").map(String::as_str));
    // Metadata-only answers (client-go's metadata client, kube's `list_metadata`).
    let partial = crate::partial::wanted(&inc.accept).filter(|_| t.sub.is_none());
    let answer = |object: Value| match (table, partial) {
        (Some(include), _) => {
            json_response(200, &crate::table::from_answer(&t.rt, &object, include))
        }
        (None, Some(crate::partial::Partial::List)) => {
            json_response(200, &crate::partial::list(&object))
        }
        (None, Some(crate::partial::Partial::Object)) => {
            json_response(200, &crate::partial::object(&object))
        }
        (None, None) => json_response(200, &object),
    };
    match (verb, partial) {
        (Verb::List, Some(p @ crate::partial::Partial::Object))
        | (Verb::Get | Verb::Watch, Some(p @ crate::partial::Partial::List)) => {
            return Err(crate::partial::mismatch(p));
        }
        _ => {}
    }
    match verb {
        Verb::Get => Ok(answer(core.get(&t)?)),
        Verb::List => {
            validate_list_options(q, false)?;
            let lo = list_opts(q, builtin)?;
            wait_until_fresh(core, &lo).await?;
            let mut list = core.list(&t, &lo)?;
            if builtin {
                // Typed lists of built-in kinds carry no kind and apiVersion per item (the Go
                // structs are encoded without TypeMeta); custom resources' unstructured lists
                // do. (In-process `Cluster::list` keeps them.)
                for item in list["items"].as_array_mut().into_iter().flatten() {
                    if let Some(m) = item.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                }
            }
            Ok(answer(list))
        }
        Verb::Watch => {
            validate_list_options(q, true)?;
            let mut lo = list_opts(q, builtin)?;
            wait_until_fresh(core, &lo).await?;
            if let Some(name) = &t.name {
                lo.fields = FieldSelector::parse(&format!("metadata.name={name}"), false)?;
            }
            let opts = WatchOpts {
                resource_version: lo.resource_version.clone(),
                send_initial_events: q.get("sendInitialEvents").is_some_and(|v| v == "true"),
                allow_bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
                timeout: q
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs),
                labels: lo.labels,
                fields: lo.fields,
                bookmark_interval: shared.bookmark_interval,
            };
            let ns = if t.rt.namespaced {
                t.namespace.clone()
            } else {
                None
            };
            let rx = watch::start(core.clone(), t.rt.clone(), ns, opts);
            let as_table = table.map(|include| (t.rt.clone(), include.map(str::to_string)));
            let stream = futures::stream::unfold(rx, move |mut rx| {
                let as_table = as_table.clone();
                async move {
                    rx.recv().await.map(|b| {
                        let b = match &as_table {
                            Some((rt, include)) => {
                                crate::table::watch_frame(rt, b, include.as_deref())
                            }
                            None if partial.is_some() => crate::partial::watch_frame(b),
                            None => b,
                        };
                        (Ok::<_, Infallible>(Frame::data(b)), rx)
                    })
                }
            });
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        Verb::Create => {
            if t.sub.is_some() {
                return Err(ApiError::method_not_allowed(
                    "POST is not supported on subresources",
                ));
            }
            let written = core.create(&t, parse_json(&inc.body)?, &write_opts(q, inc, verb)?)?;
            Ok(with_warnings(
                json_response(201, &written.object),
                &written.warnings,
            ))
        }
        Verb::Update => {
            let written = core.update(&t, parse_json(&inc.body)?, &write_opts(q, inc, verb)?)?;
            Ok(with_warnings(
                json_response(200, &written.object),
                &written.warnings,
            ))
        }
        Verb::Patch | Verb::Apply => {
            let kind = PatchKind::from_content_type(&inc.content_type)
                .ok_or_else(|| ApiError::unsupported_patch(&inc.content_type))?;
            let written = core.patch(&t, kind, &inc.body, &write_opts(q, inc, verb)?)?;
            let code = if written.created { 201 } else { 200 };
            Ok(with_warnings(
                json_response(code, &written.object),
                &written.warnings,
            ))
        }
        Verb::Delete => {
            let object = core.delete(&t, &delete_opts(q, &inc.body)?)?;
            Ok(json_response(200, &delete_answer(&t.rt, object)))
        }
        Verb::DeleteCollection => Ok(json_response(
            200,
            &core.delete_collection(&t, &list_opts(q, builtin)?, &delete_opts(q, &inc.body)?)?,
        )),
        Verb::Discovery | Verb::Other => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on this path",
            inc.method
        ))),
    }
}
