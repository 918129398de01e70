//! Which IP addresses a connection may use (security rules 12 to 14).
//!
//! Every address a connection will use is checked when the name is resolved, right before the
//! connection: loopback, private, link-local, CGNAT, unique-local, multicast, unspecified,
//! documentation, benchmarking and reserved ranges, IPv4 embedded in IPv6 (mapped, compatible,
//! NAT64, 6to4, Teredo) and cloud metadata addresses are refused. If any address of a name is
//! refused, the whole name is refused, so that a DNS answer mixing a public and a private
//! address cannot steer a connection inward. The operator may allow networks explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The set of networks the operator allows on top of the public internet.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy that refuses every non-public address except those in `allowed`.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Whether a connection to `ip` is permitted.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|net| net.contains(&ip)) || !is_non_public(ip)
    }

    /// The first refused address among `ips`, if any.
    pub fn first_refused(&self, ips: impl IntoIterator<Item = IpAddr>) -> Option<IpAddr> {
        ips.into_iter().find(|ip| !self.permits(*ip))
    }
}

/// Whether `ip` lies in a range that is never a public Autodiscover server.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => is_non_public_v6(v6),
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10 (Alibaba metadata too)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || a >= 240 // reserved 240.0.0.0/4
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return true;
    }
    // IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96): refused outright rather than
    // trusting the embedded address.
    if segments[..5] == [0, 0, 0, 0, 0] {
        return true;
    }
    match segments[0] {
        0xfc00..=0xfdff => true,                       // unique local fc00::/7
        0xfe80..=0xfebf => true,                       // link-local fe80::/10
        0xfec0..=0xfeff => true,                       // deprecated site-local fec0::/10
        0x0064 if segments[1] == 0xff9b => true,       // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
        0x0100 if segments[1..4] == [0, 0, 0] => true, // discard-only 100::/64
        0x2001 if segments[1] < 0x0200 => true,        // Teredo 2001::/32, benchmarking, ORCHID
        0x2001 if segments[1] == 0x0db8 => true,       // documentation 2001:db8::/32
        0x2002 => true,                                // 6to4 2002::/16
        0x3fff if segments[1] < 0x1000 => true,        // documentation 3fff::/20
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_ranges_are_refused() {
        let policy = AddressPolicy::default();
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "192.0.0.192",
            "192.0.2.5",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!policy.permits(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let policy = AddressPolicy::default();
        for ip in [
            "8.8.8.8",
            "40.99.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2603:1036::1",
        ] {
            assert!(policy.permits(ip.parse().unwrap()), "{ip} must pass");
        }
    }

    #[test]
    fn operator_allowed_networks_pass() {
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("10.0.0.1".parse().unwrap()));
        let mixed = ["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        assert_eq!(
            policy.first_refused(mixed),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
