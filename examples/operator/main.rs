//! A Kubernetes operator built on kubecloud: it reconciles `Tenant` custom resources
//! (`tenants.kubecloud.io`, one object per tenant) through kubecloud's plan and apply, reports
//! `Ready`/`Progressing`/`Failed` conditions and the plan summary on the status, and destroys a
//! tenant through a finalizer when its object is deleted. It is the template to copy for your own
//! operator.
//!
//! ```text
//! # the CRD, generated from the Rust types
//! cargo run --example operator --features kubernetes -- --print-crd | kubectl apply -f -
//! # run it against the cluster of the current kubeconfig context
//! LINSTOR_URL=http://linstor-controller.piraeus-datastore.svc:3370 LINSTOR_ALLOW_PLAIN_HTTP=true \
//!   RUST_LOG=info,operator=debug cargo run --example operator --features kubernetes
//! kubectl apply -f tenant.yaml && kubectl get tenants
//! ```
//!
//! Layout: `resource.rs` (the custom resource and its CRD), `reconcile.rs` (the controller,
//! finalizer, status, backoff), `cloud.rs` (`cloud_for`: the backends on a client).
#![allow(clippy::print_stdout, reason = "--print-crd prints the CRD")]

mod operator;

use clap::Parser;

use operator::{cloud::cloud_for, reconcile, resource};

/// Reconciles `Tenant` objects into kubecloud tenants.
#[derive(Parser, Debug)]
#[command(name = "operator", about)]
struct Args {
    /// Print the `Tenant` CRD as YAML and exit.
    #[arg(long)]
    print_crd: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.print_crd {
        print!("{}", resource::crd_yaml());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // KUBECONFIG / ~/.kube/config / in-cluster, as kubectl finds it.
    let client = kube::Client::try_default().await?;
    let cloud = cloud_for(client.clone()).await?;
    tracing::info!(backends = ?cloud.backend_names(), "operator started");
    let ctx = reconcile::Context::new(client, cloud);
    tokio::select! {
        () = reconcile::run(ctx) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
