//! `kubecloud-sim`: the simulated KubeVirt + CDI, Kube-OVN, MetalLB and LINSTOR CSI controllers
//! on any Kubernetes API server (kind, k3s, envtest, the testkit's API double), the way KWOK
//! simulates nodes and pods. See `kubecloud_testkit::sim` for what is installed and simulated.
//!
//! ```text
//! $ kind create cluster
//! $ cargo run -p kubecloud-testkit --bin kubecloud-sim -- --kubeconfig ~/.kube/config --install-crds
//! linstor controller at https://127.0.0.1:3370
//! ready
//! ```
//!
//! Standard output carries exactly those lines (the first only when the LINSTOR CSI driver is
//! simulated), `ready` once the CRDs are established, the installed objects applied and the
//! controllers started; logs go to standard error (`RUST_LOG` filters them, default `info`). It
//! runs until SIGINT (Ctrl-C) or SIGTERM and removes nothing when it stops. On error (kubeconfig
//! unreadable, API server unreachable, CRDs refused) it prints one sentence on standard error and
//! exits with status 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kubecloud_testkit::sim::{Component, SimOptions, Simulation};

/// Runs the simulated KubeVirt, CDI, Kube-OVN, MetalLB and LINSTOR CSI controllers against a
/// Kubernetes API server.
#[derive(Debug, Parser)]
#[command(name = "kubecloud-sim", version)]
struct Args {
    /// The kubeconfig of the cluster.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Install the simulated systems' CRDs (from the testkit's schema bundle) and wait until they
    /// are established.
    #[arg(long)]
    install_crds: bool,
    /// Where the LINSTOR controller double listens (HTTPS, client certificate required).
    #[arg(long, default_value = "127.0.0.1:0")]
    linstor_listen: SocketAddr,
    /// Simulate only these systems (comma-separated; default all).
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Component>,
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
            eprintln!("kubecloud-sim: {sentence}");
            ExitCode::FAILURE
        }
    }
}

async fn client(args: &Args) -> Result<kube::Client, String> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig).map_err(|e| {
        format!(
            "could not read the kubeconfig {}: {e}.",
            args.kubeconfig.display()
        )
    })?;
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("could not use the kubeconfig: {e}."))?;
    kube::Client::try_from(config).map_err(|e| format!("could not make a client: {e}."))
}

async fn run(args: Args) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen for the signals before announcing, so a supervisor may stop it right away.
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| format!("could not listen for SIGTERM: {e}."))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| format!("could not listen for SIGINT: {e}."))?;
    let client = client(&args).await?;
    let options = SimOptions {
        components: if args.only.is_empty() {
            Component::ALL.to_vec()
        } else {
            args.only.clone()
        },
        install_crds: args.install_crds,
        linstor_listen: args.linstor_listen,
        ..SimOptions::default()
    };
    let sim = Simulation::start(client, options)
        .await
        .map_err(|e| format!("could not start the simulation: {e}."))?;
    announce(&sim);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    drop(sim);
    Ok(())
}

/// The lines on standard output.
#[allow(clippy::print_stdout, reason = "the binary's machine-readable output")]
fn announce(sim: &Simulation) {
    if let Some(linstor) = sim.linstor() {
        println!("linstor controller at {}", linstor.url());
    }
    println!("ready");
}
