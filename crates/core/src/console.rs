//! A VM's serial console and VNC display as bidirectional byte streams
//! ([`crate::Compute::console`], [`crate::Compute::vnc`]).
//!
//! A [`ConsoleStream`] is the bytes of one device, both ways, whatever the backend: it implements
//! tokio's [`AsyncRead`] (what the device sends: a serial console's output, a VNC server's RFB
//! messages) and [`AsyncWrite`] (what the caller sends: keystrokes, RFB client messages).
//! Shutting down the write half (or dropping the stream) closes the connection; a read of 0
//! bytes means the backend closed it (the VM stopped, or the connection was taken over).
//! No framing is added or removed: a serial console carries raw terminal bytes, VNC carries
//! RFB (RFC 6143) from its `RFB 003.008\n` greeting on.
//!
//! Why `AsyncRead + AsyncWrite` rather than a `Stream`/`Sink` of `Bytes`: a console is a byte
//! pipe with no message boundaries of its own (KubeVirt's websocket frames are transport, not
//! meaning), and byte streams compose with `tokio::io::copy_bidirectional`, `BufReader` and
//! every terminal or VNC library.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which device of a VM a [`ConsoleStream`] is connected to.
///
/// ```
/// use kubecloud_core::ConsoleKind;
/// assert_eq!(ConsoleKind::Serial.to_string(), "serial console");
/// assert_eq!(ConsoleKind::Vnc.operation(), "vms.vnc");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConsoleKind {
    /// The first serial port (`ttyS0` in a Linux guest): text, both ways.
    Serial,
    /// The graphical display, as a VNC server speaking RFB 3.8.
    Vnc,
}

impl ConsoleKind {
    /// The operation's name in errors (`vms.console`, `vms.vnc`).
    pub fn operation(self) -> &'static str {
        match self {
            Self::Serial => "vms.console",
            Self::Vnc => "vms.vnc",
        }
    }

    /// The [`crate::ComputeCapabilities`] flag the operation needs (`serial_console`, `vnc`).
    pub fn capability(self) -> &'static str {
        match self {
            Self::Serial => "serial_console",
            Self::Vnc => "vnc",
        }
    }
}

impl fmt::Display for ConsoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Serial => "serial console",
            Self::Vnc => "VNC display",
        })
    }
}

/// Anything a backend can hand out as a console: a byte stream both ways.
trait ConsoleIo: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> ConsoleIo for T {}

/// A VM's serial console or VNC display, connected: read what the device sends (a serial
/// console's output, a VNC server's RFB messages), write what it should receive (keystrokes, RFB
/// client messages). No framing is added or removed. Shutting down the write half (or dropping
/// the stream) closes the connection; a read of 0 bytes means the backend closed it.
///
/// Byte streams (tokio's `AsyncRead + AsyncWrite`) rather than a `Stream`/`Sink` of messages: a
/// console has no message boundaries of its own (KubeVirt's websocket frames are transport), and
/// byte streams compose with `tokio::io::copy_bidirectional` and any terminal or VNC library.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use kubecloud_core::{ConsoleKind, ConsoleStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// // A backend wraps its connection; here, one end of an in-memory pipe.
/// let (ours, mut device) = tokio::io::duplex(64);
/// let mut console = ConsoleStream::new(ConsoleKind::Serial, ours);
/// device.write_all(b"web login: ").await?;
/// let mut prompt = [0u8; 11];
/// console.read_exact(&mut prompt).await?;
/// assert_eq!(&prompt, b"web login: ");
/// console.write_all(b"root\r").await?;
/// # Ok(()) }
/// ```
pub struct ConsoleStream {
    kind: ConsoleKind,
    io: Pin<Box<dyn ConsoleIo>>,
}

impl ConsoleStream {
    /// Wraps a backend's connection to the device `kind`.
    pub fn new(kind: ConsoleKind, io: impl AsyncRead + AsyncWrite + Send + 'static) -> Self {
        Self {
            kind,
            io: Box::pin(io),
        }
    }

    /// The device this stream is connected to.
    pub fn kind(&self) -> ConsoleKind {
        self.kind
    }
}

impl fmt::Debug for ConsoleStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes (a console may show passwords) are never printed.
        f.debug_struct("ConsoleStream")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for ConsoleStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for ConsoleStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_shutdown(cx)
    }
}
