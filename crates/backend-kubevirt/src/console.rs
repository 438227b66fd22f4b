//! A VM's serial console and VNC display through KubeVirt's subresource API, as `virtctl
//! console` and `virtctl vnc` reach them: `GET /apis/subresources.kubevirt.io/v1/namespaces/
//! {ns}/virtualmachineinstances/{vm}/console|vnc`, upgraded to a websocket with subprotocol
//! `plain.kubevirt.io` (kubevirt's `staging/src/kubevirt.io/client-go/kubevirt/typed/core/v1/
//! websocket.go`: a gorilla `Dialer` with `Subprotocols: [PlainStreamProtocolName]`), the
//! device's bytes in binary messages both ways (`kubecli.CopyTo`/`CopyFrom`).
//!
//! The upgrade is made here over `kube::Client::send` (kube's own `Client::connect` offers only
//! the `v4/v5.channel.k8s.io` protocols of pod exec, which virt-api does not answer), then
//! the websocket is tokio-tungstenite's, as in kube. A task pumps it to and from one end of an
//! in-memory pipe whose other end is the [`ConsoleStream`].

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use kubecloud_core::{ConsoleKind, ConsoleStream, Error, ResourceKind, Result, Tenant};
use kubecloud_kube::from_kube;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};

use crate::{BACKEND, KubeVirt, apis};

/// The websocket subprotocol of KubeVirt's streaming subresources (`PlainStreamProtocolName`).
pub const PLAIN_STREAM_PROTOCOL: &str = "plain.kubevirt.io";

/// Bytes buffered between the websocket and the caller, each way.
const PIPE: usize = 64 * 1024;

impl KubeVirt {
    /// Opens the VM's serial console or VNC display (see the module docs).
    pub(crate) async fn open_console(
        &self,
        tenant: &Tenant,
        name: &str,
        kind: ConsoleKind,
    ) -> Result<ConsoleStream> {
        // Ownership first: another tenant's VM (or none) is not found, and nothing else is sent.
        self.vm_object(tenant, name).await?;
        let sub = match kind {
            ConsoleKind::Serial => "console",
            ConsoleKind::Vnc => "vnc",
        };
        let ns = kubecloud_kube::tenant_namespace(tenant);
        let path = apis::instance_subresource_path(&ns, name, sub);
        let key = generate_key();
        let request = http::Request::get(path.as_str())
            .header(http::header::CONNECTION, "Upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header(http::header::SEC_WEBSOCKET_VERSION, "13")
            .header(http::header::SEC_WEBSOCKET_KEY, key.as_str())
            .header(http::header::SEC_WEBSOCKET_PROTOCOL, PLAIN_STREAM_PROTOCOL)
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| Error::backend(BACKEND, "building a request", false, e))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| from_kube(BACKEND, ResourceKind::Vm, name, e))?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            return Err(refused(name, kind, response).await);
        }
        let headers = response.headers();
        let accepted = headers
            .get(http::header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
        // Like gorilla's dialer: no protocol answered is fine, another one is not.
        let protocol_ok = headers
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .is_none_or(|p| p.as_bytes() == PLAIN_STREAM_PROTOCOL.as_bytes());
        if !accepted || !protocol_ok {
            return Err(Error::backend(
                BACKEND,
                format!("the {kind} of VM {name:?}: bad websocket handshake"),
                false,
                format!(
                    "accept key {}, subprotocol {}",
                    if accepted { "ok" } else { "wrong" },
                    if protocol_ok {
                        "ok"
                    } else {
                        "not plain.kubevirt.io"
                    },
                ),
            ));
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(|e| {
            Error::backend(
                BACKEND,
                format!("upgrading to the {kind} of VM {name:?}"),
                true,
                e,
            )
        })?;
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        let (ours, theirs) = tokio::io::duplex(PIPE);
        tokio::spawn(pump(ws, theirs));
        tracing::debug!(tenant = %tenant, vm = name, %kind, "console connected");
        Ok(ConsoleStream::new(kind, ours))
    }
}

/// The error for a handshake virt-api answered with a `Status` instead of `101`: a VM whose
/// instance is missing (404) or not running (400 `VMI is not running`, 409 failed) is a
/// conflict (the VM itself exists, it was read before), as is a VM without the device.
async fn refused(
    name: &str,
    kind: ConsoleKind,
    response: http::Response<kube::client::Body>,
) -> Error {
    let code = response.status().as_u16();
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let status: Option<kube::core::Status> = serde_json::from_slice(&body).ok();
    let message = status
        .as_ref()
        .map(|s| s.message.clone())
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    match code {
        404 => Error::conflict(ResourceKind::Vm, name, "the VM is not running"),
        400 if message.contains("not running") => {
            Error::conflict(ResourceKind::Vm, name, "the VM is not running")
        }
        400 if message.contains("No serial consoles") || message.contains("No graphics") => {
            Error::conflict(ResourceKind::Vm, name, format!("the VM has no {kind}"))
        }
        409 => Error::conflict(ResourceKind::Vm, name, message),
        _ => match status {
            Some(s) => from_kube(
                BACKEND,
                ResourceKind::Vm,
                name,
                kube::Error::Api(Box::new(s)),
            ),
            None => Error::backend(
                BACKEND,
                format!("opening the {kind} of VM {name:?}: HTTP {code}"),
                code >= 500 || code == 429,
                message,
            ),
        },
    }
}

/// Moves bytes between the websocket and the pipe until either side ends: what the caller
/// writes goes out in binary messages (its shutdown sends a websocket close), what the device
/// sends is written to the caller (the server's close ends the caller's reads).
async fn pump<S>(ws: WebSocketStream<S>, pipe: tokio::io::DuplexStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (mut from_caller, mut to_caller) = tokio::io::split(pipe);
    let up = async {
        let mut buf = vec![0u8; 8192];
        loop {
            match from_caller.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let close = CloseFrame {
                        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return;
                }
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let down = async {
        while let Some(message) = stream.next().await {
            let data = match message {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Text(t)) => Bytes::copy_from_slice(t.as_bytes()),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            if to_caller.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to_caller.shutdown().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
