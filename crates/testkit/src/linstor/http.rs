//! The socket, routing, faults, the request log and the schema checks of every exchange.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::openapi::OpenApi;
use super::rc;
use super::state::{Answer, State};
use super::{LinstorFault, LinstorFaultAction, LinstorRequest, Origin};

/// Everything behind a running double.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub log: Mutex<Vec<LinstorRequest>>,
    pub faults: Mutex<Vec<LinstorFault>>,
    pub violations: Mutex<Vec<String>>,
    pub api: &'static OpenApi,
    /// TLS handshakes completed and failed.
    pub handshakes: Mutex<super::TlsHandshakes>,
}

/// What the dispatcher decided.
pub(crate) enum Outcome {
    Answer(Answer),
    /// Close the connection without an answer.
    Drop,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn violation(&self, v: String) {
        tracing::error!(violation = %v, "LINSTOR double: schema violation");
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(v);
    }

    fn take_fault(&self, method: &str, path: &str, origin: Origin) -> Option<LinstorFaultAction> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let f = faults
            .iter_mut()
            .find(|f| f.matches(method, path, origin))?;
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
        }
        Some(f.action)
    }

    /// Handles one request from `origin`, the same way for the socket and in-process callers.
    pub(crate) async fn dispatch(
        &self,
        origin: Origin,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Outcome {
        let fault = self.take_fault(method, path, origin);
        let mut record = LinstorRequest {
            origin,
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status: None,
            faulted: fault.is_some(),
        };
        let outcome = match fault {
            Some(LinstorFaultAction::Status(code)) => Outcome::Answer((
                code,
                json!([rc::error(
                    rc::FAIL_UNKNOWN_ERROR,
                    "An unknown error occurred.",
                    "injected fault",
                    ""
                )]),
            )),
            Some(LinstorFaultAction::DropBefore) => Outcome::Drop,
            Some(LinstorFaultAction::Delay(d)) => {
                tokio::time::sleep(d).await;
                Outcome::Answer(self.handle(method, path, query, body))
            }
            Some(LinstorFaultAction::DropAfter) => {
                let _ = self.handle(method, path, query, body);
                Outcome::Drop
            }
            None => Outcome::Answer(self.handle(method, path, query, body)),
        };
        if let Outcome::Answer((status, _)) = &outcome {
            record.status = Some(*status);
        }
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        outcome
    }

    fn handle(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Answer {
        let Some(op) = self.api.operation(method, path) else {
            self.violation(format!(
                "{method} {path}: no such operation in the OpenAPI document"
            ));
            return (
                404,
                json!([rc::error(
                    rc::FAIL_UNKNOWN_ERROR,
                    format!("no route {method} {path}"),
                    "",
                    ""
                )]),
            );
        };
        let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return (
                        400,
                        json!([rc::error(
                            rc::FAIL_UNKNOWN_ERROR,
                            format!("Unable to parse the request body: {e}"),
                            "",
                            ""
                        )]),
                    );
                }
            }
        };
        match (self.api.request_schema(op), parsed.is_null()) {
            (Some(schema), false) => {
                let errors = self.api.validate(schema, &parsed);
                if !errors.is_empty() {
                    self.violation(format!("{method} {path} request: {}", errors.join("; ")));
                    return (
                        400,
                        json!([rc::error(
                            rc::FAIL_UNKNOWN_ERROR,
                            format!("Invalid request body: {}", errors.join("; ")),
                            "",
                            ""
                        )]),
                    );
                }
            }
            (Some(_), true) if method != "DELETE" => {
                self.violation(format!("{method} {path} request: missing body"));
                return (
                    400,
                    json!([rc::error(
                        rc::FAIL_UNKNOWN_ERROR,
                        "missing request body",
                        "",
                        ""
                    )]),
                );
            }
            (None, false) => self.violation(format!("{method} {path} request: unexpected body")),
            _ => {}
        }
        let answer = self.route(method, path, query, &parsed);
        match self.api.response_schema(op, answer.0) {
            Some(schema) => {
                let errors = self.api.validate(&schema, &answer.1);
                if !errors.is_empty() {
                    self.violation(format!(
                        "{method} {path} answer {}: {}",
                        answer.0,
                        errors.join("; ")
                    ));
                }
            }
            None => self.violation(format!("{method} {path}: status {} not declared", answer.0)),
        }
        answer
    }

    fn route(&self, method: &str, path: &str, query: &str, body: &Value) -> Answer {
        let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let list = |key: &str| -> Vec<String> {
            q.iter()
                .filter(|(k, _)| k == key)
                .flat_map(|(_, v)| v.split(',').map(String::from).collect::<Vec<_>>())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut s = self.lock();
        match (method, segs.as_slice()) {
            ("GET", ["v1", "nodes"]) => s.nodes_json(),
            ("GET", ["v1", "view", "storage-pools"]) => {
                s.storage_pools_json(&list("storage_pools"))
            }
            ("GET", ["v1", "resource-groups"]) => s.groups_json(&list("resource_groups")),
            ("POST", ["v1", "resource-groups"]) => s.create_group(body),
            ("GET", ["v1", "resource-groups", rg]) => s.group_json_one(rg),
            ("POST", ["v1", "resource-groups", rg, "spawn"]) => s.spawn(rg, body),
            ("GET", ["v1", "resource-definitions"]) => s.rds_json(
                &list("resource_definitions"),
                list("with_volume_definitions").iter().any(|v| v == "true"),
            ),
            ("POST", ["v1", "resource-definitions"]) => s.create_rd(body),
            ("DELETE", ["v1", "resource-definitions", rd]) => s.delete_rd(rd),
            ("PUT", ["v1", "resource-definitions", rd, "volume-definitions", vn]) => {
                s.modify_vd(rd, vn, body)
            }
            ("GET", ["v1", "view", "resources"]) => {
                s.resources_json(&list("resources"), &list("nodes"))
            }
            ("GET", ["v1", "view", "snapshots"]) => s.snapshots_json(&list("resources")),
            ("POST", ["v1", "resource-definitions", rd, "snapshots"]) => {
                s.create_snapshot(rd, body)
            }
            ("DELETE", ["v1", "resource-definitions", rd, "snapshots", snap]) => {
                s.delete_snapshot(rd, snap)
            }
            (
                "POST",
                [
                    "v1",
                    "resource-definitions",
                    rd,
                    "snapshot-restore-volume-definition",
                    snap,
                ],
            ) => s.restore_vd(rd, snap, body),
            (
                "POST",
                [
                    "v1",
                    "resource-definitions",
                    rd,
                    "snapshot-restore-resource",
                    snap,
                ],
            ) => s.restore_resource(rd, snap, body),
            ("POST", ["v1", "resource-definitions", rd, "clone"]) => s.clone_rd(rd, body),
            ("GET", ["v1", "resource-definitions", rd, "clone", name]) => s.clone_status(rd, name),
            _ => {
                drop(s);
                self.violation(format!(
                    "{method} {path}: documented but not served by the double"
                ));
                (
                    501,
                    json!([rc::error(
                        rc::FAIL_UNKNOWN_ERROR,
                        format!("{method} {path} is not served by the LINSTOR double"),
                        "",
                        ""
                    )]),
                )
            }
        }
    }
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct Dropped;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn serve(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let outcome = shared
        .dispatch(
            Origin::Client,
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            &body,
        )
        .await;
    match outcome {
        Outcome::Drop => Err(Dropped),
        Outcome::Answer((status, value)) => {
            let mut r = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
            *r.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
    }
}

async fn serve_connection<S>(stream: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| serve(shared.clone(), req));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "LINSTOR double: connection ended");
    }
}

/// Serves connections on `listener`: HTTPS when `tls` is given (a failed handshake is counted
/// and the connection closed, nothing is served on it), plain HTTP otherwise.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(stream, shared).await;
            };
            match acceptor.accept(stream).await {
                Ok(stream) => {
                    shared
                        .handshakes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .completed += 1;
                    serve_connection(stream, shared).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "LINSTOR double: TLS handshake failed");
                    shared
                        .handshakes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .failed += 1;
                }
            }
        });
    }
}
