//! KubeVirt's console subresources, as virt-api and virt-handler serve them:
//! `GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/console`
//! and `.../vnc`, upgraded to a websocket that carries the device's bytes in binary frames.
//!
//! What virt-api does (`pkg/virt-api/rest/console.go`, `vnc.go`, `streamer.go`):
//! - it fetches and validates the instance *before* the upgrade, so errors are plain `Status`
//!   answers: no instance is 404 `virtualmachineinstance.kubevirt.io "x" not found`; a console
//!   with `autoattachSerialConsole: false` is 400 `No serial consoles are present.`, a VNC with
//!   `autoattachGraphicsDevice: false` 400 `No graphics devices are present.`; a `Failed`
//!   instance is 409 `VMI is in failed status` (console); an instance that does not run is 400
//!   `VMI is not running`;
//! - then it upgrades with gorilla/websocket's `Upgrader` (`kubecli.NewUpgrader`,
//!   `staging/src/kubevirt.io/client-go/kubecli/websocket.go`), whose only subprotocol is
//!   `plain.kubevirt.io` (`PlainStreamProtocolName`): the first protocol the client offers that
//!   the server knows is chosen; a client offering none, or only unknown ones, is still upgraded,
//!   with no `Sec-WebSocket-Protocol` answered (virt-api's own functional tests rely on both,
//!   `tests/vnc_test.go`). A request that is not a websocket handshake (method, `Connection:
//!   Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, a 16-byte base64
//!   `Sec-WebSocket-Key`) is refused 400 with gorilla's message;
//! - after the upgrade it pipes raw bytes to virt-handler, which speaks websocket binary messages
//!   to the client (`kubecli.CopyTo`) and takes any data message's payload as input.
//!
//! The devices (virt-handler connects the websocket to the guest's serial and VNC unix sockets):
//! - **serial console**: a Linux guest at its getty login prompt, behind a tty in canonical mode
//!   with echo: typed bytes are echoed, Enter (`\r`) echoes `\r\n`, backspace erases; Enter on an
//!   empty name prints the prompt `<hostname> login: ` again, a name is followed by `Password: `
//!   (not echoed), then `Login incorrect` and the prompt. As on a real console, a connection
//!   sees nothing of what the guest printed before it (the boot prompt included) until Enter is
//!   pressed. The hostname is the instance's `spec.hostname`, else its name.
//! - **VNC**: QEMU's VNC server, RFB 3.8 (RFC 6143): it sends `RFB 003.008\n`, reads the
//!   client's version, offers the one security type `None` (1), answers `SecurityResult` OK and,
//!   after `ClientInit`, `ServerInit` (720x400, 32 bpp true colour, the name
//!   `<namespace>_<name>` libvirt gives the domain); later client messages are read and dropped
//!   (no framebuffer updates). A wrong version or security type ends the connection, as QEMU
//!   does (with the RFB 3.8 failure reason for the security type).
//!
//! Not modelled: one VNC session at a time (`preserveSession`), the end of the stream when the
//! instance stops, keep-alive pings.

use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use crate::cluster::Cluster;
use crate::status::ApiError;

/// The one websocket subprotocol virt-api speaks (`subresources.PlainStreamProtocolName`).
pub(crate) const PLAIN_STREAM_PROTOCOL: &str = "plain.kubevirt.io";

const VMI: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstance");

/// The device a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Serial,
    Vnc,
}

/// A request's websocket handshake headers and its pending upgrade, taken before the request is
/// read (`hyper::upgrade::on`).
pub(crate) struct Handshake {
    headers: HeaderMap,
    method: String,
    upgrade: Mutex<Option<OnUpgrade>>,
}

impl Handshake {
    /// The handshake parts of a request (every GET keeps them: whether it is a websocket request
    /// is only decided for the console subresources).
    pub(crate) fn new(method: &str, headers: &HeaderMap, upgrade: Option<OnUpgrade>) -> Self {
        Self {
            headers: headers.clone(),
            method: method.to_string(),
            upgrade: Mutex::new(upgrade),
        }
    }
}

/// Whether this module serves `plural/{name}/subresource` of the subresource API.
pub(crate) fn handles(plural: &str, subresource: Option<&str>) -> bool {
    plural == "virtualmachineinstances" && matches!(subresource, Some("console" | "vnc"))
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Serves `GET .../virtualmachineinstances/{name}/console|vnc` in `ns`: validates as virt-api
/// does, answers `101 Switching Protocols` and runs the device on the upgraded connection.
pub(crate) fn serve(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    subresource: &str,
    handshake: &Handshake,
) -> Result<Response<Body>, ApiError> {
    let device = match subresource {
        "console" => Device::Serial,
        _ => Device::Vnc,
    };
    if handshake.method != "GET" {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{} is not supported on {subresource}", handshake.method),
        ));
    }
    let api = cluster.as_manager("virt-api");
    let vmi = api.get_opt(VMI.0, VMI.1, Some(ns), name)?.ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("virtualmachineinstance.kubevirt.io \"{name}\" not found"),
        )
    })?;
    validate(&vmi, device)?;
    let key = check_handshake(&handshake.headers)?;
    let protocol = select_protocol(&handshake.headers);
    let upgrade = handshake
        .upgrade
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| ApiError::internal("the connection cannot be upgraded"))?;
    let hostname = vmi["spec"]["hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(name)
        .to_string();
    let display = format!("{ns}_{name}");
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "console upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        match device {
            Device::Serial => serial(ws, &hostname).await,
            Device::Vnc => vnc(ws, &display).await,
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(p) = protocol {
        headers.insert(
            hyper::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(p),
        );
    }
    Ok(response)
}

/// virt-api's `validateVMIForConsole` / `validateVMIForVNC`.
fn validate(vmi: &Value, device: Device) -> Result<(), ApiError> {
    let devices = &vmi["spec"]["domain"]["devices"];
    let bad = |m: &str| ApiError::new(400, "BadRequest", m.to_string());
    match device {
        Device::Serial if devices["autoattachSerialConsole"] == Value::Bool(false) => {
            return Err(bad("No serial consoles are present."));
        }
        Device::Vnc if devices["autoattachGraphicsDevice"] == Value::Bool(false) => {
            return Err(bad("No graphics devices are present."));
        }
        _ => {}
    }
    let phase = vmi["status"]["phase"].as_str().unwrap_or("");
    if device == Device::Serial && phase == "Failed" {
        let name = vmi["metadata"]["name"].as_str().unwrap_or("");
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"{name}\": VMI is in failed status"
            ),
        ));
    }
    if phase != "Running" {
        return Err(bad("VMI is not running"));
    }
    Ok(())
}

/// gorilla/websocket's `Upgrader.Upgrade` checks, in its order and with its messages; the
/// client's key on success.
fn check_handshake(headers: &HeaderMap) -> Result<String, ApiError> {
    let tokens = |name: hyper::header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    let bad = |m: &str| {
        ApiError::new(
            400,
            "BadRequest",
            format!("websocket: the client is not using the websocket protocol: {m}"),
        )
    };
    if !tokens(hyper::header::CONNECTION)
        .iter()
        .any(|t| t == "upgrade")
    {
        return Err(bad("'upgrade' token not found in 'Connection' header"));
    }
    if !tokens(hyper::header::UPGRADE)
        .iter()
        .any(|t| t == "websocket")
    {
        return Err(bad("'websocket' token not found in 'Upgrade' header"));
    }
    if !tokens(hyper::header::SEC_WEBSOCKET_VERSION)
        .iter()
        .any(|t| t == "13")
    {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
        ));
    }
    let key = headers
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let valid = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .is_ok_and(|k| k.len() == 16);
    if !valid {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte in length",
        ));
    }
    Ok(key.trim().to_string())
}

/// The first subprotocol the client offers that virt-api knows, if any.
fn select_protocol(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| *p == PLAIN_STREAM_PROTOCOL)
        .map(|_| PLAIN_STREAM_PROTOCOL)
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The payload of the next data message, `None` when the connection ends. Pings are answered
/// by tungstenite.
async fn next_data(ws: &mut Ws) -> Option<Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Binary(b)) => return Some(b),
            Ok(Message::Text(t)) => return Some(Bytes::copy_from_slice(t.as_bytes())),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn send(ws: &mut Ws, bytes: impl Into<Bytes>) -> bool {
    ws.send(Message::Binary(bytes.into())).await.is_ok()
}

/// Where the simulated getty is.
enum Login {
    Name(Vec<u8>),
    Password,
}

/// The guest's serial console: a getty login prompt behind a tty with echo.
async fn serial(mut ws: Ws, hostname: &str) {
    let prompt = format!("{hostname} login: ");
    let mut state = Login::Name(Vec::new());
    while let Some(input) = next_data(&mut ws).await {
        let mut out = Vec::new();
        for &b in input.iter() {
            match (&mut state, b) {
                (Login::Name(name), b'\r' | b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    if name.is_empty() {
                        out.extend_from_slice(prompt.as_bytes());
                    } else {
                        out.extend_from_slice(b"Password: ");
                        state = Login::Password;
                    }
                }
                (Login::Name(name), 0x7f | 0x08) => {
                    // Erase one character (the tty's ECHOE), if any.
                    let erased = name.pop().is_some();
                    out.extend_from_slice(if erased { b"\x08 \x08" } else { b"" });
                }
                (Login::Name(name), 0x03) => {
                    // ^C: the tty echoes it and getty starts over.
                    name.clear();
                    out.extend_from_slice(b"^C\r\n");
                    out.extend_from_slice(prompt.as_bytes());
                }
                (Login::Name(name), b) if b >= 0x20 || b == b'\t' => {
                    name.push(b);
                    out.push(b);
                }
                (Login::Password, b'\r' | b'\n') => {
                    out.extend_from_slice(b"\r\nLogin incorrect\r\n");
                    out.extend_from_slice(prompt.as_bytes());
                    state = Login::Name(Vec::new());
                }
                _ => {}
            }
        }
        if !out.is_empty() && !send(&mut ws, out).await {
            return;
        }
    }
}

/// Reads exactly `n` bytes of client data (RFB messages may span websocket frames).
async fn read_exact(ws: &mut Ws, pending: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    while pending.len() < n {
        pending.extend_from_slice(&next_data(ws).await?);
    }
    Some(pending.drain(..n).collect())
}

/// QEMU's VNC server up to `ServerInit` (RFC 6143 §7.1, §7.3).
async fn vnc(mut ws: Ws, display: &str) {
    let mut pending = Vec::new();
    if !send(&mut ws, &b"RFB 003.008\n"[..]).await {
        return;
    }
    let Some(version) = read_exact(&mut ws, &mut pending, 12).await else {
        return;
    };
    if !version.starts_with(b"RFB 003.") || version[11] != b'\n' {
        return;
    }
    // One security type: None.
    if !send(&mut ws, &[1u8, 1][..]).await {
        return;
    }
    let Some(chosen) = read_exact(&mut ws, &mut pending, 1).await else {
        return;
    };
    if chosen[0] != 1 {
        let reason = b"Unsupported security type";
        let mut failed = 1u32.to_be_bytes().to_vec();
        failed.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        failed.extend_from_slice(reason);
        send(&mut ws, failed).await;
        return;
    }
    if !send(&mut ws, 0u32.to_be_bytes().to_vec()).await {
        return;
    }
    // ClientInit: the shared flag.
    if read_exact(&mut ws, &mut pending, 1).await.is_none() {
        return;
    }
    let mut init = Vec::new();
    init.extend_from_slice(&720u16.to_be_bytes());
    init.extend_from_slice(&400u16.to_be_bytes());
    // Pixel format: 32 bpp, depth 24, little endian, true colour, max 255 each, shifts 16/8/0.
    init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    init.extend_from_slice(&(display.len() as u32).to_be_bytes());
    init.extend_from_slice(display.as_bytes());
    if !send(&mut ws, init).await {
        return;
    }
    // Client messages from here on are read and dropped.
    while next_data(&mut ws).await.is_some() {}
}
