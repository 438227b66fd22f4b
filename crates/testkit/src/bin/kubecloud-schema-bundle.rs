//! `kubecloud-schema-bundle`: regenerates the testkit's schema bundle
//! (`crates/testkit/schemas/kubernetes.json` and `linstor.json`) from the upstream schema files.
//!
//! ```text
//! $ cargo run -p kubecloud-testkit --bin kubecloud-schema-bundle
//! read /work/shared/upstream
//! wrote crates/testkit/schemas/kubernetes.json (1234567 bytes)
//! wrote crates/testkit/schemas/linstor.json (123456 bytes)
//! ```
//!
//! The upstream directory is `--upstream <dir>`, else `$KUBECLOUD_UPSTREAM`, else the first
//! `shared/upstream` found walking up from the crate (as it sits beside the repository). The
//! bundle is written to `--out <dir>` (default: the crate's `schemas/`). Generating twice gives
//! the same bytes; `.ci/run` regenerates into a temporary directory and fails if the result
//! differs from the committed files. See `kubecloud_testkit::schema::bundle` for what the bundle
//! holds and what it leaves out.
//!
//! On error (no upstream directory, a file missing, unparsable, or not described by
//! `PROVENANCE.md`) it prints one sentence on standard error and exits with status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kubecloud_testkit::schema::bundle;

/// Regenerates the testkit's schema bundle from the upstream schema files.
#[derive(Parser)]
#[command(name = "kubecloud-schema-bundle")]
struct Args {
    /// The upstream directory (default: $KUBECLOUD_UPSTREAM, else shared/upstream walking up).
    #[arg(long)]
    upstream: Option<PathBuf>,
    /// Where to write the bundle (default: the testkit crate's schemas/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[allow(clippy::print_stdout, reason = "the binary reports what it wrote")]
fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> Result<(), kubecloud_testkit::schema::CatalogError> {
        let upstream = match args.upstream.clone() {
            Some(dir) => dir,
            None => bundle::upstream_dir()?,
        };
        println!("read {}", upstream.display());
        let files = bundle::generate(&upstream)?;
        let out = args.out.clone().unwrap_or_else(bundle::committed_dir);
        bundle::write(&out, &files)?;
        for (name, text) in &files {
            println!("wrote {} ({} bytes)", out.join(name).display(), text.len());
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubecloud-schema-bundle: {e}");
            ExitCode::FAILURE
        }
    }
}
