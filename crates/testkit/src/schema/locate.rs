//! Finding the upstream schema directory, for the schema bundle's generator (the catalog itself
//! reads only the bundle compiled into the crate).

use std::path::{Path, PathBuf};

use super::CatalogError;

/// Environment variable that names the upstream schema directory explicitly.
const ENV_VAR: &str = "KUBECLOUD_UPSTREAM";

/// `$KUBECLOUD_UPSTREAM` if set, else the first `shared/upstream` found walking up
/// from this crate's manifest directory and then from the current directory.
pub(crate) fn upstream_dir() -> Result<PathBuf, CatalogError> {
    if let Some(dir) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            Ok(dir)
        } else {
            Err(CatalogError::NotFound {
                looked_in: vec![dir],
            })
        };
    }
    let mut starts = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    find_walking_up(&starts)
}

/// The first `<ancestor>/shared/upstream` that is a directory, for each start in turn.
pub(crate) fn find_walking_up(starts: &[PathBuf]) -> Result<PathBuf, CatalogError> {
    let mut looked_in = Vec::new();
    for start in starts {
        for ancestor in start.ancestors() {
            let candidate = ancestor.join("shared").join("upstream");
            if looked_in.contains(&candidate) {
                continue;
            }
            if is_upstream_dir(&candidate) {
                return Ok(candidate);
            }
            looked_in.push(candidate);
        }
    }
    Err(CatalogError::NotFound { looked_in })
}

fn is_upstream_dir(dir: &Path) -> bool {
    dir.join("kubernetes").is_dir()
}
