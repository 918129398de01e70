//! What a discovery reports: the host it settled on, how it got there, and the trail of every
//! attempt, so that a failed discovery explains itself; and what an ActiveSync probe found
//! ([`Probe`]). The model: it names no part of the engine.

use serde::Serialize;
use url::Url;

pub use crate::code::Code;

/// The outcome of one discovery, successful or not. Serialises to the `discover --json` shape.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The address discovery started from (after normalisation).
    pub email: String,
    /// The Exchange host, or `None` when nothing was found.
    pub exchange_server_host: Option<String>,
    /// Which step produced the host.
    pub method: Option<Method>,
    /// Whether a trusted source says that this host serves the mailbox: an Autodiscover
    /// settings answer (POX or v2) from a host in the trust set, the host's own ActiveSync
    /// endpoint when the host is in the trust set, or the caller ([`Evidence::Explicit`]).
    /// Only a confirmed host is given the password by `verify`. Never true for a host that
    /// needs consent (see `needs_consent`).
    pub confirmed: bool,
    /// How strong the evidence for the host is.
    pub evidence: Option<Evidence>,
    /// The ActiveSync URL: the mobilesync schema's `MobileSync` URL, Autodiscover v2's, or
    /// `https://HOST/Microsoft-Server-ActiveSync` once the host's ActiveSync endpoint answered.
    pub activesync_url: Option<String>,
    /// The EWS URL (`EwsUrl`, else `ASUrl`, the Availability service, which is EWS).
    pub ews_url: Option<String>,
    /// The most preferred Autodiscover endpoint that answered without naming a host (a 401
    /// challenge, anonymous or with credentials withheld): it proves that Autodiscover exists
    /// there, not which server holds the mailbox.
    pub autodiscover_endpoint: Option<AutodiscoverEndpoint>,
    /// A host outside the domain that would need the user's consent to receive the
    /// credentials (a redirect or SRV target in another registrable domain). Give consent with
    /// `--trust-host HOST` (or the library's consent list) and discover again.
    pub needs_consent: Option<ConsentNeeded>,
    /// Who runs the mailbox; `None` when nothing was found.
    pub provider: Option<Provider>,
    /// The anonymous ActiveSync probe that confirms the host (or the URL Autodiscover named).
    pub activesync: Option<Probe>,
    /// The credential check, when one was asked for (`discover --verify`).
    pub verification: Option<Probe>,
    /// The sync check, when one was asked for (`discover --verify=sync`): Provision and
    /// FolderSync as a device would run them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncCheck>,
    /// Whether the credentials work: `Some(true)` only after a 200 with the ActiveSync headers
    /// to an authenticated request; `None` when not checked or not decidable.
    pub credentials_valid: Option<bool>,
    /// The ActiveSync URL that answered the password with `451` ([MS-ASHTTP] 3.1.5.2.2): the
    /// mailbox moved from there to `activesync_url` (Exchange sends it for mailboxes moved to
    /// Exchange Online or to another site). The host, the URL and the provider are the new
    /// place's.
    pub moved_from: Option<String>,
    /// The address the answer is for, when Autodiscover redirected to another address.
    pub redirected_email: Option<String>,
    /// How long the answer may be cached, in seconds (`TTL` in hours, default 1).
    pub ttl_seconds: Option<u64>,
    /// Every attempt, in the order they finished.
    pub trail: Vec<Attempt>,
    /// Wall-clock duration of the whole discovery.
    pub seconds: f64,
    /// Why nothing was found; `None` on success.
    pub error: Option<Failure>,
    /// What the domain's administrator or the user can do, when the discovery failed: what to
    /// do and with which value; each face says it in its own words (`Display` is the engine's
    /// neutral sentence).
    pub remedy: Option<Remedy>,
    /// The IMAP, POP3 and SMTP servers the domain's own Autodiscover named instead of an
    /// Exchange server (web hosters, mailcow, cPanel): when nothing else was found, the
    /// mailbox is not Exchange (`imap_only`) and these are where it is reached.
    pub mail_servers: Vec<MailServer>,
}

/// What to do about a failed discovery, with the values it needs. The command line says it
/// with its flags, the API with its fields, the hosted page in the user's words; `Display` is
/// the engine's own sentence, which names neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Remedy {
    /// `host`, outside `domain`, asks for the password: allow it only if the mail is hosted
    /// there; otherwise name the server.
    AllowHost {
        /// The host that needs consent.
        host: String,
        /// The mailbox's domain.
        domain: String,
    },
    /// The mailbox is on Exchange Online, where basic authentication is off: use OAuth.
    UseOffice365,
    /// The mail server refused the password: check the username and the password.
    CheckPassword,
    /// Some servers refused the password and others could not be reached.
    CheckPasswordAndRetry,
    /// Autodiscover names the server only to the account's credentials: give them.
    GiveCredentials,
    /// The password attempts are spent for now: wait.
    Wait {
        /// Minutes until attempts come back.
        minutes: u64,
    },
    /// The Exchange administrator must fix Autodiscover's redirects.
    FixRedirects {
        /// The hosts the redirects went through, in order.
        hops: Vec<String>,
    },
    /// The DNS administrator must fix the domain's name servers.
    FixDns {
        /// The domain.
        domain: String,
    },
    /// Check the address: its domain is not registered.
    CheckAddress {
        /// The domain.
        domain: String,
    },
    /// The servers were too slow: try again, or name the server.
    RetryOrNameServer,
    /// The mailbox is IMAP/SMTP, not Exchange: connect it with an IMAP client.
    UseImap {
        /// The domain.
        domain: String,
        /// Its IMAP, POP3 and SMTP servers.
        servers: Vec<MailServer>,
    },
    /// The mailbox moved to a server that could not be confirmed: name where it lives now.
    NameNewServer,
    /// `host` (autodiscover.DOMAIN) presents a certificate that is not valid for it.
    FixCertificate {
        /// The host.
        host: String,
    },
    /// `host` (autodiscover.DOMAIN) resolves but nothing answers on https.
    FixListener {
        /// The host.
        host: String,
        /// The domain.
        domain: String,
    },
    /// Nothing answered as Autodiscover or ActiveSync: publish autodiscover.DOMAIN or the SRV
    /// record, or name the server.
    PublishAutodiscover {
        /// The domain.
        domain: String,
    },
    /// The sync check failed for a reason the mailbox's Exchange administrator fixes:
    /// `code` says which (`device_blocked`, `device_quarantined`, `user_disabled_for_sync`,
    /// `max_devices_reached`, ...), for the device `device_id` of type `device_type`.
    AskAdministrator {
        /// The sync check's code.
        code: Code,
        /// The device the check ran as.
        device_id: String,
        /// Its type.
        device_type: String,
    },
}

impl std::fmt::Display for Remedy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AllowHost { host, domain } => write!(
                f,
                "{host} is outside {domain}: allow it to receive the password only if the mail \
                 is hosted there; otherwise name the server"
            ),
            Self::UseOffice365 => f.write_str(
                "the mailbox is on Exchange Online, where basic authentication is off: sign in \
                 with Microsoft (OAuth)",
            ),
            Self::CheckPassword => f.write_str(
                "the mail server refused the password: check the username (often the full \
                 address, or DOMAIN\\user) and the password",
            ),
            Self::CheckPasswordAndRetry => f.write_str(
                "some servers refused the password and others could not be reached: check the \
                 password, then try again",
            ),
            Self::GiveCredentials => f.write_str(
                "Autodiscover names the server only to the account's credentials: give the \
                 username and password",
            ),
            Self::Wait { minutes } => write!(
                f,
                "the password was tried the most times allowed for now (so that Active \
                 Directory does not lock the account): try again in {minutes} minutes"
            ),
            Self::FixRedirects { hops } => write!(
                f,
                "the Exchange administrator must fix Autodiscover's redirects ({}) so that \
                 they end at a server that answers with settings",
                hops.join(" → ")
            ),
            Self::FixDns { domain } => write!(
                f,
                "the name servers of {domain} fail: its DNS administrator must fix the zone or \
                 its delegation"
            ),
            Self::CheckAddress { domain } => write!(
                f,
                "check the address: {domain} is not a registered domain (NXDOMAIN)"
            ),
            Self::RetryOrNameServer => {
                f.write_str("the servers answered too slowly: try again, or name the server")
            }
            Self::UseImap { domain, servers } => {
                write!(
                    f,
                    "{domain} is an IMAP/SMTP mailbox, not Exchange: connect it with an IMAP client"
                )?;
                if !servers.is_empty() {
                    let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
                    write!(f, " ({})", list.join(", "))?;
                }
                Ok(())
            }
            Self::NameNewServer => f.write_str(
                "the mailbox moved (ActiveSync answered 451) to a server that could not be \
                 confirmed: ask the administrator where it lives now, and name that server",
            ),
            Self::FixCertificate { host } => write!(
                f,
                "{host} presents a certificate that is not valid for it (often its DNS record \
                 points at a web hoster): point it at the Exchange server, or remove it"
            ),
            Self::FixListener { host, domain } => write!(
                f,
                "{host} resolves but nothing answers on https: point it at the Exchange \
                 server, publish _autodiscover._tcp.{domain}, or name the server"
            ),
            Self::PublishAutodiscover { domain } => write!(
                f,
                "nothing answered as Autodiscover or ActiveSync for {domain}: publish \
                 autodiscover.{domain} (pointing at the Exchange server, with a valid \
                 certificate) or _autodiscover._tcp.{domain}, or name the server"
            ),
            Self::AskAdministrator {
                code,
                device_id,
                device_type,
            } => {
                let device = format!("device {device_id} ({device_type})");
                let what = match code {
                    Code::DeviceBlocked => format!(
                        "an Allow/Block/Quarantine rule blocks {device}: the Exchange \
                         administrator must allow it"
                    ),
                    Code::DeviceQuarantined => format!(
                        "{device} is quarantined: the Exchange administrator must allow it \
                         (Exchange admin center, Mobile devices, or Set-CASMailbox \
                         -ActiveSyncAllowedDeviceIDs)"
                    ),
                    Code::UserDisabledForSync => "the user is not enabled for Exchange \
                         ActiveSync: the administrator must enable it (Set-CASMailbox \
                         -ActiveSyncEnabled $true)"
                        .to_owned(),
                    Code::MaxDevicesReached => "the mailbox has reached its device limit: \
                         remove unused devices (Outlook on the web, Mobile devices) or ask the \
                         administrator to raise the limit"
                        .to_owned(),
                    Code::AccessDenied => {
                        "the server denies this user ActiveSync access: ask the administrator"
                            .to_owned()
                    }
                    Code::PolicyRefused | Code::ProvisioningRequired => format!(
                        "the mailbox's ActiveSync policy does not admit {device}: the \
                         administrator must allow non-provisionable devices or this device"
                    ),
                    Code::RemoteWipeRequested => format!(
                        "the server asks {device} to wipe itself: the administrator must \
                         clear the wipe request before it can sync"
                    ),
                    Code::ProtocolVersionRefused => "the server and exdisco share no ActiveSync \
                         version both accept: the administrator must allow 14.0 or later"
                        .to_owned(),
                    other => {
                        format!("the mail server refused to sync ({other}): ask the administrator")
                    }
                };
                f.write_str(&what)
            }
        }
    }
}

/// A mail server an Autodiscover answer names in an IMAP, POP3 or SMTP `Protocol` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailServer {
    /// `imap`, `pop3` or `smtp`.
    pub protocol: String,
    /// The host name.
    pub server: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// `ssl`, `tls`, `starttls`, `auto` or `none`: `Encryption`, else `SSL` (on by default).
    pub encryption: String,
    /// The login name to use, when given (often a template or empty).
    pub login_name: Option<String>,
}

impl std::fmt::Display for MailServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.protocol, self.server)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, " ({})", self.encryption)
    }
}

impl Report {
    /// A report for `email` with nothing found yet.
    pub fn empty(email: String) -> Self {
        Self {
            email,
            exchange_server_host: None,
            method: None,
            confirmed: false,
            evidence: None,
            activesync_url: None,
            ews_url: None,
            autodiscover_endpoint: None,
            needs_consent: None,
            provider: None,
            activesync: None,
            verification: None,
            sync: None,
            credentials_valid: None,
            moved_from: None,
            redirected_email: None,
            ttl_seconds: None,
            trail: Vec::new(),
            seconds: 0.0,
            error: None,
            remedy: None,
            mail_servers: Vec::new(),
        }
    }

    /// Whether a host was found.
    pub fn is_found(&self) -> bool {
        self.exchange_server_host.is_some()
    }
}

/// The discovery step that produced the host, in the protocol's preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Method {
    /// The operator or caller named the host; discovery did not run.
    Explicit,
    /// `POST https://DOMAIN/autodiscover/autodiscover.xml`.
    PoxDomain,
    /// `POST https://autodiscover.DOMAIN/autodiscover/autodiscover.xml`.
    PoxAutodiscover,
    /// `GET http://autodiscover.DOMAIN/...` redirect, then a POST to its https target.
    HttpRedirect,
    /// DNS SRV `_autodiscover._tcp.DOMAIN`, then a POST to the target.
    Srv,
    /// Autodiscover v2 JSON at Exchange Online, when the domain's MX is Exchange Online's.
    AutodiscoverV2,
    /// `OPTIONS /Microsoft-Server-ActiveSync` on the names a domain typically uses.
    ActiveSync,
}

impl Method {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::PoxDomain => "pox_domain",
            Self::PoxAutodiscover => "pox_autodiscover",
            Self::HttpRedirect => "http_redirect",
            Self::Srv => "srv",
            Self::AutodiscoverV2 => "autodiscover_v2",
            Self::ActiveSync => "activesync",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        [
            Self::Explicit,
            Self::PoxDomain,
            Self::PoxAutodiscover,
            Self::HttpRedirect,
            Self::Srv,
            Self::AutodiscoverV2,
            Self::ActiveSync,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
        .ok_or(())
    }
}

/// Who runs the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Provider {
    /// An Exchange server: basic authentication may work.
    Exchange,
    /// Exchange Online (Microsoft 365): basic authentication is off; OAuth is needed.
    Office365,
}

impl Provider {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exchange => "exchange",
            Self::Office365 => "office365",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "exchange" => Ok(Self::Exchange),
            "office365" => Ok(Self::Office365),
            _ => Err(()),
        }
    }
}

/// How strong the evidence for a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Evidence {
    /// An Autodiscover answer with settings (POX or v2) named the host.
    Settings,
    /// The host answered `OPTIONS /Microsoft-Server-ActiveSync` with 200 and the ActiveSync
    /// protocol headers.
    ActiveSync,
    /// The host answered `OPTIONS /Microsoft-Server-ActiveSync` with a 401 challenge: an
    /// ActiveSync endpoint is there (it serves mailboxes), though not proven for this one.
    ActiveSyncEndpoint,
    /// The caller named the host.
    Explicit,
}

/// One attempt of one step against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The step: `srv`, `pox`, `http_redirect`, `redirect`.
    pub step: Step,
    /// The candidate method this attempt belongs to.
    pub method: Method,
    /// A URL for HTTP steps, a DNS name for lookups.
    pub target: String,
    /// What happened.
    pub outcome: Outcome,
    /// A stable error code when the attempt failed or was cut short.
    pub code: Option<Code>,
    /// A short human explanation (never a secret).
    pub detail: Option<String>,
    /// Whether credentials were sent with this attempt.
    pub authenticated: bool,
    /// Milliseconds the attempt took.
    pub ms: u64,
    /// Milliseconds from the start of the discovery to the start of this attempt (the
    /// timeline of `discover --report`).
    pub start_ms: u64,
}

/// The kind of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// A DNS SRV lookup.
    Srv,
    /// An Autodiscover POX POST.
    Pox,
    /// The unauthenticated plain-HTTP GET that may answer with a redirect.
    HttpRedirect,
    /// A DNS MX lookup.
    Mx,
    /// An Autodiscover v2 JSON GET.
    AutodiscoverV2,
    /// An ActiveSync OPTIONS request.
    ActiveSync,
    /// A command of the sync check (Provision, FolderSync).
    SyncCheck,
}

impl Step {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Srv => "srv",
            Self::Pox => "pox",
            Self::HttpRedirect => "http_redirect",
            Self::Mx => "mx",
            Self::AutodiscoverV2 => "autodiscover_v2",
            Self::ActiveSync => "activesync",
            Self::SyncCheck => "sync_check",
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The attempt produced an answer (settings, or a 401 that proves the endpoint).
    Answered,
    /// The attempt led somewhere else (a redirect, SRV targets).
    Redirected,
    /// The attempt failed; `code` says why.
    Failed,
    /// The attempt was refused before any traffic (security rules, limits).
    Refused,
    /// The attempt was cancelled because a preferred answer was chosen.
    Cancelled,
}

impl Outcome {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Redirected => "redirected",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
}

impl Evidence {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settings => "settings",
            Self::ActiveSync => "activesync",
            Self::ActiveSyncEndpoint => "activesync_endpoint",
            Self::Explicit => "explicit",
        }
    }
}

/// Why a discovery found nothing, in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// A stable code (`not_found`, `auth_failed`, `deadline`, ...).
    pub code: Code,
    /// A human sentence.
    pub message: String,
}

/// An Autodiscover endpoint that answered but named no host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutodiscoverEndpoint {
    /// The endpoint's URL.
    pub url: String,
    /// It answered 401: it wants credentials (none given, withheld, or a scheme we do not
    /// speak, such as NTLM only).
    pub requires_auth: bool,
    /// Whether the endpoint is in the trust set (it may receive the credentials).
    pub trusted: bool,
}

/// A host that would need the user's consent before it gets the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentNeeded {
    /// The host outside the domain.
    pub host: String,
    /// Why: `redirect_outside_domain` (a 30x or `redirectUrl`), `http_redirect_outside_domain`
    /// (the plain-HTTP method), `srv_target_outside_domain`, `activesync_move_outside_domain`
    /// (an ActiveSync 451).
    pub reason: &'static str,
    /// Where the host came from: the URL that redirected, or the SRV name.
    pub from: String,
}

/// What an ActiveSync endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// 200 with both protocol headers: ActiveSync, and the credentials (if sent) work.
    Confirmed,
    /// 401 to an anonymous request with a Basic challenge: an endpoint exists.
    AuthRequired,
    /// 401 after Basic credentials: the server refused them.
    CredentialsRefused,
    /// Only modern authentication (Bearer/OAuth) is accepted: basic authentication is off.
    ModernAuthOnly,
    /// Credentials were not sent: the host is not trusted, or not over https.
    CredentialsWithheld,
    /// 451 moves beyond the probe's limit, or to a refused target.
    Moved,
    /// 403.
    Forbidden,
    /// 5xx.
    ServerError,
    /// A 200 without the ActiveSync headers, or another status.
    NotActiveSync,
    /// No answer: DNS, connect, TLS, timeout.
    Unreachable,
}

impl ProbeOutcome {
    /// A stable label.
    pub fn code(self) -> Code {
        match self {
            Self::Confirmed => Code::ActiveSyncConfirmed,
            Self::AuthRequired => Code::AuthRequired,
            Self::CredentialsRefused => Code::AuthRejected,
            Self::ModernAuthOnly => Code::ModernAuthOnly,
            Self::CredentialsWithheld => Code::CredentialsWithheld,
            Self::Moved => Code::ActiveSyncMoved,
            Self::Forbidden => Code::Forbidden,
            Self::ServerError => Code::ServerError,
            Self::NotActiveSync => Code::NotActiveSync,
            Self::Unreachable => Code::Unreachable,
        }
    }

    /// Whether the answer shows an ActiveSync endpoint (confirmed, or one that challenges).
    pub fn shows_endpoint(self) -> bool {
        matches!(
            self,
            Self::Confirmed | Self::AuthRequired | Self::CredentialsRefused | Self::ModernAuthOnly
        )
    }
}

/// The classified result of one probe, with what the server told about itself.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Probe {
    /// The URL finally probed (after 451 moves).
    pub url: String,
    /// The classified answer.
    pub outcome: ProbeOutcome,
    /// A stable code: the outcome's, or the network failure's (`tls`, `dns_nxdomain`, ...).
    pub code: Code,
    /// The HTTP status of the last answer, if any.
    pub status: Option<u16>,
    /// `MS-ASProtocolVersions`, split.
    pub versions: Vec<String>,
    /// `MS-ASProtocolCommands`, split.
    pub commands: Vec<String>,
    /// `MS-Server-ActiveSync`: the server build.
    pub server_build: Option<String>,
    /// Whether credentials were sent.
    pub authenticated: bool,
    /// The 451 targets followed.
    pub moves: Vec<String>,
    /// Milliseconds for the whole probe.
    pub ms: u64,
}

impl Probe {
    /// The evidence this probe gives for its host: a 200 with the protocol headers is
    /// ActiveSync itself; a challenge at the ActiveSync path is an endpoint.
    pub fn evidence(&self) -> Evidence {
        if self.outcome == ProbeOutcome::Confirmed {
            Evidence::ActiveSync
        } else {
            Evidence::ActiveSyncEndpoint
        }
    }

    /// A probe with no answer: it sent nothing (the answer is known without asking, as for
    /// Exchange Online, or the credential budget is spent), or the server could not be reached.
    pub fn not_sent(url: &Url, outcome: ProbeOutcome, code: Code) -> Self {
        Self {
            url: url.to_string(),
            outcome,
            code,
            status: None,
            versions: Vec::new(),
            commands: Vec::new(),
            server_build: None,
            authenticated: false,
            moves: Vec::new(),
            ms: 0,
        }
    }
}

/// What the sync check proved: the version both sides speak, the device it ran as, the policy,
/// the folders ([MS-ASPROV] 3.1.5.1, [MS-ASCMD] 2.2.1.5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncCheck {
    /// `sync_confirmed`, or why the mailbox will not sync.
    pub code: crate::code::Code,
    /// A sentence for people.
    pub message: String,
    /// The protocol version chosen (the highest both sides speak).
    pub protocol_version: Option<String>,
    /// The device identity the check ran as (a sync engine can go on with it).
    pub device_id: String,
    /// The device type sent.
    pub device_type: String,
    /// Whether the server asked for a policy, and it was acknowledged (never enforced).
    pub policy_acknowledged: bool,
    /// Whether the server sent a remote-wipe directive (reported, never acted on).
    pub remote_wipe_requested: bool,
    /// The ActiveSync `Status` that decided, when one did.
    pub status: Option<u32>,
    /// The HTTP status of the last answer.
    pub http_status: Option<u16>,
    /// `X-MS-ASThrottle`, when the server throttled.
    pub throttle: Option<String>,
    /// Folders FolderSync listed.
    pub folders: Option<u32>,
    /// How many of each type ([MS-ASCMD] 2.2.3.186.3: `inbox`, `sent`, `calendar`, ...).
    pub folder_types: std::collections::BTreeMap<String, u32>,
    /// Requests sent.
    pub requests: u32,
    /// Milliseconds for the whole check.
    pub ms: u64,
}
