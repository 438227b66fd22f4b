//! Exact Kubernetes quantities for quota arithmetic (apimachinery `pkg/api/resource/quantity.go`:
//! parsing of the binary-SI, decimal-SI and decimal-exponent suffixes, and the canonical form
//! `String()` prints). Values are held in nano-units, the finest scale a quantity can carry.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

const NANO: i128 = 1_000_000_000;

/// An exact quantity and whether it prints in binary-SI (`Ki`, `Mi`, ...) or decimal-SI form.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Amount {
    nanos: i128,
    binary: bool,
}

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

impl Amount {
    /// A whole count (decimal-SI).
    pub(crate) fn count(n: u64) -> Self {
        Self {
            nanos: i128::from(n) * NANO,
            binary: false,
        }
    }

    pub(crate) fn is_zero(self) -> bool {
        self.nanos == 0
    }

    pub(crate) fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// The sum, in the format of `self` unless `self` is zero (quantity.go `Add`).
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            nanos: self.nanos.saturating_add(other.nanos),
            binary: if self.is_zero() {
                other.binary
            } else {
                self.binary
            },
        }
    }

    /// `self - other`, never below zero (quota `SubtractWithNonNegativeResult`).
    pub(crate) fn minus_floor(self, other: Self) -> Self {
        Self {
            nanos: (self.nanos - other.nanos).max(0),
            binary: self.binary,
        }
    }

    /// The larger of both.
    pub(crate) fn max(self, other: Self) -> Self {
        if other.nanos > self.nanos {
            other
        } else {
            self
        }
    }

    /// Parses a quantity given as a JSON string or number.
    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    /// Parses `<number><suffix>`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() || number == "." {
            return None;
        }
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        // value = mantissa * 10^-frac.len() * factor
        let mantissa: i128 = format!("{whole}{frac}").parse().ok()?;
        let scale = u32::try_from(frac.len()).ok()?;
        let (multiplier, exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            other => {
                let exp = other.strip_prefix(['e', 'E'])?;
                (1, exp.parse().ok()?)
            }
        };
        // nanos = mantissa * multiplier * 10^(9 + exp10 - scale), rounded up as quota does
        // (quantity.go rounds values finer than nano up).
        let power = 9 + exp10 - i32::try_from(scale).ok()?;
        let base = mantissa.checked_mul(multiplier)?;
        let nanos = if power >= 0 {
            base.checked_mul(10i128.checked_pow(u32::try_from(power).ok()?)?)?
        } else {
            let div = 10i128.checked_pow(u32::try_from(-power).ok()?)?;
            (base + div - 1) / div
        };
        Some(Self {
            nanos: if negative { -nanos } else { nanos },
            binary: suffix.ends_with('i'),
        })
    }
}

impl fmt::Display for Amount {
    /// The canonical form: the largest binary suffix dividing a whole binary-SI value, else the
    /// largest decimal suffix (exponent a multiple of 3) dividing it, `m`/`u`/`n` for fractions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n == 0 {
            return f.write_str("0");
        }
        if n % NANO == 0 {
            let v = n / NANO;
            if self.binary {
                for (suffix, shift) in [
                    ("Ei", 60),
                    ("Pi", 50),
                    ("Ti", 40),
                    ("Gi", 30),
                    ("Mi", 20),
                    ("Ki", 10),
                ] {
                    let factor = 1i128 << shift;
                    if v % factor == 0 {
                        return write!(f, "{}{suffix}", v / factor);
                    }
                }
                return write!(f, "{v}");
            }
            for (suffix, exp) in [
                ("E", 18),
                ("P", 15),
                ("T", 12),
                ("G", 9),
                ("M", 6),
                ("k", 3),
            ] {
                let factor = 10i128.pow(exp);
                if v % factor == 0 {
                    return write!(f, "{}{suffix}", v / factor);
                }
            }
            return write!(f, "{v}");
        }
        if n % 1_000_000 == 0 {
            write!(f, "{}m", n / 1_000_000)
        } else if n % 1_000 == 0 {
            write!(f, "{}u", n / 1_000)
        } else {
            write!(f, "{n}n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_in_canonical_form() {
        for (input, printed) in [
            ("10Gi", "10Gi"),
            ("1024Mi", "1Gi"),
            ("1536", "1536"),
            ("100m", "100m"),
            ("0.5", "500m"),
            ("2", "2"),
            ("2000", "2k"),
            ("1e3", "1k"),
            ("1.5Gi", "1536Mi"),
            ("0", "0"),
        ] {
            let a = Amount::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(a.to_string(), printed, "{input}");
        }
        assert!(Amount::parse("ten").is_none());
        assert!(Amount::parse("5Xi").is_none());
        assert!(Amount::parse("1Gi").unwrap() > Amount::parse("1G").unwrap());
    }
}
