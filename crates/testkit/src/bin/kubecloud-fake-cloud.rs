//! `kubecloud-fake-cloud`: the testkit's [`FakeCloud`] as a server you can run and point
//! `kubectl` (or kubecloud, or any Kubernetes client) at.
//!
//! It starts the Kubernetes API double with every upstream CRD kubecloud uses and the simulated
//! controllers (KubeVirt + CDI, LINSTOR CSI, Kube-OVN, MetalLB, garbage collector, namespaces),
//! and the LINSTOR controller double; listens on `127.0.0.1`; writes a kubeconfig (cluster, user
//! and context `kubecloud-fake`, current context set, plain HTTP, no credentials); and runs until
//! SIGINT (Ctrl-C) or SIGTERM. It removes nothing when it stops: the kubeconfig stays.
//!
//! ```text
//! $ cargo run -p kubecloud-testkit --bin kubecloud-fake-cloud -- --kubeconfig /tmp/fake.kubeconfig
//! listening on http://127.0.0.1:38211
//! export KUBECONFIG=/tmp/fake.kubeconfig
//! linstor controller at https://127.0.0.1:40871
//! $ KUBECONFIG=/tmp/fake.kubeconfig kubectl get nodes
//! ```
//!
//! The LINSTOR double serves HTTPS and requires a client certificate; the `LinstorCluster` names
//! the Secret `piraeus-datastore/linstor-client-tls` that holds one (and the CA), as on a Piraeus
//! installation with API TLS, so a client discovering LINSTOR through the kubeconfig finds both.
//!
//! Standard output carries exactly those lines, the first one machine-readable
//! (`listening on <url>`); logs go to standard error (`RUST_LOG` filters them, default `info`).
//! On error (port in use, kubeconfig path not writable) it prints one sentence on standard error
//! and exits with status 1.
//!
//! Options: `--kubeconfig <path>` (default `./fake-cloud.kubeconfig`), `--port <port>` (default
//! 0: any free port), `--latency-ms <ms>` (added to every API request, default 0), `--seed <n>`
//! (uids, generated names, default 0), `--csi <profile>` (a simulated CSI driver instead of
//! LINSTOR, see `kubecloud_testkit::csi`; the third line is then `csi driver <name>`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kubecloud_testkit::csi::CsiProfile;
use kubecloud_testkit::{FakeCloud, Latency};
use serde_json::json;

/// The name of the cluster, user and context in the kubeconfig.
const CONTEXT: &str = "kubecloud-fake";

/// Runs kubecloud's fake cloud: a Kubernetes API double with the simulated KubeVirt, CDI,
/// LINSTOR, Kube-OVN and MetalLB controllers, and a LINSTOR controller double.
#[derive(Debug, Parser)]
#[command(name = "kubecloud-fake-cloud", version)]
struct Args {
    /// Where to write the kubeconfig for the server.
    #[arg(long, default_value = "./fake-cloud.kubeconfig")]
    kubeconfig: PathBuf,
    /// Port on 127.0.0.1 for the Kubernetes API (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Latency added to every Kubernetes API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Seed of the generated uids and names.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A simulated CSI driver instead of LINSTOR: ceph-rbd, cephfs, longhorn, mayastor,
    /// lvm-localpv, democratic-iscsi, democratic-nfs, democratic-nvmeof or generic.
    #[arg(long)]
    csi: Option<CsiProfile>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(sentence) => {
            eprintln!("kubecloud-fake-cloud: {sentence}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Listen for the signals before announcing: a supervisor may send SIGTERM as soon as it
    // reads the first line, and a signal without a handler kills the process uncleanly.
    let stop = StopSignals::listen()?;
    let latency = match args.latency_ms {
        0 => Latency::None,
        ms => Latency::Fixed(Duration::from_millis(ms)),
    };
    let mut builder = FakeCloud::builder();
    if let Some(profile) = args.csi {
        builder = builder.csi(profile);
    }
    let cloud = builder
        .port(args.port)
        .latency(latency)
        .seed(args.seed)
        .start()
        .await
        .map_err(|e| match args.port {
            0 => format!("could not start the fake cloud: {e}."),
            port => format!(
                "could not start the fake cloud on 127.0.0.1:{port} (is the port in use?): {e}."
            ),
        })?;
    let path = std::path::absolute(&args.kubeconfig).unwrap_or(args.kubeconfig.clone());
    write_kubeconfig(&path, cloud.kube().url())?;
    let storage = match (cloud.try_linstor(), cloud.csi()) {
        (Some(linstor), _) => format!("linstor controller at {}", linstor.url()),
        (None, Some(csi)) => format!("csi driver {}", csi.driver()),
        (None, None) => unreachable!("a fake cloud has LINSTOR or a CSI driver"),
    };
    announce(cloud.kube().url(), &path, &storage);
    stop.wait().await;
    tracing::info!("stopping");
    Ok(())
}

/// The three lines on standard output.
#[allow(clippy::print_stdout, reason = "the binary's machine-readable output")]
fn announce(url: &str, kubeconfig: &Path, storage: &str) {
    println!("listening on {url}");
    println!("export KUBECONFIG={}", kubeconfig.display());
    println!("{storage}");
}

/// The kubeconfig for `url`: one cluster, a user without credentials, one context, current.
fn kubeconfig(url: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    })
}

fn write_kubeconfig(path: &Path, url: &str) -> Result<(), String> {
    let yaml = serde_saphyr::to_string(&kubeconfig(url))
        .map_err(|e| format!("could not render the kubeconfig: {e}."))?;
    std::fs::write(path, yaml)
        .map_err(|e| format!("could not write the kubeconfig to {}: {e}.", path.display()))?;
    tracing::info!(path = %path.display(), "kubeconfig written");
    Ok(())
}

/// SIGTERM and SIGINT, listened for from creation on.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate())
            .map_err(|e| format!("could not listen for SIGTERM: {e}."))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| format!("could not listen for SIGINT: {e}."))?;
        Ok(Self { term, int })
    }

    /// Returns when either signal arrives (or has arrived since [`StopSignals::listen`]).
    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
