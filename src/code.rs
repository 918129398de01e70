//! The stable codes of everything a discovery can fail at, be cut short by, or conclude: one
//! `Copy` enum, carried in attempts, probes and failures, written out as the strings reports
//! have always used (`as_str`). What a code means for a retry or for "nothing is there" is
//! said here once ([`Code::is_retryable`], [`Code::is_absent`]).

use std::fmt;

/// A stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Code {
    // Input refused at the edge.
    /// `invalid_address`.
    InvalidAddress,
    /// `invalid_domain`.
    InvalidDomain,
    /// `setup`: the pipeline could not be built.
    Setup,
    // DNS.
    /// `dns_timeout`.
    DnsTimeout,
    /// `dns_nxdomain`.
    DnsNxDomain,
    /// `dns_no_records`.
    DnsNoRecords,
    /// `dns_servfail`.
    DnsServFail,
    /// `dns_failure`.
    DnsFailure,
    /// `srv_no_service`: the SRV record says no service.
    SrvNoService,
    /// `srv_no_usable_target`: no target on an allowed port.
    SrvNoUsableTarget,
    /// `duplicate_target`: an SRV target already asked.
    DuplicateTarget,
    // Connections and HTTP.
    /// `forbidden_address` (rule 12).
    ForbiddenAddress,
    /// `connection_refused`.
    ConnectionRefused,
    /// `connect`: the connection failed otherwise.
    Connect,
    /// `tls`.
    Tls,
    /// `timeout`.
    Timeout,
    /// `request`: the request failed midway.
    Request,
    /// `http_status`: an unexpected status other than 404 and 5xx.
    HttpStatus,
    /// `http_status` for a 404.
    HttpNotFound,
    /// `http_status` for a 5xx.
    HttpServerError,
    /// `body_too_large` (rule 15).
    BodyTooLarge,
    // Authentication.
    /// `auth_required`: a 401 that discovery could not get past.
    AuthRequired,
    /// `auth_rejected`: the credentials were refused.
    AuthRejected,
    /// `modern_auth_only`: only OAuth is offered.
    ModernAuthOnly,
    /// `credentials_withheld`: the host may not have them.
    CredentialsWithheld,
    /// `credential_budget`: the account's attempts are spent (rule 19).
    CredentialBudget,
    /// `budget_unavailable`: the shared password budget (Redis) did not answer, so no password
    /// was sent (it fails closed).
    BudgetUnavailable,
    // The sync check ([MS-ASPROV], [MS-ASCMD] FolderSync).
    /// `sync_confirmed`: Provision and FolderSync went through; the mailbox syncs.
    SyncConfirmed,
    /// `protocol_version_refused`: no ActiveSync version both sides speak (12.0 or later), or
    /// the server refused the one chosen (status 138, or Exchange Online's floor of 16.1).
    ProtocolVersionRefused,
    /// `provisioning_required`: the server asks for the policy again (HTTP 449, status 142,
    /// 143, 144) after it was acknowledged.
    ProvisioningRequired,
    /// `policy_refused`: the server's policy cannot be acknowledged (Provision status 2 or 3,
    /// policy status 3, 4 or 5, status 141 or 145).
    PolicyRefused,
    /// `remote_wipe_requested`: the server sent a remote-wipe directive (status 140, or a
    /// `RemoteWipe` element); reported, never acted on.
    RemoteWipeRequested,
    /// `user_disabled_for_sync`: the user is not enabled for ActiveSync (status 126, 127,
    /// 128; 131 account disabled).
    UserDisabledForSync,
    /// `device_blocked`: an Allow/Block/Quarantine rule blocks this device (status 129).
    DeviceBlocked,
    /// `device_quarantined`: the device is quarantined: the server shows it nothing but the
    /// Inbox, where its quarantine notice is.
    DeviceQuarantined,
    /// `access_denied`: the server denies this user access (status 130).
    AccessDenied,
    /// `max_devices_reached`: the mailbox has as many devices as it may (status 177).
    MaxDevicesReached,
    /// `mailbox_moved`: a command was answered 451 (the mailbox is elsewhere).
    MailboxMoved,
    /// `throttled`: 503 with `X-MS-ASThrottle`, or status 111 / a 503 (try later).
    Throttled,
    /// `sync_failed`: another status the check cannot act on (kept in the report).
    SyncFailed,
    // Autodiscover answers.
    /// `pox_invalid_xml`.
    PoxInvalidXml,
    /// `pox_doctype`.
    PoxDoctype,
    /// `pox_error`: an Autodiscover error answer.
    PoxError,
    /// `pox_no_settings`.
    PoxNoSettings,
    /// `pox_not_exchange`: settings for IMAP or POP only.
    PoxNotExchange,
    /// `v2_error`: an Autodiscover v2 error answer.
    V2Error,
    /// `v2_invalid_json`: an Autodiscover v2 answer that is not its JSON.
    V2InvalidJson,
    /// `not_exchange_online`: the MX is not Exchange Online's.
    NotExchangeOnline,
    // Redirects.
    /// `insecure_redirect`.
    InsecureRedirect,
    /// `redirect_refused`.
    RedirectRefused,
    /// `redirect_loop`.
    RedirectLoop,
    /// `redirect_limit`.
    RedirectLimit,
    /// `no_redirect`: the plain-HTTP method gave no https redirect.
    NoRedirect,
    // ActiveSync probes.
    /// `activesync_confirmed`.
    ActiveSyncConfirmed,
    /// `activesync_moved`: a 451 that was not followed.
    ActiveSyncMoved,
    /// `forbidden`: a 403.
    Forbidden,
    /// `server_error`: a 5xx from ActiveSync.
    ServerError,
    /// `not_activesync`: the answer is not ActiveSync's.
    NotActiveSync,
    /// `unreachable`.
    Unreachable,
    // The race and the discovery.
    /// `deadline`: the discovery's deadline passed.
    Deadline,
    /// `superseded`: a preferred answer was chosen first.
    Superseded,
    /// `cancelled`.
    Cancelled,
    /// `internal`: a candidate's task failed.
    Internal,
    /// `not_found`: nothing answered as Autodiscover or ActiveSync.
    NotFound,
    /// `auth_failed`: every endpoint that answered refused the credentials.
    AuthFailed,
    /// `auth_inconclusive`: some refused, others could not be reached.
    AuthInconclusive,
    /// `needs_consent`: the host found is outside the domain (rule 4).
    NeedsConsent,
    /// `not_verified`: no verification ran.
    NotVerified,
    /// `imap_only`: the domain's own Autodiscover names IMAP, POP3 and SMTP servers and no
    /// Exchange server, and nothing else found one: the mailbox is not Exchange.
    ImapOnly,
}

impl Code {
    /// The string reports, logs and metrics carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidAddress => "invalid_address",
            Self::InvalidDomain => "invalid_domain",
            Self::Setup => "setup",
            Self::DnsTimeout => "dns_timeout",
            Self::DnsNxDomain => "dns_nxdomain",
            Self::DnsNoRecords => "dns_no_records",
            Self::DnsServFail => "dns_servfail",
            Self::DnsFailure => "dns_failure",
            Self::SrvNoService => "srv_no_service",
            Self::SrvNoUsableTarget => "srv_no_usable_target",
            Self::DuplicateTarget => "duplicate_target",
            Self::ForbiddenAddress => "forbidden_address",
            Self::ConnectionRefused => "connection_refused",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Request => "request",
            Self::HttpStatus | Self::HttpNotFound | Self::HttpServerError => "http_status",
            Self::BodyTooLarge => "body_too_large",
            Self::AuthRequired => "auth_required",
            Self::AuthRejected => "auth_rejected",
            Self::ModernAuthOnly => "modern_auth_only",
            Self::CredentialsWithheld => "credentials_withheld",
            Self::CredentialBudget => "credential_budget",
            Self::BudgetUnavailable => "budget_unavailable",
            Self::PoxInvalidXml => "pox_invalid_xml",
            Self::PoxDoctype => "pox_doctype",
            Self::PoxError => "pox_error",
            Self::PoxNoSettings => "pox_no_settings",
            Self::PoxNotExchange => "pox_not_exchange",
            Self::V2Error => "v2_error",
            Self::V2InvalidJson => "v2_invalid_json",
            Self::NotExchangeOnline => "not_exchange_online",
            Self::InsecureRedirect => "insecure_redirect",
            Self::RedirectRefused => "redirect_refused",
            Self::RedirectLoop => "redirect_loop",
            Self::RedirectLimit => "redirect_limit",
            Self::NoRedirect => "no_redirect",
            Self::ActiveSyncConfirmed => "activesync_confirmed",
            Self::ActiveSyncMoved => "activesync_moved",
            Self::Forbidden => "forbidden",
            Self::ServerError => "server_error",
            Self::NotActiveSync => "not_activesync",
            Self::Unreachable => "unreachable",
            Self::Deadline => "deadline",
            Self::Superseded => "superseded",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
            Self::NotFound => "not_found",
            Self::AuthFailed => "auth_failed",
            Self::AuthInconclusive => "auth_inconclusive",
            Self::NeedsConsent => "needs_consent",
            Self::NotVerified => "not_verified",
            Self::ImapOnly => "imap_only",
            Self::SyncConfirmed => "sync_confirmed",
            Self::ProtocolVersionRefused => "protocol_version_refused",
            Self::ProvisioningRequired => "provisioning_required",
            Self::PolicyRefused => "policy_refused",
            Self::RemoteWipeRequested => "remote_wipe_requested",
            Self::UserDisabledForSync => "user_disabled_for_sync",
            Self::DeviceBlocked => "device_blocked",
            Self::DeviceQuarantined => "device_quarantined",
            Self::AccessDenied => "access_denied",
            Self::MaxDevicesReached => "max_devices_reached",
            Self::MailboxMoved => "mailbox_moved",
            Self::Throttled => "throttled",
            Self::SyncFailed => "sync_failed",
        }
    }

    /// Whether the same discovery later could give another answer: timeouts, DNS failures
    /// other than "no such name", connections that failed or were refused, requests cut
    /// midway, server errors.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::DnsTimeout
                | Self::Deadline
                | Self::DnsServFail
                | Self::DnsFailure
                | Self::Connect
                | Self::ConnectionRefused
                | Self::Request
                | Self::HttpServerError
        )
    }

    /// Whether the code says that no Autodiscover endpoint is there, as opposed to one that
    /// failed: no such name or record, nothing listening, no redirect, an HTTP error, a
    /// target seen before, a loop, an error answer or one that is not XML.
    pub fn is_absent(self) -> bool {
        matches!(
            self,
            Self::DnsNxDomain
                | Self::DnsNoRecords
                | Self::SrvNoService
                | Self::SrvNoUsableTarget
                | Self::ConnectionRefused
                | Self::NoRedirect
                | Self::HttpStatus
                | Self::HttpNotFound
                | Self::HttpServerError
                | Self::DuplicateTarget
                | Self::RedirectLoop
                | Self::PoxError
                | Self::PoxInvalidXml
        )
    }

    /// Whether the code is a timeout of some kind.
    pub fn is_timeout(self) -> bool {
        matches!(self, Self::Timeout | Self::DnsTimeout | Self::Deadline)
    }

    /// Whether the code is a DNS failure.
    pub fn is_dns(self) -> bool {
        self.as_str().starts_with("dns_")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_before_and_say_what_they_mean() {
        assert_eq!(Code::HttpServerError.as_str(), "http_status");
        assert_eq!(
            serde_json::to_string(&Code::DnsNxDomain).unwrap(),
            "\"dns_nxdomain\""
        );
        assert!(Code::ConnectionRefused.is_retryable() && Code::ConnectionRefused.is_absent());
        assert!(Code::HttpServerError.is_retryable() && !Code::HttpNotFound.is_retryable());
        assert!(!Code::AuthRejected.is_retryable() && !Code::AuthRejected.is_absent());
        assert!(Code::DnsTimeout.is_dns() && Code::DnsTimeout.is_timeout());
        assert_eq!(Code::NotFound, "not_found");
    }
}
