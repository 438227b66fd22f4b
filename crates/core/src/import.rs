//! Image imports from http(s) URLs: the URL's syntax, and which hosts the cluster's importer may
//! be sent to ([`ImportPolicy`]).
//!
//! An import makes a pod inside the cluster fetch the URL. A URL naming a loopback, link-local or
//! cloud metadata address would make that pod read endpoints of the node or of the provider
//! (credentials, among other things): those are refused unless an operator allows them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::name::quote;

/// The longest import URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Host names of cloud metadata services (and names that always mean this machine), refused as
/// import hosts whatever they resolve to.
pub const METADATA_HOSTS: &[&str] = &[
    "localhost",
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
    "metadata.tencentyun.com",
];

/// Addresses of cloud metadata services that are not in a loopback or link-local block: AWS's
/// IPv6 endpoint, Alibaba Cloud's, Azure's wire server.
pub const METADATA_ADDRESSES: &[IpAddr] = &[
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

/// The host of an http(s) URL (without user, port or IPv6 brackets).
///
/// ```
/// use kubecloud_core::url_host;
/// assert_eq!(url_host("https://example.com/a.img"), "example.com");
/// assert_eq!(url_host("http://u:p@mirror.invalid:8080/x"), "mirror.invalid");
/// assert_eq!(url_host("http://[fd00::1]:80/x"), "fd00::1");
/// ```
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host.split(':').next().unwrap_or_default()
}

/// Checks an import URL's syntax: `http://` or `https://`, a host, at most [`MAX_URL_LEN`]
/// characters, no whitespace or control characters. Whether its host may be fetched from is
/// [`ImportPolicy`]'s question.
///
/// ```
/// use kubecloud_core::validate_import_url;
/// assert!(validate_import_url("source.url", "https://images.example.com/os.qcow2").is_ok());
/// assert!(validate_import_url("source.url", "ftp://images.example.com/os.qcow2").is_err());
/// assert!(validate_import_url("source.url", "https:///os.qcow2").is_err());
/// ```
pub fn validate_import_url(field: &str, url: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(field, format!("{} {why}", quote(url))));
    if url.len() > MAX_URL_LEN {
        return bad(&format!("is longer than {MAX_URL_LEN} characters"));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return bad("is not an http(s) URL");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("holds whitespace or control characters");
    }
    let host = url_host(url);
    if host.is_empty() {
        return bad("names no host");
    }
    if host.parse::<IpAddr>().is_err()
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return bad("has a host that is neither an address nor a DNS name");
    }
    Ok(())
}

/// Which hosts imports may fetch from. By default every host but loopback, link-local,
/// unspecified and cloud metadata addresses ([`METADATA_ADDRESSES`]) and names
/// ([`METADATA_HOSTS`], `*.localhost`); an operator can allow more (a mirror on the node
/// network's link-local block, a test server on loopback) with [`ImportPolicy::allow`] and
/// [`ImportPolicy::allow_host`].
///
/// Names are checked as written here; the facade also resolves them when planning and checks
/// every address they resolve to ([`ImportPolicy::check_ip`]).
///
/// ```
/// use kubecloud_core::ImportPolicy;
/// let policy = ImportPolicy::default();
/// assert!(policy.check("bootDisk.url", "https://images.example.com/os.qcow2").is_ok());
/// let err = policy.check("bootDisk.url", "http://169.254.169.254/latest/meta-data/").unwrap_err();
/// assert_eq!(err.invalid_field(), Some("bootDisk.url"));
/// assert!(policy.check("bootDisk.url", "http://localhost:8080/os.img").is_err());
///
/// let lab = ImportPolicy::default().allow("127.0.0.0/8".parse().unwrap());
/// assert!(lab.check("bootDisk.url", "http://127.0.0.1:8080/os.img").is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPolicy {
    allowed: Vec<IpNet>,
    allowed_hosts: Vec<String>,
}

impl ImportPolicy {
    /// The same policy, also allowing addresses in `net` (even loopback, link-local or metadata).
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allowed.push(net);
        self
    }

    /// The same policy, also allowing the host name `host` (compared without case) and whatever
    /// it resolves to.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into().to_ascii_lowercase());
        self
    }

    /// Whether `host` (a name) is allowed by [`ImportPolicy::allow_host`].
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.contains(&host)
    }

    /// Checks `url` as written: its syntax, and its host if that is an address or a name
    /// refused by name. The error names `field` and quotes (a prefix of) the URL.
    pub fn check(&self, field: &str, url: &str) -> Result<()> {
        validate_import_url(field, url)?;
        let host = url_host(url);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check_ip(field, url, ip);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if self.host_allowed(&name) {
            return Ok(());
        }
        if METADATA_HOSTS.contains(&name.as_str()) || name.ends_with(".localhost") {
            return Err(Error::invalid(
                field,
                format!(
                    "{}: the importer may not fetch from {name:?} (a metadata or local host)",
                    quote(url)
                ),
            ));
        }
        Ok(())
    }

    /// Checks one address `url`'s host is or resolves to.
    pub fn check_ip(&self, field: &str, url: &str, ip: IpAddr) -> Result<()> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match refused_address(ip) {
            None => Ok(()),
            Some(what) => Err(Error::invalid(
                field,
                format!(
                    "{}: the importer may not fetch from {ip} ({what})",
                    quote(url)
                ),
            )),
        }
    }
}

/// Why an importer may not fetch from `ip` by default, if it may not.
fn refused_address(ip: IpAddr) -> Option<&'static str> {
    if METADATA_ADDRESSES.contains(&ip) {
        return Some("a metadata address");
    }
    match ip {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(169, 254, 169, 254) => Some("a metadata address"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("unspecified"),
        IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => Some("not a unicast address"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("not a unicast address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_metadata_hosts_are_refused_in_every_spelling() {
        let policy = ImportPolicy::default();
        for url in [
            "http://127.0.0.1/x",
            "http://127.1.2.3:8080/x",
            "http://0.0.0.0/x",
            "http://169.254.169.254/latest/meta-data/iam/",
            "http://169.254.1.1/x",
            "http://[::1]/x",
            "http://[::]/x",
            "http://[fe80::1]/x",
            "http://[fd00:ec2::254]/latest/",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://100.100.100.200/latest/meta-data",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./x",
            "http://localhost/x",
            "http://db.localhost/x",
            "http://user:pw@localhost:80/x",
        ] {
            let err = policy.check("url", url).expect_err(url);
            assert_eq!(err.invalid_field(), Some("url"), "{url}");
        }
        for url in [
            "https://images.example.com/os.qcow2",
            "http://203.0.113.7/os.img",
            "http://10.0.0.5/os.img",
            "http://[2001:db8::1]/os.img",
        ] {
            assert!(policy.check("url", url).is_ok(), "{url}");
        }
    }

    #[test]
    fn an_operator_allows_more() {
        let policy = ImportPolicy::default()
            .allow("169.254.0.0/16".parse().unwrap())
            .allow_host("localhost");
        assert!(policy.check("url", "http://169.254.10.10/os.img").is_ok());
        assert!(policy.check("url", "http://localhost/os.img").is_ok());
        assert!(policy.check("url", "http://127.0.0.1/os.img").is_err());
    }

    #[test]
    fn a_long_url_is_quoted_by_its_prefix() {
        let url = format!("http://169.254.169.254/{}", "a".repeat(1 << 20));
        let err = ImportPolicy::default().check("url", &url).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }
}
