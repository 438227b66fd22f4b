//! Address types: MAC addresses and inclusive IP ranges.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A 48-bit MAC address, written `52:54:00:12:34:56`.
///
/// ```
/// use kubecloud_core::MacAddress;
/// let mac: MacAddress = "52:54:00:AB:cd:01".parse()?;
/// assert_eq!(mac.to_string(), "52:54:00:ab:cd:01");
/// assert!(mac.is_locally_administered(), "52:54:00 is the locally administered QEMU prefix");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Whether the locally-administered bit is set (addresses a cloud may invent).
    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0b10 != 0
    }

    /// Whether this is a multicast address (never valid for an interface).
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0b1 != 0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddress({self})")
    }
}

impl FromStr for MacAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                "mac",
                format!("{s:?} is not a MAC address like 52:54:00:12:34:56"),
            )
        };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self(out))
    }
}

impl serde::Serialize for MacAddress {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        ser.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddress {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(de)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of IP addresses of one family, written `10.0.0.10..10.0.0.20` (Kube-OVN's
/// spelling) or `10.0.0.10-10.0.0.20` (MetalLB's); a single address is a range of one.
///
/// ```
/// use kubecloud_core::IpRange;
/// let r: IpRange = "10.0.0.10..10.0.0.20".parse()?;
/// assert!(r.contains("10.0.0.15".parse().unwrap()));
/// assert_eq!(r.len(), 11);
/// assert_eq!(r.to_string(), "10.0.0.10..10.0.0.20");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRange {
    /// The first address.
    pub first: IpAddr,
    /// The last address (inclusive).
    pub last: IpAddr,
}

impl IpRange {
    /// A range from `first` to `last`, both included; refused if the families differ or
    /// `last < first`.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self> {
        if first.is_ipv4() != last.is_ipv4() {
            return Err(Error::invalid(
                "range",
                format!("{first} and {last} are of different IP families"),
            ));
        }
        if last < first {
            return Err(Error::invalid(
                "range",
                format!("{last} comes before {first}"),
            ));
        }
        Ok(Self { first, last })
    }

    /// A range of one address.
    pub fn single(ip: IpAddr) -> Self {
        Self {
            first: ip,
            last: ip,
        }
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4() && self.first <= ip && ip <= self.last
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.first.is_ipv4() == other.first.is_ipv4()
            && self.first <= other.last
            && other.first <= self.last
    }

    /// How many addresses the range holds (saturating for huge IPv6 ranges).
    pub fn len(&self) -> u128 {
        (ip_to_u128(self.last) - ip_to_u128(self.first)).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An IP address as a number, for range arithmetic.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The inverse of [`ip_to_u128`] for the family of `like`; `None` if out of range.
pub fn u128_to_ip(n: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(n).ok().map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(_) => Some(IpAddr::V6(n.into())),
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}..{}", self.first, self.last)
        }
    }
}

impl FromStr for IpRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parse = |part: &str| {
            part.trim().parse::<IpAddr>().map_err(|_| {
                Error::invalid("range", format!("{s:?}: {part:?} is not an IP address"))
            })
        };
        if let Some((a, b)) = s.split_once("..") {
            Self::new(parse(a)?, parse(b)?)
        } else if let Some((a, b)) = s.split_once('-') {
            Self::new(parse(a)?, parse(b)?)
        } else {
            Ok(Self::single(parse(s)?))
        }
    }
}

impl serde::Serialize for IpRange {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        ser.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpRange {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(de)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_refuses_malformed_input() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "zz:54:00:12:34:56",
            "525:4:00:12:34:56",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
        }
        let mac: MacAddress = "02-00-00-00-00-01".parse().unwrap();
        assert!(mac.is_locally_administered());
    }

    #[test]
    fn range_spellings_and_overlap() {
        let a: IpRange = "10.0.0.1-10.0.0.9".parse().unwrap();
        let b: IpRange = "10.0.0.9".parse().unwrap();
        let c: IpRange = "10.0.0.10..10.0.0.12".parse().unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!("10.0.0.9..10.0.0.1".parse::<IpRange>().is_err());
        assert!("10.0.0.1..fd00::1".parse::<IpRange>().is_err());
    }
}
