//! `gitops`: render a tenant described in YAML as Kubernetes manifests in a folder, for Flux or
//! Argo CD to apply instead of kubecloud.
//!
//! ```text
//! cargo run --example gitops --features kubernetes -- \
//!     -f examples/data/acme.yaml --tenant acme --out /tmp/acme-gitops --tier standard=DfltRscGrp
//! ```
//!
//! Rendering needs no cluster: the backends are configured from the options (LINSTOR tiers as
//! `name=resource-group[:storage-pool]`, the first one the default; the StorageClass of VM boot
//! imports without a tier; MetalLB's namespace) and nothing is sent. The folder gets one file
//! per object, a `kustomization.yaml` and a `SECRETS.md` listing the Secrets the objects need
//! (written only with `--with-secrets`). Running it again replaces the files of the earlier
//! render, leaving other files alone.
//!
//! Exit codes: 0 done; 1 writing failed; 2 the input is invalid (an unreadable file, an invalid
//! spec or option).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints for a person"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kubecloud::gitops::Renderer;
use kubecloud::kubeovn::KubeOvn;
use kubecloud::kubevirt::KubeVirt;
use kubecloud::linstor::Linstor;
use kubecloud::linstor::translate::TierPlan;
use kubecloud::metallb::MetalLb;
use kubecloud::{Error, Tenant, TenantSpec};

#[derive(Parser)]
#[command(
    name = "gitops",
    about = "Render a tenant as Kubernetes manifests for Flux or Argo CD"
)]
struct Cli {
    /// The tenant spec (YAML).
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// The tenant's name.
    #[arg(long, short)]
    tenant: String,
    /// The folder to write (created if missing).
    #[arg(long, short)]
    out: PathBuf,
    /// A LINSTOR tier: `name=resource-group` or `name=resource-group:storage-pool` (repeat; the
    /// first is the default tier).
    #[arg(long = "tier", default_value = "standard=DfltRscGrp")]
    tiers: Vec<String>,
    /// The StorageClass of VM boot disks imported without a tier (else the cluster default).
    #[arg(long)]
    storage_class: Option<String>,
    /// MetalLB's namespace.
    #[arg(long, default_value = kubecloud::metallb::DEFAULT_NAMESPACE)]
    metallb_namespace: String,
    /// Also write the Secrets (cloud-init, SSH keys, BGP passwords) as files: encrypt them
    /// before committing.
    #[arg(long)]
    with_secrets: bool,
}

fn tier_plan(arg: &str) -> Result<TierPlan, Error> {
    let (name, rest) = arg
        .split_once('=')
        .ok_or_else(|| Error::invalid("--tier", format!("{arg:?} is not name=resource-group")))?;
    let (group, pool) = match rest.split_once(':') {
        Some((g, p)) => (g, Some(p.to_string())),
        None => (rest, None),
    };
    Ok(TierPlan {
        name: name.to_string(),
        resource_group: group.to_string(),
        storage_pool: pool,
    })
}

async fn run(cli: &Cli) -> Result<Result<(), String>, Error> {
    let text = std::fs::read_to_string(&cli.file)
        .map_err(|e| Error::invalid("-f", format!("cannot read {}: {e}", cli.file.display())))?;
    let spec = TenantSpec::from_yaml(&text)?;
    let tenant = Tenant::new(&cli.tenant)?;
    let plans = cli
        .tiers
        .iter()
        .map(|t| tier_plan(t))
        .collect::<Result<Vec<_>, _>>()?;

    // Rendering sends nothing: the client points nowhere.
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a valid URL"));
    let client = kube::Client::try_from(config)
        .map_err(|e| Error::backend("kube", "building a client", false, e))?;
    let mut storage = Linstor::builder(client.clone(), "http://127.0.0.1:9").insecure_http();
    for plan in &plans {
        storage = storage.tier(&plan.name, &plan.resource_group);
    }
    let mut compute = KubeVirt::builder(client.clone());
    if let Some(class) = &cli.storage_class {
        compute = compute.storage_class(class);
    }
    let mut storage = kubecloud::linstor::TierPlans::new(storage.build()?);
    for plan in plans {
        storage = storage.with(plan);
    }
    let renderer = Renderer::new(
        compute.build(),
        storage,
        KubeOvn::builder(client.clone()).build(),
        MetalLb::builder(client)
            .namespace(&cli.metallb_namespace)
            .build(),
    )
    .include_secrets(cli.with_secrets);
    let manifests = renderer.render(&tenant, &spec).await?;
    let report = match manifests.write_to(&cli.out) {
        Ok(report) => report,
        Err(e) => return Ok(Err(format!("cannot write {}: {e}", cli.out.display()))),
    };
    println!(
        "{}: {} objects ({} written, {} unchanged, {} removed)",
        cli.out.display(),
        manifests.objects().len(),
        report.written.len(),
        report.unchanged.len(),
        report.removed.len()
    );
    for file in &report.removed {
        println!("  - {file}");
    }
    for file in &report.written {
        println!("  + {file}");
    }
    if !manifests.secrets().is_empty() {
        let state = if cli.with_secrets {
            "written in clear: encrypt before committing"
        } else {
            "not written: create them in the cluster"
        };
        println!("Secrets ({state}; see SECRETS.md):");
        for s in manifests.secrets() {
            println!("  {}/{} keys {}", s.namespace, s.name, s.keys.join(","));
        }
    }
    Ok(Ok(()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
