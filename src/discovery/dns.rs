//! The one DNS resolver: SRV lookups for discovery and address lookups for every HTTP
//! connection, with the address policy applied to each answer (rules 11, 12, 14).
//!
//! Names are always queried fully qualified (trailing dot): no search list, no hosts file. The
//! name servers come from the configuration, or from the system's resolver configuration when
//! none are configured (only its server addresses; its search list and options are ignored).
//! Queries to the configured name servers are always allowed, whatever their address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ProtocolConfig, ResolveHosts,
    ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;

use super::address_policy::AddressPolicy;
use super::error::Error;
use super::srv::SrvRecord;

/// DNS settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DnsConfig {
    /// Name servers (`IP:PORT`); empty means the system's. Default: empty.
    pub name_servers: Vec<SocketAddr>,
    /// Timeout of one query. Default: 2 s.
    pub timeout: Duration,
    /// Attempts per query. Default: 2.
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            name_servers: Vec::new(),
            timeout: DEFAULT_DNS_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

/// The resolver shared by discovery steps and the HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    policy: Arc<AddressPolicy>,
}

impl Dns {
    /// Builds the resolver. Reads the system configuration only when no name server is given.
    pub fn new(config: &DnsConfig, policy: Arc<AddressPolicy>) -> Result<Self, Error> {
        let name_servers = if config.name_servers.is_empty() {
            system_name_servers()?
        } else {
            config
                .name_servers
                .iter()
                .map(|addr| name_server(*addr))
                .collect()
        };
        let resolver_config = ResolverConfig::from_parts(None, Vec::new(), name_servers);
        let mut builder =
            TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default());
        let opts = builder.options_mut();
        opts.timeout = config.timeout;
        opts.attempts = config.attempts;
        opts.ndots = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        // AAAA only when there is no A record: one query per host in the common case.
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        let resolver = builder.build().map_err(|err| Error::Setup {
            what: "dns resolver",
            reason: err.to_string(),
        })?;
        Ok(Self { resolver, policy })
    }

    /// Looks up `_autodiscover._tcp.DOMAIN.`-style SRV records.
    pub async fn lookup_srv(&self, name: &str) -> Result<Vec<SrvRecord>, Error> {
        let lookup = self
            .resolver
            .srv_lookup(name)
            .await
            .map_err(|e| dns_error(name, e))?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv
                        .target
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                }),
                _ => None,
            })
            .collect())
    }

    /// Looks up the MX hosts of `domain`, most preferred first.
    pub async fn lookup_mx(&self, domain: &str) -> Result<Vec<String>, Error> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let lookup = self
            .resolver
            .mx_lookup(fqdn.as_str())
            .await
            .map_err(|e| dns_error(&fqdn, e))?;
        let mut records: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((
                    mx.preference,
                    mx.exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect();
        records.sort();
        Ok(records
            .into_iter()
            .map(|(_, host)| host)
            .filter(|h| !h.is_empty())
            .collect())
    }

    /// Looks up the addresses of `host` and refuses the name if any address is forbidden.
    pub async fn lookup_addresses(&self, host: &str) -> Result<Vec<IpAddr>, Error> {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let lookup = self
            .resolver
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| dns_error(host, e))?;
        let ips: Vec<IpAddr> = lookup.iter().collect();
        if let Some(ip) = self.policy.first_refused(ips.iter().copied()) {
            return Err(Error::ForbiddenAddress {
                host: host.to_owned(),
                ip,
            });
        }
        Ok(ips)
    }

    /// The address policy the resolver enforces.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }
}

impl reqwest::dns::Resolve for Dns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.clone();
        Box::pin(async move {
            let ips = dns.lookup_addresses(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let connection = |protocol| {
        let mut config = ConnectionConfig::new(protocol);
        config.port = addr.port();
        config
    };
    NameServerConfig::new(
        addr.ip(),
        true,
        vec![
            connection(ProtocolConfig::Udp),
            connection(ProtocolConfig::Tcp),
        ],
    )
}

fn system_name_servers() -> Result<Vec<NameServerConfig>, Error> {
    let (config, _ignored_opts) =
        hickory_resolver::system_conf::read_system_conf().map_err(|err| Error::Setup {
            what: "system resolver configuration",
            reason: err.to_string(),
        })?;
    Ok(config.name_servers().to_vec())
}

fn dns_error(name: &str, err: NetError) -> Error {
    let name = name.to_owned();
    if err.is_nx_domain() {
        return Error::DnsNxDomain { name };
    }
    if err.is_no_records_found() {
        return Error::DnsNoRecords { name };
    }
    match err {
        NetError::Timeout => Error::DnsTimeout { name },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            Error::DnsServFail { name }
        }
        other => Error::DnsFailure {
            name,
            source: Box::new(other),
        },
    }
}

const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_ATTEMPTS: usize = 2;
