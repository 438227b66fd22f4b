//! Import URLs checked against the cloud's [`ImportPolicy`], names resolved: before a volume or a
//! VM importing from a URL is planned or created, its host, and every address its name resolves
//! to, must be one the importer may fetch from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use kubecloud_core::{ImportPolicy, Result, url_host};

/// How long resolving the names of one spec's import URLs may take in all.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks each `(field, url)` against `policy`: literally, then the addresses the URL's name
/// resolves to (each name resolved once, all at once). A name that does not resolve here is left
/// for the importer, which may see another DNS; so is one that takes longer than a few seconds.
pub(crate) async fn check_import_urls(
    policy: &ImportPolicy,
    urls: &[(String, &str)],
) -> Result<()> {
    let mut names: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (field, url)) in urls.iter().enumerate() {
        policy.check(field, url)?;
        let host = url_host(url);
        if host.parse::<IpAddr>().is_err() && !policy.host_allowed(host) {
            names.entry(host.to_ascii_lowercase()).or_default().push(i);
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let lookups = names.iter().map(|(host, at)| async move {
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), 80))
            .await
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .unwrap_or_default();
        (at, addrs)
    });
    let Ok(resolved) =
        tokio::time::timeout(RESOLVE_TIMEOUT, futures::future::join_all(lookups)).await
    else {
        tracing::debug!("resolving import hosts timed out; left for the importer");
        return Ok(());
    };
    for (at, addrs) in resolved {
        for ip in addrs {
            for &i in at {
                let (field, url) = &urls[i];
                policy.check_ip(field, url, ip)?;
            }
        }
    }
    Ok(())
}
