//! Storage quantities as Kubernetes writes them (`resource.Quantity`): parsing a claim's
//! request, and the canonical binary form the external-provisioner writes for a volume's
//! capacity (`bytesToQuantity`: `resource.NewQuantity(bytes, resource.BinarySI)`, so
//! `1073741824` reads back as `1Gi`, and a size that is no multiple of 1024 as plain bytes).

use serde_json::Value;

/// Bytes of a quantity (`"10Gi"`, `"500M"`, `"1073741824"`, a JSON number); `None` when it is
/// not one (fractions are rounded up to whole bytes, as `Quantity.Value()` does).
pub(crate) fn parse(q: &Value) -> Option<u64> {
    let s = match q {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    const UNITS: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (unit, factor) in UNITS {
        if let Some(n) = s.strip_suffix(unit) {
            let n: f64 = n.parse().ok()?;
            return (n >= 0.0).then(|| (n * factor).ceil() as u64);
        }
    }
    if let Some(n) = s.strip_suffix('m') {
        let n: f64 = n.parse().ok()?;
        return (n >= 0.0).then(|| (n / 1000.0).ceil() as u64);
    }
    let n: f64 = s.parse().ok()?;
    (n >= 0.0).then(|| n.ceil() as u64)
}

/// The canonical binary-SI form of `bytes`: the largest power-of-1024 suffix that divides it.
pub(crate) fn format(bytes: u64) -> String {
    const SUFFIXES: [(&str, u64); 6] = [
        ("Ei", 1 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    if bytes == 0 {
        return "0".into();
    }
    for (suffix, factor) in SUFFIXES {
        if bytes.is_multiple_of(factor) {
            return format!("{}{suffix}", bytes / factor);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_binary_decimal_and_plain_quantities() {
        assert_eq!(parse(&json!("1Gi")), Some(1 << 30));
        assert_eq!(parse(&json!("1.5Gi")), Some(3 << 29));
        assert_eq!(parse(&json!("500M")), Some(500_000_000));
        assert_eq!(parse(&json!("1073741824")), Some(1 << 30));
        assert_eq!(parse(&json!(2048)), Some(2048));
        assert_eq!(parse(&json!("lots")), None);
        assert_eq!(parse(&json!(null)), None);
    }

    #[test]
    fn formats_the_largest_exact_binary_suffix() {
        assert_eq!(format(1 << 30), "1Gi");
        assert_eq!(format(3 << 29), "1536Mi");
        assert_eq!(format(5 << 40), "5Ti");
        assert_eq!(format(1_024_000_000), "1000000Ki");
        assert_eq!(format(1_000_000_000), "1000000000");
    }
}
