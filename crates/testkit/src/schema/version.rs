//! Kube-aware version ordering (`v1 > v1beta2 > v1beta1 > v1alpha1 > foo`), as
//! discovery uses it to pick the preferred version of a group.

use std::cmp::Ordering;

/// Parsed `v<major>[(alpha|beta)<minor>]`.
#[derive(Debug, PartialEq, Eq)]
struct KubeVersion {
    major: u64,
    /// 2 for GA, 1 for beta, 0 for alpha.
    stability: u8,
    minor: u64,
}

fn parse(v: &str) -> Option<KubeVersion> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || rest.starts_with('0') {
        return None;
    }
    let major = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some(KubeVersion {
            major,
            stability: 2,
            minor: 0,
        });
    }
    let (stability, num) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        return None;
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) || num.starts_with('0') {
        return None;
    }
    Some(KubeVersion {
        major,
        stability,
        minor: num.parse().ok()?,
    })
}

/// Orders versions by priority, highest first: GA, then beta, then alpha (higher
/// major first, then higher minor), then anything else alphabetically.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y
            .stability
            .cmp(&x.stability)
            .then(y.major.cmp(&x.major))
            .then(y.minor.cmp(&x.minor)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn versions_sort_by_kube_priority() {
        let mut v = vec![
            "v1alpha1", "foo", "v1beta1", "v2", "v1", "v1beta2", "v2alpha1", "v1alpha3",
        ];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            [
                "v2", "v1", "v1beta2", "v1beta1", "v2alpha1", "v1alpha3", "v1alpha1", "foo"
            ]
        );
    }
}
