//! Redirect decisions, taken by our code for every hop (security rules 4, 7, 8, 9).
//!
//! A redirect target (a 30x `Location`, an XML `RedirectUrl`, the plain-HTTP redirect) is
//! accepted only when it is `https`, names a host rather than an IP literal, carries no
//! userinfo, uses an allowed port and, for Autodiscover, names an Autodiscover path. Each
//! accepted hop spends one unit of the discovery's hop budget (10 by default), and no URL and
//! no address is visited twice.
//!
//! `step.rs`: the plain-HTTP redirect method, the one step that is only a redirect.

mod step;

use std::collections::HashSet;

use url::Url;

use super::error::Error;

/// The hop budget and the visited sets of one discovery, shared by all its candidates.
#[derive(Debug)]
pub struct Hops {
    limit: u32,
    used: u32,
    urls: HashSet<String>,
    addresses: HashSet<String>,
}

impl Hops {
    /// A budget of `limit` hops.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            used: 0,
            urls: HashSet::new(),
            addresses: HashSet::new(),
        }
    }

    /// Records a URL a candidate starts from; `false` when it was already visited.
    pub fn visit_start(&mut self, url: &Url) -> bool {
        self.urls.insert(visit_key(url))
    }

    /// Spends one hop to `url`.
    pub fn hop_to_url(&mut self, url: &Url) -> Result<(), Error> {
        if self.urls.contains(&visit_key(url)) {
            return Err(Error::RedirectLoop {
                url: url.to_string(),
            });
        }
        self.spend()?;
        self.urls.insert(visit_key(url));
        Ok(())
    }

    /// Records the address discovery starts from.
    pub fn visit_address(&mut self, address: &str) {
        self.addresses.insert(address.to_owned());
    }

    /// Spends one hop to a new address (`redirectAddr`).
    pub fn hop_to_address(&mut self, address: &str) -> Result<(), Error> {
        if self.addresses.contains(address) {
            return Err(Error::RedirectLoop {
                url: address.to_owned(),
            });
        }
        self.spend()?;
        self.addresses.insert(address.to_owned());
        Ok(())
    }

    fn spend(&mut self) -> Result<(), Error> {
        if self.used >= self.limit {
            return Err(Error::RedirectLimit { hops: self.limit });
        }
        self.used += 1;
        Ok(())
    }
}

/// What a redirect target must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct TargetRules<'a> {
    /// HTTPS ports besides 443 that a target may name.
    pub extra_https_ports: &'a [u16],
    /// Whether the path must be an Autodiscover path.
    pub autodiscover_path: bool,
}

/// Resolves `location` against `base` and checks it as a redirect target.
pub fn check_target(base: &Url, location: &str, rules: TargetRules<'_>) -> Result<Url, Error> {
    let refused = |reason| Error::RedirectRefused {
        url: location.to_owned(),
        reason,
    };
    let url = base
        .join(location.trim())
        .map_err(|_| refused("not a valid url"))?;
    if url.scheme() != "https" {
        return Err(Error::InsecureRedirect {
            url: url.to_string(),
        });
    }
    match url.host() {
        Some(url::Host::Domain(_)) => {}
        Some(_) => return Err(refused("an IP literal is not an Exchange host")),
        None => return Err(refused("no host")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("userinfo in a redirect"));
    }
    if let Some(port) = url.port()
        && !rules.extra_https_ports.contains(&port)
    {
        return Err(refused("port not allowed"));
    }
    if rules.autodiscover_path && !is_autodiscover_path(url.path()) {
        return Err(refused("not an autodiscover path"));
    }
    Ok(url)
}

/// Whether `path` is `/autodiscover/autodiscover.xml`, in any letter case.
pub fn is_autodiscover_path(path: &str) -> bool {
    path.eq_ignore_ascii_case(AUTODISCOVER_PATH)
}

/// The Autodiscover POX path.
pub const AUTODISCOVER_PATH: &str = "/autodiscover/autodiscover.xml";

fn visit_key(url: &Url) -> String {
    let mut key = url.clone();
    key.set_fragment(None);
    key.as_str().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TargetRules<'static> = TargetRules {
        extra_https_ports: &[],
        autodiscover_path: true,
    };

    fn base() -> Url {
        Url::parse("https://autodiscover.example.test/autodiscover/autodiscover.xml").unwrap()
    }

    #[test]
    fn https_autodiscover_targets_pass() {
        let url = check_target(
            &base(),
            "https://mail.example.test/Autodiscover/Autodiscover.xml",
            RULES,
        )
        .unwrap();
        assert_eq!(url.host_str(), Some("mail.example.test"));
        assert!(check_target(&base(), "/autodiscover/autodiscover.xml", RULES).is_ok());
    }

    #[test]
    fn hostile_targets_are_refused() {
        let code = |loc: &str| check_target(&base(), loc, RULES).unwrap_err().code();
        assert_eq!(
            code("http://mail.example.test/autodiscover/autodiscover.xml"),
            "insecure_redirect"
        );
        assert_eq!(code("javascript:alert(1)"), "insecure_redirect");
        assert_eq!(
            code("ftp://mail.example.test/autodiscover/autodiscover.xml"),
            "insecure_redirect"
        );
        assert_eq!(
            code("https://127.0.0.1/autodiscover/autodiscover.xml"),
            "redirect_refused"
        );
        assert_eq!(
            code("https://[::1]/autodiscover/autodiscover.xml"),
            "redirect_refused"
        );
        assert_eq!(
            code("https://2130706433/autodiscover/autodiscover.xml"),
            "redirect_refused"
        );
        assert_eq!(
            code("https://u:p@mail.example.test/autodiscover/autodiscover.xml"),
            "redirect_refused"
        );
        assert_eq!(
            code("https://mail.example.test:8443/autodiscover/autodiscover.xml"),
            "redirect_refused"
        );
        assert_eq!(code("https://mail.example.test/owa/"), "redirect_refused");
    }

    #[test]
    fn hop_limit_and_loops() {
        let mut hops = Hops::new(2);
        assert!(hops.visit_start(&base()));
        assert_eq!(
            hops.hop_to_url(&base()).unwrap_err().code(),
            "redirect_loop"
        );
        let a = Url::parse("https://a.example.test/autodiscover/autodiscover.xml").unwrap();
        let b = Url::parse("https://b.example.test/autodiscover/autodiscover.xml").unwrap();
        let c = Url::parse("https://c.example.test/autodiscover/autodiscover.xml").unwrap();
        hops.hop_to_url(&a).unwrap();
        hops.hop_to_url(&b).unwrap();
        assert_eq!(hops.hop_to_url(&c).unwrap_err().code(), "redirect_limit");
        let mut hops = Hops::new(10);
        hops.visit_address("a@example.test");
        assert_eq!(
            hops.hop_to_address("a@example.test").unwrap_err().code(),
            "redirect_loop"
        );
    }
}
