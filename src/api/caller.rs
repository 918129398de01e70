//! Who calls, behind a load balancer: for a connection from one of `api.trusted_proxies`, the
//! `Forwarded` header (RFC 7239) or, without it, `X-Forwarded-For` names the caller, as the
//! right-most address that is not itself a trusted proxy (the addresses to its left are
//! whatever the client wrote, and anyone can write them). A connection from anywhere else is
//! its own caller, whatever its headers say. The rate limits use the caller; the per-address
//! connection cap keeps counting direct peers.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The caller of a request that arrived on a connection from `peer`.
pub fn caller(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |address: &IpAddr| trusted_proxies.iter().any(|net| net.contains(address));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded = header_values(headers, "forwarded");
    let chain: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        header_values(headers, "x-forwarded-for")
            .iter()
            .flat_map(|value| value.split(','))
            .map(|item| parse_address(item.trim()))
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|value| value.split(','))
            .map(forwarded_for)
            .collect()
    };
    // From the right: the proxies we trust added their entries last.
    for hop in chain.iter().rev() {
        match hop {
            Some(address) if trusted(address) => continue,
            Some(address) => return *address,
            // An obfuscated or unknown hop (`for=_hidden`, `for=unknown`) hides the caller:
            // stop at the last proxy we know.
            None => return peer,
        }
    }
    peer
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// The address of one `Forwarded` element's `for=` parameter (RFC 7239 4, 6).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_address(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address as proxies write it: `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::17]:4711`,
/// `2001:db8::17`.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXIES: &[&str] = &["10.0.0.0/8"];

    fn trusted() -> Vec<IpNet> {
        PROXIES.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn x_forwarded_for_from_a_trusted_proxy_names_the_right_most_untrusted_address() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.5")]);
        assert_eq!(
            caller(ip("10.0.0.1"), &h, &trusted()),
            ip("203.0.113.7"),
            "the spoofed left-most 1.2.3.4 is not the caller"
        );
        let split = headers(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        assert_eq!(
            caller(ip("10.0.0.1"), &split, &trusted()),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn headers_from_anyone_else_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.8"),
        ]);
        assert_eq!(caller(ip("192.0.2.1"), &h, &trusted()), ip("192.0.2.1"));
        assert_eq!(
            caller(ip("10.0.0.1"), &h, &[]),
            ip("10.0.0.1"),
            "none trusted by default"
        );
    }

    #[test]
    fn forwarded_wins_and_is_read_as_rfc_7239_writes_it() {
        let h = headers(&[
            (
                "forwarded",
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711""#,
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(
            caller(ip("10.0.0.1"), &h, &trusted()),
            ip("2001:db8:cafe::17")
        );
        let hidden = headers(&[("forwarded", "for=_hidden, for=10.0.0.9")]);
        assert_eq!(
            caller(ip("10.0.0.1"), &hidden, &trusted()),
            ip("10.0.0.1"),
            "an obfuscated hop hides the caller: the last known proxy stands for it"
        );
        let port = headers(&[("forwarded", "For=\"192.0.2.61:8080\"")]);
        assert_eq!(caller(ip("10.0.0.1"), &port, &trusted()), ip("192.0.2.61"));
    }
}
