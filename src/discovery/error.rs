//! `discovery::Error`: every way a step or a whole discovery can fail, each with a stable
//! [`Error::code`] that reports, metrics and tests use.

use std::error::Error as StdError;
use std::net::IpAddr;

use crate::code::Code;
use crate::domain::InputError;

/// A failed discovery step, or a discovery that could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address, domain or host was refused at the edge.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The HTTP client or the resolver could not be built from the configuration.
    #[error("cannot build the {what}: {reason}")]
    Setup {
        /// What could not be built.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The DNS query timed out.
    #[error("dns lookup of {name} timed out")]
    DnsTimeout {
        /// The queried name.
        name: String,
    },
    /// The name does not exist (NXDOMAIN).
    #[error("{name} does not exist (nxdomain)")]
    DnsNxDomain {
        /// The queried name.
        name: String,
    },
    /// The name exists but has no record of the asked type.
    #[error("{name} has no records of that type")]
    DnsNoRecords {
        /// The queried name.
        name: String,
    },
    /// The name server failed to answer (SERVFAIL).
    #[error("name server failed for {name} (servfail)")]
    DnsServFail {
        /// The queried name.
        name: String,
    },
    /// Another DNS failure (refused, malformed, no connection to the name server).
    #[error("dns lookup of {name} failed")]
    DnsFailure {
        /// The queried name.
        name: String,
        /// The resolver's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The SRV answer says there is no service (a single `.` target).
    #[error("srv {name} says no service")]
    SrvNoService {
        /// The queried name.
        name: String,
    },
    /// SRV records exist, but none on an allowed port.
    #[error("srv {name} has no target on an allowed port")]
    SrvNoUsableTarget {
        /// The queried name.
        name: String,
    },
    /// A name resolved to an address the policy refuses (rule 12).
    #[error("{host} resolves to a forbidden address {ip}")]
    ForbiddenAddress {
        /// The host name.
        host: String,
        /// The first refused address.
        ip: IpAddr,
    },
    /// The TCP connection was refused.
    #[error("connection to {url} refused")]
    ConnectionRefused {
        /// The URL.
        url: String,
    },
    /// The TCP connection failed otherwise.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The TLS handshake failed: bad, expired or self-signed certificate, wrong host.
    #[error("tls handshake with {url} failed")]
    Tls {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The step ran out of time (connect, read or total).
    #[error("{url} timed out")]
    Timeout {
        /// The URL or name.
        url: String,
    },
    /// The request failed after connecting (reset, malformed answer).
    #[error("request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The server answered with a status that is not an answer.
    #[error("{url} answered http {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// 401 without credentials: the endpoint exists and wants authentication.
    #[error("{url} requires authentication")]
    AuthRequired {
        /// The URL.
        url: String,
    },
    /// 401 after credentials were sent: the server refused them.
    #[error("{url} refused the credentials")]
    AuthRejected {
        /// The URL.
        url: String,
    },
    /// 401 that offers only modern authentication (Bearer): basic authentication is off.
    #[error("{url} accepts only modern authentication")]
    ModernAuthOnly {
        /// The URL.
        url: String,
    },
    /// Credentials were withheld: the host is not trusted or the budget is spent.
    #[error("credentials withheld from {url}")]
    CredentialsWithheld {
        /// The URL.
        url: String,
    },
    /// Autodiscover v2 answered with an `ErrorCode` (`UserNotFound`, ...).
    #[error("{url} answered ErrorCode {error_code}")]
    V2Error {
        /// The URL.
        url: String,
        /// The `ErrorCode`.
        error_code: String,
    },
    /// The settings name only IMAP, POP or SMTP (a web hoster): not an Exchange host.
    #[error("{url} answered settings for {protocols} only, not Exchange")]
    PoxNotExchange {
        /// The URL.
        url: String,
        /// The protocol types the answer named.
        protocols: String,
    },
    /// Credentials were withheld because the per-discovery or per-account budget is spent
    /// (rule 19).
    #[error("credential attempts for this account are spent; not sent to {url}")]
    CredentialBudget {
        /// The URL.
        url: String,
    },
    /// The shared password budget did not answer: nothing was sent (rule 19 fails closed).
    #[error("the shared password budget did not answer; not sent to {url}")]
    BudgetUnavailable {
        /// The URL.
        url: String,
    },
    /// The body exceeded the byte cap (rule 15).
    #[error("{url} sent more than {limit} bytes")]
    BodyTooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not acceptable Autodiscover XML.
    #[error("invalid autodiscover xml from {url} at byte {position}: {reason}")]
    PoxParse {
        /// The URL.
        url: String,
        /// The byte offset of the problem.
        position: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The XML carried a `DOCTYPE`, which is never accepted (rule 15).
    #[error("{url} sent a doctype")]
    PoxDoctype {
        /// The URL.
        url: String,
    },
    /// The Autodiscover answer is an `Error` element.
    #[error("{url} answered autodiscover error {error_code}")]
    PoxError {
        /// The URL.
        url: String,
        /// `ErrorCode` or `Status`.
        error_code: String,
    },
    /// The answer held no usable settings.
    #[error("{url} answered without usable settings")]
    PoxNoSettings {
        /// The URL.
        url: String,
    },
    /// A redirect pointed at `http` or another insecure scheme (rules 4, 7, 8).
    #[error("refused insecure redirect to {url}")]
    InsecureRedirect {
        /// The refused target.
        url: String,
    },
    /// A redirect target was malformed or not allowed (IP literal, not an Autodiscover path,
    /// forbidden port, invalid address).
    #[error("refused redirect to {url}: {reason}")]
    RedirectRefused {
        /// The refused target.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// A redirect pointed at a URL or address already visited.
    #[error("redirect loop at {url}")]
    RedirectLoop {
        /// The repeated URL or address.
        url: String,
    },
    /// The redirect budget of the discovery is spent (rule 7).
    #[error("more than {hops} redirects")]
    RedirectLimit {
        /// The limit.
        hops: u32,
    },
    /// The plain-HTTP GET did not answer with a usable redirect.
    #[error("{url} answered without an https redirect")]
    NoRedirect {
        /// The URL.
        url: String,
    },
    /// The discovery's overall deadline passed.
    #[error("the discovery deadline passed")]
    Deadline,
}

impl Error {
    /// A stable code.
    pub fn code(&self) -> Code {
        match self {
            Self::Input(err) => err.code(),
            Self::Setup { .. } => Code::Setup,
            Self::DnsTimeout { .. } => Code::DnsTimeout,
            Self::DnsNxDomain { .. } => Code::DnsNxDomain,
            Self::DnsNoRecords { .. } => Code::DnsNoRecords,
            Self::DnsServFail { .. } => Code::DnsServFail,
            Self::DnsFailure { .. } => Code::DnsFailure,
            Self::SrvNoService { .. } => Code::SrvNoService,
            Self::SrvNoUsableTarget { .. } => Code::SrvNoUsableTarget,
            Self::ForbiddenAddress { .. } => Code::ForbiddenAddress,
            Self::ConnectionRefused { .. } => Code::ConnectionRefused,
            Self::Connect { .. } => Code::Connect,
            Self::Tls { .. } => Code::Tls,
            Self::Timeout { .. } => Code::Timeout,
            Self::Request { .. } => Code::Request,
            Self::HttpStatus { status: 404, .. } => Code::HttpNotFound,
            Self::HttpStatus {
                status: 500..=599, ..
            } => Code::HttpServerError,
            Self::HttpStatus { .. } => Code::HttpStatus,
            Self::AuthRequired { .. } => Code::AuthRequired,
            Self::AuthRejected { .. } => Code::AuthRejected,
            Self::ModernAuthOnly { .. } => Code::ModernAuthOnly,
            Self::CredentialsWithheld { .. } => Code::CredentialsWithheld,
            Self::CredentialBudget { .. } => Code::CredentialBudget,
            Self::BudgetUnavailable { .. } => Code::BudgetUnavailable,
            Self::BodyTooLarge { .. } => Code::BodyTooLarge,
            Self::PoxParse { .. } => Code::PoxInvalidXml,
            Self::PoxDoctype { .. } => Code::PoxDoctype,
            Self::PoxError { .. } => Code::PoxError,
            Self::PoxNoSettings { .. } => Code::PoxNoSettings,
            Self::PoxNotExchange { .. } => Code::PoxNotExchange,
            Self::V2Error { .. } => Code::V2Error,
            Self::InsecureRedirect { .. } => Code::InsecureRedirect,
            Self::RedirectRefused { .. } => Code::RedirectRefused,
            Self::RedirectLoop { .. } => Code::RedirectLoop,
            Self::RedirectLimit { .. } => Code::RedirectLimit,
            Self::NoRedirect { .. } => Code::NoRedirect,
            Self::Deadline => Code::Deadline,
        }
    }

    /// Whether the failure is a timeout of some kind.
    pub fn is_timeout(&self) -> bool {
        self.code().is_timeout()
    }

    /// Whether trying the same discovery later could give another answer
    /// ([`Code::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.code().is_retryable()
    }
}
