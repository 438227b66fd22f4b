//! Exact byte sizes that read and write like Kubernetes quantities.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A size in bytes, exact. Parses and prints like a Kubernetes quantity (`10Gi`, `512Mi`, `1G`,
/// `1073741824`), and also accepts the `GiB` spellings; it prints in the largest binary unit that
/// divides it exactly, so it round-trips without rounding.
///
/// ```
/// use kubecloud_core::ByteSize;
/// let size: ByteSize = "10Gi".parse()?;
/// assert_eq!(size, ByteSize::gib(10));
/// assert_eq!(size.to_string(), "10Gi");
/// assert_eq!(ByteSize::bytes(1536).to_string(), "1536");
/// assert_eq!("1.5Gi".parse::<ByteSize>()?, ByteSize::mib(1536));
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
];

const DECIMAL: &[(&str, u64)] = &[
    ("E", 1_000_000_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("T", 1_000_000_000_000),
    ("G", 1_000_000_000),
    ("M", 1_000_000),
    ("k", 1_000),
    ("K", 1_000),
];

impl ByteSize {
    /// `n` bytes.
    pub const fn bytes(n: u64) -> Self {
        Self(n)
    }
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        Self(n << 10)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        Self(n << 30)
    }
    /// `n` TiB.
    pub const fn tib(n: u64) -> Self {
        Self(n << 40)
    }
    /// The size in bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// The size in KiB, rounded up (LINSTOR counts in KiB).
    pub const fn as_kib_ceil(self) -> u64 {
        self.0.div_ceil(1 << 10)
    }
    /// Whether the size is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 != 0 {
            for (suffix, factor) in UNITS {
                if self.0.is_multiple_of(*factor) {
                    return write!(f, "{}{suffix}", self.0 / factor);
                }
            }
        }
        write!(f, "{}", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |why: &str| Error::invalid("size", format!("{s:?}: {why}"));
        let s_trim = s.trim();
        let split = s_trim
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s_trim.len());
        let (number, unit) = s_trim.split_at(split);
        let unit = unit.trim();
        let unit = unit
            .strip_suffix('B')
            .filter(|u| !u.is_empty())
            .unwrap_or(unit);
        let factor = if unit.is_empty() {
            1
        } else if let Some((_, f)) = UNITS.iter().find(|(u, _)| *u == unit) {
            *f
        } else if let Some((_, f)) = DECIMAL.iter().find(|(u, _)| *u == unit) {
            *f
        } else {
            return Err(invalid(
                "unknown unit (use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E)",
            ));
        };
        if number.is_empty() {
            return Err(invalid("no number"));
        }
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(invalid("no number"));
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid("not a number"))?
        };
        let mut total = whole
            .checked_mul(factor)
            .ok_or_else(|| invalid("too large"))?;
        if !frac.is_empty() {
            if frac.contains('.') || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("not a number"));
            }
            let digits: u32 = frac.len().try_into().map_err(|_| invalid("too precise"))?;
            let scale = 10u128
                .checked_pow(digits)
                .ok_or_else(|| invalid("too precise"))?;
            let numer: u128 =
                frac.parse::<u128>().map_err(|_| invalid("not a number"))? * u128::from(factor);
            if !numer.is_multiple_of(scale) {
                return Err(invalid("is not a whole number of bytes"));
            }
            let extra = u64::try_from(numer / scale).map_err(|_| invalid("too large"))?;
            total = total
                .checked_add(extra)
                .ok_or_else(|| invalid("too large"))?;
        }
        Ok(Self(total))
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        if ser.is_human_readable() {
            ser.collect_str(self)
        } else {
            ser.serialize_u64(self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte count or a quantity such as \"10Gi\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        de.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kubernetes_and_human_spellings() {
        assert_eq!("10Gi".parse::<ByteSize>().unwrap(), ByteSize::gib(10));
        assert_eq!("10GiB".parse::<ByteSize>().unwrap(), ByteSize::gib(10));
        assert_eq!("2G".parse::<ByteSize>().unwrap(), ByteSize(2_000_000_000));
        assert_eq!("512".parse::<ByteSize>().unwrap(), ByteSize(512));
        assert_eq!("0.5Ki".parse::<ByteSize>().unwrap(), ByteSize(512));
    }

    #[test]
    fn refuses_garbage_naming_the_size_field() {
        for bad in [
            "",
            "Gi",
            "ten",
            "1.2.3Gi",
            "5Xi",
            "0.3",
            "99999999999999999999",
        ] {
            let err = bad.parse::<ByteSize>().unwrap_err();
            assert_eq!(err.invalid_field(), Some("size"), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_is_exact(n in any::<u64>()) {
            let size = ByteSize(n);
            prop_assert_eq!(size.to_string().parse::<ByteSize>().unwrap(), size);
        }

        #[test]
        fn serde_round_trips_exactly(n in any::<u64>()) {
            let json = serde_json::to_string(&ByteSize(n)).unwrap();
            prop_assert_eq!(serde_json::from_str::<ByteSize>(&json).unwrap(), ByteSize(n));
        }
    }
}
