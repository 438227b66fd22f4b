//! The schema bundle (`crates/testkit/schemas/`): the catalog and the LINSTOR document come from
//! it alone, and it is what the generator makes from `../shared/upstream` when that is there.

use std::path::PathBuf;
use std::process::Command;

use kubecloud_testkit::linstor::OpenApi;
use kubecloud_testkit::schema::{Catalog, bundle};

/// Set in the child process of [`the_catalog_needs_no_upstream_directory`].
const CHILD: &str = "KUBECLOUD_BUNDLE_TEST_CHILD";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubecloud-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs [`loads_from_the_bundle_alone`] in a child process whose `KUBECLOUD_UPSTREAM` names an
/// empty directory (which the loaders before the bundle obeyed before looking anywhere else, and
/// the generator still does) and whose working directory is an empty one outside the repository.
#[test]
fn the_catalog_needs_no_upstream_directory() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let empty = scratch("empty-upstream");
    let cwd = scratch("elsewhere");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "loads_from_the_bundle_alone", "--nocapture"])
        .env(CHILD, "1")
        .env("KUBECLOUD_UPSTREAM", &empty)
        .current_dir(&cwd)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the check: {text}");
    // The generator, by contrast, honours the variable and has nothing to read there.
    let err = bundle::generate(&empty).unwrap_err();
    assert!(err.to_string().contains("PROVENANCE.md"), "{err}");
    let _ = std::fs::remove_dir_all(&empty);
    let _ = std::fs::remove_dir_all(&cwd);
}

/// In the child process: the catalog, the LINSTOR document and both doubles load and start.
#[tokio::test]
async fn loads_from_the_bundle_alone() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let catalog = Catalog::upstream().expect("the catalog loads from the bundle");
    assert!(catalog.types().len() > 90, "{}", catalog.types().len());
    assert!(
        catalog
            .by_kind("kubevirt.io/v1", "VirtualMachine")
            .is_some()
    );
    assert!(catalog.by_kind("v1", "Pod").is_some());
    let linstor = OpenApi::upstream().expect("the LINSTOR document loads from the bundle");
    assert!(
        linstor
            .operation("POST", "/v1/resource-groups/rg/spawn")
            .is_some()
    );
    let server = kubecloud_testkit::TestServer::start()
        .await
        .expect("API double");
    let linstor = kubecloud_testkit::linstor::LinstorServer::builder()
        .nodes(["a"])
        .start()
        .await
        .expect("LINSTOR double");
    drop((server, linstor));
}

/// The committed files are what the generator makes from the upstream directory, byte for byte,
/// and generating twice gives the same bytes. Skipped without an upstream directory (a lone
/// clone); `.ci/run` makes the same check with the generator binary.
#[test]
fn the_committed_bundle_is_a_fresh_generation() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Ok(dir) = bundle::upstream_dir() else {
        eprintln!("skipped: no upstream schema directory to regenerate the bundle from");
        return;
    };
    let first = bundle::generate(&dir).expect("generates");
    let second = bundle::generate(&dir).expect("generates");
    assert_eq!(first, second, "deterministic");
    let committed = bundle::committed();
    assert_eq!(first.len(), committed.len());
    for ((name, fresh), (committed_name, committed_text)) in first.iter().zip(committed) {
        assert_eq!(*name, committed_name);
        assert!(
            fresh == committed_text,
            "crates/testkit/schemas/{name} differs from a fresh generation from {}: run `{}` \
             and commit the result",
            dir.display(),
            bundle::COMMAND
        );
        // Also what is on disk (the compiled-in copy could be stale only if the build is).
        let on_disk = std::fs::read_to_string(bundle::committed_dir().join(name)).unwrap();
        assert!(on_disk == *fresh, "{name} on disk");
    }
}

/// The header names the command and every upstream file with its sha256 and version.
#[test]
fn the_bundle_names_its_sources() {
    for (name, text) in bundle::committed() {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let header = &value["header"];
        assert_eq!(header["generatedBy"], bundle::COMMAND, "{name}");
        let sources = header["sources"].as_array().unwrap();
        assert!(!sources.is_empty(), "{name}");
        for s in sources {
            for key in ["file", "sha256", "repository", "commit", "version"] {
                assert!(
                    s[key].as_str().is_some_and(|v| !v.is_empty()),
                    "{name}: {key} of {s}"
                );
            }
        }
        assert!(
            text.starts_with("{\n \"header\":"),
            "{name}: the header comes first"
        );
    }
}
