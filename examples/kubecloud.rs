//! `kubecloud`: plan, apply, destroy and show a tenant described in YAML.
//!
//! ```text
//! cargo run --example kubecloud -- apply -f examples/data/acme.yaml --tenant acme
//! cargo run --example kubecloud -- plan -f examples/data/acme.yaml --tenant acme --output json
//! ```
//!
//! By default it runs on the embedded in-memory cloud, which lives as long as the command:
//! `apply` shows the result it reached, `status` and `destroy` apply `-f` first, then show or
//! remove it. With `--kubeconfig <file>` and/or `--context <name>` (built with the `kubernetes`
//! feature) it connects to that cluster with `Cloud::connect_using`: `status` shows the tenant as
//! it is and `destroy` removes what the tenant owns. A LINSTOR controller on plain http:// (Piraeus
//! without `spec.apiTLS`) is refused unless `--allow-plain-http-storage` is given.
//!
//! ```text
//! cargo run --features kubernetes --example kubecloud -- --kubeconfig ~/.kube/config apply -f examples/data/acme.yaml --tenant acme
//! cargo run --features kubernetes --example kubecloud -- rbac > kubecloud-clusterrole.yaml
//! cargo run --features kubernetes --example kubecloud -- --kubeconfig ~/.kube/config console web --tenant acme
//! cargo run --features kubernetes --example kubecloud -- rbac --node-maintenance > node-maintenance.yaml
//! cargo run --features kubernetes --example kubecloud -- --kubeconfig ~/.kube/config nodes evacuate node-2
//! cargo run --features kubernetes --example kubecloud -- --kubeconfig ~/.kube/config nodes return node-2
//! ```
//!
//! `console <vm> --tenant <t>` attaches the terminal (in raw mode) to the VM's serial console, as
//! `virtctl console` does; Ctrl+] detaches.
//!
//! Logging: `RUST_LOG` (e.g. `RUST_LOG=kubecloud=debug`) selects what is logged to stderr through
//! `tracing`; warnings are shown by default. Secrets never appear in it.
//!
//! Exit codes: 0 done; 1 the cloud refused or failed an operation; 2 the input is invalid
//! (an unreadable file, an invalid spec).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints for a person"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kubecloud::{
    ApplyEvent, ApplyOptions, ApplyReport, Cloud, Error, Labels, Plan, Progress, TenantHandle,
    TenantSpec,
};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "kubecloud",
    about = "Plan, apply and destroy tenants of a self-run cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How to print results.
    #[arg(long, short, value_enum, global = true, default_value_t = Output::Text)]
    output: Output,
    /// Use the cluster of this kubeconfig file instead of the in-memory cloud.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Use this kubeconfig context (of `--kubeconfig`, else of KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    context: Option<String>,
    /// On a cluster, connect even if this part's system is not installed (repeatable:
    /// compute, storage, network, load_balancer).
    #[arg(long, global = true)]
    allow_missing: Vec<String>,
    /// On a cluster, accept a LINSTOR controller on plain http:// (Piraeus without
    /// `spec.apiTLS`): volume operations then travel unauthenticated and unencrypted, and a
    /// warning is logged. Without it such a controller is refused.
    #[arg(long, global = true)]
    allow_plain_http_storage: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show what applying the spec would change.
    Plan(Target),
    /// Apply the spec and show the tenant.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Only show the plan.
        #[arg(long)]
        dry_run: bool,
        /// Delete what this apply created if it fails.
        #[arg(long)]
        rollback: bool,
        /// Send every step without waiting for the systems' controllers to make it ready;
        /// the steps a later one cannot be sent without still wait, and are listed first.
        #[arg(long)]
        no_wait: bool,
        /// Allow a spec that describes nothing to delete everything the tenant has (without
        /// it, such an apply is refused with exit 2; `destroy` is the usual way).
        #[arg(long)]
        allow_delete_all: bool,
    },
    /// Apply the spec, then remove everything the tenant owns.
    Destroy(Target),
    /// Show the tenant's resources (in memory: after applying the spec).
    Status(Target),
    /// Attach to a running VM's serial console, as `virtctl console` does: the terminal is put
    /// in raw mode and every key goes to the guest; Ctrl+] (the escape key) detaches.
    #[command(
        after_help = "Escape key: Ctrl+] (0x1d) detaches and restores the terminal. \
        The guest prints nothing it printed before you attached: press Enter to see its login \
        prompt again. Exit code 0 after the escape key or when the VM closes the console."
    )]
    Console {
        /// The VM's name.
        vm: String,
        /// The tenant's name.
        #[arg(long, short)]
        tenant: String,
    },
    /// Print the ClusterRole (YAML) the backends need on a cluster, for a narrow service account.
    Rbac {
        /// The parts to cover (repeatable; default all four): compute, storage, network,
        /// load_balancer.
        #[arg(long = "part")]
        parts: Vec<String>,
        /// The ClusterRole's name.
        #[arg(long, default_value = "kubecloud")]
        name: String,
        /// Print the operator's node-maintenance ClusterRole instead (named
        /// `kubecloud-node-maintenance` unless `--name` says otherwise).
        #[arg(long)]
        node_maintenance: bool,
    },
    /// Node maintenance (an operator's, not a tenant's): list, evacuate, return to service.
    Nodes {
        #[command(subcommand)]
        action: NodesCommand,
    },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// List the nodes and whether they take new VMs.
    List,
    /// Report the VMs that cannot move, cordon the node, live-migrate every other VM away and
    /// leave the node cordoned.
    Evacuate {
        /// The node.
        node: String,
        /// Also stop the VMs that cannot live-migrate.
        #[arg(long)]
        stop_unmovable: bool,
        /// How many migrations run at once.
        #[arg(long, default_value_t = 2)]
        max_parallel: usize,
        /// In memory: apply this tenant spec first (with `--tenant`).
        #[arg(long, short = 'f', requires = "tenant")]
        file: Option<PathBuf>,
        /// The tenant of `--file`.
        #[arg(long, short, requires = "file")]
        tenant: Option<String>,
    },
    /// Uncordon the node: VMs may be placed and migrate there again.
    Return {
        /// The node.
        node: String,
    },
}

#[derive(clap::Args)]
struct Target {
    /// The tenant spec (YAML).
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// The tenant's name.
    #[arg(long, short)]
    tenant: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
    Yaml,
}

/// A failure, sorted by who must act: the user (exit 2) or the cloud (exit 1).
enum Failure {
    Input(String),
    Cloud(String),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let sentence = sentence(&err);
        if err.is_invalid_input() {
            Failure::Input(sentence)
        } else {
            Failure::Cloud(sentence)
        }
    }
}

/// The error as a sentence, with its causes.
fn sentence(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
        .unwrap_or(text)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr through `tracing`, filtered by RUST_LOG (warnings by default, so a
    // warning such as plain HTTP to LINSTOR is seen). Secrets never reach a log: their type
    // prints a redaction marker.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Cloud(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// The cloud the flags name: a cluster with `--kubeconfig`/`--context`, else the in-memory one.
/// Returns whether it is a cluster.
async fn cloud(cli: &Cli) -> Result<(Cloud, bool), Failure> {
    if cli.kubeconfig.is_none() && cli.context.is_none() {
        return Ok((Cloud::in_memory(), false));
    }
    connect(cli).await.map(|cloud| (cloud, true))
}

#[cfg(feature = "kubernetes")]
async fn connect(cli: &Cli) -> Result<Cloud, Failure> {
    let mut options = kubecloud::ConnectOptions::new();
    if let Some(path) = &cli.kubeconfig {
        options = options.kubeconfig(path);
    }
    if let Some(context) = &cli.context {
        options = options.context(context);
    }
    for part in &cli.allow_missing {
        options = options.allow_missing(part.parse()?);
    }
    if cli.allow_plain_http_storage {
        use kubecloud::linstor::connect::LinstorConnect;
        options = options.allow_plain_http();
    }
    Cloud::connect_using(options).await.map_err(|err| {
        // The library names its option; the tool has a flag for it.
        match err.invalid_field() {
            Some("allow_plain_http") => Failure::Input(format!(
                "{} Pass --allow-plain-http-storage to accept it.",
                sentence(&err)
            )),
            _ => err.into(),
        }
    })
}

#[cfg(not(feature = "kubernetes"))]
async fn connect(_: &Cli) -> Result<Cloud, Failure> {
    Err(Failure::Input(
        "This build has no cluster support: rebuild with --features kubernetes.".into(),
    ))
}

#[cfg(feature = "kubernetes")]
fn rbac(parts: &[String], name: &str) -> Result<(), Failure> {
    let parts = if parts.is_empty() {
        kubecloud::Part::ALL.to_vec()
    } else {
        parts
            .iter()
            .map(|p| p.parse())
            .collect::<Result<Vec<kubecloud::Part>, Error>>()?
    };
    print!(
        "{}",
        kubecloud::rbac::rules(&parts).to_cluster_role_yaml(name)
    );
    Ok(())
}

#[cfg(feature = "kubernetes")]
fn node_maintenance_rbac(name: &str) -> Result<(), Failure> {
    let name = if name == "kubecloud" {
        kubecloud::rbac::NODE_MAINTENANCE_ROLE
    } else {
        name
    };
    print!(
        "{}",
        kubecloud::rbac::node_maintenance_rules().to_cluster_role_yaml(name)
    );
    Ok(())
}

#[cfg(not(feature = "kubernetes"))]
fn node_maintenance_rbac(name: &str) -> Result<(), Failure> {
    rbac(&[], name)
}

/// `nodes list|evacuate|return`.
async fn nodes(
    cloud: &Cloud,
    action: NodesCommand,
    on_cluster: bool,
    output: Output,
) -> Result<(), Failure> {
    match action {
        NodesCommand::List => {
            let nodes = cloud.nodes().list().await?;
            if output != Output::Text {
                return emit(&nodes, output);
            }
            for n in nodes {
                let state = if n.schedulable { "Ready" } else { "Cordoned" };
                println!("{} {state}", n.name);
            }
            Ok(())
        }
        NodesCommand::Evacuate {
            node,
            stop_unmovable,
            max_parallel,
            file,
            tenant,
        } => {
            if let (Some(file), Some(tenant), false) = (file, tenant, on_cluster) {
                let (tenant, spec) = load(cloud, &Target { file, tenant })?;
                tenant
                    .apply(&tenant.plan(&spec).await?, ApplyOptions::default())
                    .await?;
            }
            let options = kubecloud::EvacuateOptions {
                stop_unmovable,
                max_parallel,
                ..kubecloud::EvacuateOptions::default()
            };
            let text = output == Output::Text;
            let report = cloud
                .nodes()
                .evacuate(&node, &options, |event| {
                    if !text {
                        return;
                    }
                    use kubecloud::EvacuationEvent as E;
                    match event {
                        E::Blocked { vm, blockers } => {
                            let why: Vec<String> = blockers.iter().map(|b| b.to_string()).collect();
                            println!("blocked   {vm}: {}", why.join("; "));
                        }
                        E::Cordoned { node } => println!("cordoned  {node}"),
                        E::Migrating { vm } => println!("migrating {vm}"),
                        E::Migrated { vm, node } => println!("migrated  {vm} -> {node}"),
                        E::Failed { vm, reason } => println!("failed    {vm}: {reason}"),
                        E::Stopped { vm } => println!("stopped   {vm}"),
                    }
                })
                .await?;
            if !text {
                return emit(&report, output);
            }
            println!(
                "node {node} evacuated: {} migrated, {} blocked, {} stopped, {} failed; it stays cordoned until `nodes return {node}`",
                report.migrated.len(),
                report.blocked.len(),
                report.stopped.len(),
                report.failed.len()
            );
            match report.failed.first() {
                Some((vm, reason)) => Err(Failure::Cloud(format!("{vm}: {reason}"))),
                None => Ok(()),
            }
        }
        NodesCommand::Return { node } => {
            let n = cloud.nodes().return_to_service(&node).await?;
            if output != Output::Text {
                return emit(&n, output);
            }
            println!("node {} returned to service", n.name);
            Ok(())
        }
    }
}

#[cfg(not(feature = "kubernetes"))]
fn rbac(_: &[String], _: &str) -> Result<(), Failure> {
    Err(Failure::Input(
        "This build has no cluster support: rebuild with --features kubernetes.".into(),
    ))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Rbac {
        parts,
        name,
        node_maintenance,
    } = &cli.command
    {
        if *node_maintenance {
            return node_maintenance_rbac(name);
        }
        return rbac(parts, name);
    }
    let (cloud, on_cluster) = cloud(&cli).await?;
    let output = cli.output;
    match cli.command {
        Command::Rbac { .. } => Ok(()),
        Command::Console { vm, tenant } => {
            let stream = cloud.tenant(&tenant)?.vms().console(&vm).await?;
            console::attach(&vm, stream).await
        }
        Command::Nodes { action } => nodes(&cloud, action, on_cluster, output).await,
        Command::Plan(target) => {
            let (tenant, spec) = load(&cloud, &target)?;
            print_plan(&tenant.plan(&spec).await?, output)
        }
        Command::Apply {
            target,
            dry_run,
            rollback,
            no_wait,
            allow_delete_all,
        } => {
            let (tenant, spec) = load(&cloud, &target)?;
            let plan = tenant.plan(&spec).await?;
            if dry_run {
                return print_plan(&plan, output);
            }
            let options = ApplyOptions {
                rollback_on_failure: rollback,
                allow_delete_all,
                wait: !no_wait,
                ..ApplyOptions::default()
            };
            let kept: Vec<_> = plan.kept_waits().collect();
            if no_wait && output == Output::Text && !kept.is_empty() {
                println!("without waiting, these steps still wait:");
                for (step, wait) in kept {
                    println!("  {} {} {} {wait}", step.action, step.kind, step.name);
                }
            }
            if plan.deletes_everything && !allow_delete_all {
                print_plan(&plan, output)?;
                return Err(Failure::Input(format!(
                    "The spec describes nothing: applying it would delete all {} resources of tenant {}. \
                     Pass --allow-delete-all to do that, or use `destroy`.",
                    plan.count(kubecloud::Action::Delete),
                    tenant.name()
                )));
            }
            let report = apply_with_bars(&tenant, &plan, options, output).await;
            finish(&report)?;
            print_status(&tenant, output).await
        }
        Command::Destroy(target) => {
            let (tenant, spec) = load(&cloud, &target)?;
            if !on_cluster {
                tenant
                    .apply(&tenant.plan(&spec).await?, ApplyOptions::default())
                    .await?;
            }
            let plan = tenant.plan(&TenantSpec::default()).await?;
            let options = ApplyOptions {
                allow_delete_all: true,
                ..ApplyOptions::default()
            };
            let report = apply_with_bars(&tenant, &plan, options, output).await;
            finish(&report)?;
            if output == Output::Text {
                println!(
                    "tenant {} destroyed: {} resources removed",
                    tenant.name(),
                    report.done.len()
                );
            } else {
                emit(&report, output)?;
            }
            Ok(())
        }
        Command::Status(target) => {
            let (tenant, spec) = load(&cloud, &target)?;
            if !on_cluster {
                tenant
                    .apply(&tenant.plan(&spec).await?, ApplyOptions::default())
                    .await?;
            }
            print_status(&tenant, output).await
        }
    }
}

/// `console`: the terminal and the VM's serial console, joined.
mod console {
    use super::Failure;
    use kubecloud::ConsoleStream;
    use std::io::{IsTerminal, Read};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The escape key, Ctrl+] (as `virtctl console`'s).
    pub const ESCAPE: u8 = 0x1d;

    /// Raw mode while alive (keys are sent as typed, nothing is echoed locally).
    struct RawMode(bool);

    impl RawMode {
        fn enable() -> Result<Self, Failure> {
            if !std::io::stdin().is_terminal() {
                return Ok(Self(false));
            }
            crossterm::terminal::enable_raw_mode().map_err(|e| {
                Failure::Cloud(format!("Cannot put the terminal in raw mode: {e}."))
            })?;
            Ok(Self(true))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            if self.0 {
                let _ = crossterm::terminal::disable_raw_mode();
            }
        }
    }

    /// Copies keys to the console and the console to the terminal until the escape key or the
    /// end of the console.
    pub async fn attach(vm: &str, mut stream: ConsoleStream) -> Result<(), Failure> {
        let raw = RawMode::enable()?;
        eprint!("Successfully connected to {vm} console. The escape sequence is ^]\r\n");
        // Standard input is read on a thread of its own (a blocking read cannot be cancelled);
        // the process exits without waiting for it.
        let (keys, mut typed) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if keys.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0u8; 8192];
        let lost =
            |e: std::io::Error| Failure::Cloud(format!("The console connection failed: {e}."));
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => {
                    let n = read.map_err(lost)?;
                    if n == 0 {
                        break;
                    }
                    stdout.write_all(&buf[..n]).await.map_err(lost)?;
                    stdout.flush().await.map_err(lost)?;
                }
                keys = typed.recv() => {
                    let Some(keys) = keys else {
                        // Standard input ended: stop sending, keep showing the console.
                        stream.shutdown().await.map_err(lost)?;
                        break;
                    };
                    match keys.iter().position(|&k| k == ESCAPE) {
                        Some(at) => {
                            stream.write_all(&keys[..at]).await.map_err(lost)?;
                            stream.shutdown().await.map_err(lost)?;
                            break;
                        }
                        None => stream.write_all(&keys).await.map_err(lost)?,
                    }
                }
            }
        }
        drop(raw);
        eprintln!();
        Ok(())
    }
}

fn load(cloud: &Cloud, target: &Target) -> Result<(TenantHandle, TenantSpec), Failure> {
    let text = std::fs::read_to_string(&target.file)
        .map_err(|e| Failure::Input(format!("Cannot read {}: {e}.", target.file.display())))?;
    let spec = TenantSpec::from_yaml(&text)?;
    Ok((cloud.tenant(&target.tenant)?, spec))
}

fn finish(report: &ApplyReport) -> Result<(), Failure> {
    match report.failed.first() {
        None => Ok(()),
        Some((action, kind, name, reason)) => Err(Failure::Cloud(format!(
            "Could not {} {kind} {name:?}: {reason}. {} done, {} not started{}.",
            format!("{action:?}").to_lowercase(),
            report.done.len(),
            report.not_started.len(),
            if report.rolled_back.is_empty() {
                String::new()
            } else {
                format!(", {} rolled back", report.rolled_back.len())
            }
        ))),
    }
}

async fn apply_with_bars(
    tenant: &TenantHandle,
    plan: &Plan,
    options: ApplyOptions,
    output: Output,
) -> ApplyReport {
    if output != Output::Text || plan.is_empty() {
        return tenant.apply_with_progress(plan, options, &|_| {}).await;
    }
    print!("{plan}");
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:<28} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let by_resource = Mutex::new(std::collections::HashMap::new());
    let on_event = |event: ApplyEvent| {
        let mut bars_by_resource = by_resource.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars_by_resource
            .entry((event.kind, event.name.clone()))
            .or_insert_with(|| {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{} {} {}", event.action, event.kind, event.name));
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
        match event.progress {
            Progress::Ready => bar.finish_with_message("ready"),
            Progress::Failed(reason) => bar.abandon_with_message(format!("failed: {reason}")),
            Progress::RolledBack => bar.finish_with_message("rolled back"),
            other => bar.set_message(format!("{other:?}").to_lowercase()),
        }
    };
    tenant.apply_with_progress(plan, options, &on_event).await
}

fn print_plan(plan: &Plan, output: Output) -> Result<(), Failure> {
    match output {
        Output::Text => {
            print!("{plan}");
            Ok(())
        }
        _ => emit(plan, output),
    }
}

fn emit<T: Serialize>(value: &T, output: Output) -> Result<(), Failure> {
    let text = match output {
        Output::Json => {
            serde_json::to_string_pretty(value).map_err(|e| Failure::Cloud(e.to_string()))?
        }
        _ => serde_saphyr::to_string(value).map_err(|e| Failure::Cloud(e.to_string()))?,
    };
    println!("{text}");
    Ok(())
}

/// One row of the status table.
#[derive(Serialize)]
struct Row {
    kind: String,
    name: String,
    state: String,
    detail: String,
}

async fn print_status(tenant: &TenantHandle, output: Output) -> Result<(), Failure> {
    let none = Labels::new();
    let mut rows = Vec::new();
    for vm in tenant.vms().list(&none).await? {
        let ip = vm
            .status
            .interfaces
            .first()
            .and_then(|i| i.ip)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let node = vm.status.node.clone().unwrap_or_default();
        // What the guest agent reports, while one is connected.
        let guest = vm
            .status
            .guest
            .as_ref()
            .map(|g| {
                let host = g.hostname.clone().unwrap_or_default();
                let os = g.os.as_ref().map(|o| o.name.clone()).unwrap_or_default();
                format!("agent: {host} {os}").trim().to_string()
            })
            .unwrap_or_default();
        rows.push(Row {
            kind: "vm".into(),
            name: vm.spec.name,
            state: vm.status.phase.to_string(),
            detail: format!("{node} {ip} {guest}").trim().into(),
        });
    }
    for volume in tenant.volumes().list(&none).await? {
        let replicas: Vec<String> = volume
            .status
            .replicas
            .iter()
            .map(|r| r.node.clone())
            .collect();
        rows.push(Row {
            kind: "volume".into(),
            name: volume.spec.name,
            state: volume.status.phase.to_string(),
            detail: format!("{} on {}", volume.status.size, replicas.join(", ")),
        });
    }
    for subnet in tenant.network().list_subnets().await? {
        rows.push(Row {
            kind: "subnet".into(),
            name: subnet.spec.name,
            state: if subnet.ready {
                "Ready".into()
            } else {
                "Pending".into()
            },
            detail: format!(
                "{} ({} used, {} free)",
                subnet.spec.cidr, subnet.used, subnet.available
            ),
        });
    }
    for exposure in tenant.load_balancer().list_exposures().await? {
        rows.push(Row {
            kind: "exposure".into(),
            name: exposure.spec.name,
            state: format!("{:?}", exposure.state),
            detail: exposure.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        });
    }
    // Used against limit, for each resource the tenant's quota limits.
    for line in tenant.usage().await?.lines {
        let Some(limit) = line.limit else { continue };
        let full = line.used >= limit;
        rows.push(Row {
            kind: "quota".into(),
            name: line.resource.to_string(),
            state: if full { "Full".into() } else { "Ok".into() },
            detail: format!(
                "{} of {}",
                line.resource.amount(line.used),
                line.resource.amount(limit)
            ),
        });
    }
    if output != Output::Text {
        return emit(&rows, output);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["KIND", "NAME", "STATE", "DETAIL"]);
    for row in rows {
        table.add_row([row.kind, row.name, row.state, row.detail]);
    }
    println!("{table}");
    Ok(())
}
