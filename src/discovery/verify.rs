//! Verification: the credentials checked on a report's host with one ActiveSync exchange,
//! and the report put where that password works: a `451` move ([MS-ASHTTP] 3.1.5.2.2) moves
//! the host, the URL and the provider; a refusal is the report's error.

use url::Url;

use super::activesync::sync::{self, DeviceIdentity};
use super::activesync::{self, CredentialUse, Probe, ProbeOutcome};
use super::trust::Trust;
use super::{Pipeline, RunContext, diagnosis, online};
use crate::code::Code;
use crate::domain::{Credentials, EmailAddress};
use crate::report::{ConsentNeeded, Failure, Method, Provider, Report};

impl Pipeline {
    /// Checks `credentials` on the report's host with one ActiveSync OPTIONS exchange:
    /// anonymous first, then Basic only if the host challenges for it and is trusted (the
    /// report's `confirmed`). Exchange Online gets no password at all: basic authentication is
    /// off there. Fills `verification` and `credentials_valid`, and appends to the trail.
    ///
    /// The report then says where the password works: a `451` move puts the host, the
    /// ActiveSync URL and the provider where the mailbox moved (outside the trust set, it is
    /// the consent case and no host is reported); a refusal is the report's error
    /// (`auth_failed`), with the host in its message only.
    pub async fn verify(&self, report: &mut Report, credentials: &Credentials) {
        self.verify_with_consent(report, credentials, &[]).await;
    }

    pub(super) async fn verify_with_consent(
        &self,
        report: &mut Report,
        credentials: &Credentials,
        consented: &[String],
    ) {
        let Some(host) = report.exchange_server_host.clone() else {
            return;
        };
        let Ok(address) = EmailAddress::parse(&report.email) else {
            return;
        };
        let url = report
            .activesync_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| u.scheme() == "https" && u.host_str().is_some())
            .or_else(|| activesync::activesync_url(&host));
        let Some(url) = url else { return };
        let context = RunContext::new(&self.shared.config, consented);
        let steps = self.steps(
            &context,
            &address,
            None,
            report.method.unwrap_or(Method::Explicit),
        );
        let probe = if report.provider == Some(Provider::Office365) {
            Probe::not_sent(&url, ProbeOutcome::ModernAuthOnly, Code::ModernAuthOnly)
        } else {
            // The confirmed host itself, and 451 moves only inside the trust set (rule 4).
            let confirmed_host = url.host_str().unwrap_or_default().to_owned();
            let confirmed = report.confirmed;
            let run = steps.run.clone();
            let trusted =
                move |host: &str| confirmed && (host == confirmed_host || run.is_trusted(host));
            let usage = CredentialUse::Basic {
                credentials,
                trusted: &trusted,
            };
            steps.probe_recorded(&url, usage).await
        };
        let answered_host = Url::parse(&probe.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if probe.outcome == ProbeOutcome::Confirmed
            && probe.authenticated
            && steps.run.trust.speaks_for_domain(&answered_host)
        {
            self.shared.limits.password_accepted(credentials).await;
        }
        report.credentials_valid = match probe.outcome {
            ProbeOutcome::Confirmed => Some(true),
            ProbeOutcome::CredentialsRefused => Some(false),
            _ => None,
        };
        if probe.outcome.shows_endpoint() {
            report
                .activesync_url
                .get_or_insert_with(|| probe.url.clone());
            if report.activesync.is_none() {
                report.activesync = Some(probe.clone());
            }
        }
        report.verification = Some(probe);
        report.trail.extend(context.take_trail());
        follow_move(report, &url, &steps.run.trust);
        if report.credentials_valid == Some(false) {
            let host = report.exchange_server_host.take().unwrap_or_default();
            report.confirmed = false;
            report.error = Some(Failure {
                code: Code::AuthFailed,
                message: format!("{host} refused the credentials (ActiveSync answered 401)"),
            });
        }
        diagnosis::prescribe(report, address.domain());
    }
}

impl Pipeline {
    /// The sync check ([`activesync::sync`]) on a report whose verification accepted the
    /// password: at the URL that accepted it, with the versions it listed, as `identity`.
    /// Fills `sync`; a failed check is the report's error (the host stays: it is where the
    /// mailbox is, and why it will not sync is the answer) with its remedy. Does nothing on a
    /// report whose password was not accepted.
    pub async fn check_sync(
        &self,
        report: &mut Report,
        credentials: &Credentials,
        identity: &DeviceIdentity,
    ) {
        if report.credentials_valid != Some(true) {
            return;
        }
        let Some(probe) = report.verification.as_ref() else {
            return;
        };
        let Ok(url) = Url::parse(&probe.url) else {
            return;
        };
        let versions = probe.versions.clone();
        let checked = self.sync_at(&url, credentials, identity, &versions).await;
        // The commands follow the discovery in the trail, which then explains the result.
        let offset = (report.seconds * 1000.0) as u64;
        report
            .trail
            .extend(checked.trail.into_iter().map(|mut attempt| {
                attempt.method = report.method.unwrap_or(Method::Explicit);
                attempt.start_ms += offset;
                attempt
            }));
        let check = checked.check;
        if check.code != Code::SyncConfirmed {
            let host = url.host_str().unwrap_or_default();
            report.error = Some(Failure {
                code: check.code,
                message: format!("{host}: {}", check.message),
            });
        }
        report.sync = Some(check);
        if let Ok(address) = EmailAddress::parse(&report.email) {
            diagnosis::prescribe(report, address.domain());
        }
    }

    /// The sync check at an ActiveSync `url` whose `OPTIONS` accepted `credentials` and listed
    /// `versions` (`probe --sync`), with its commands as trail attempts. The caller has decided
    /// that `url` may have the password.
    pub async fn sync_at(
        &self,
        url: &Url,
        credentials: &Credentials,
        identity: &DeviceIdentity,
        versions: &[String],
    ) -> sync::Checked {
        sync::check(&self.shared.http, url, credentials, identity, versions).await
    }
}

/// Puts the report where a verification's `451` moves led ([MS-ASHTTP] 3.1.5.2.2): a mailbox
/// lives where it moved. `from` is the ActiveSync URL the verification started at.
fn follow_move(report: &mut Report, from: &Url, trust: &Trust) {
    let Some(probe) = report.verification.as_ref() else {
        return;
    };
    let Some(last) = probe.moves.last() else {
        return;
    };
    let moved_from = match probe.moves.len() {
        1 => from.to_string(),
        n => probe.moves[n - 2].clone(),
    };
    let target = Url::parse(last).ok();
    let target_host = target
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or_default()
        .to_owned();
    report.moved_from = Some(moved_from.clone());
    report.confirmed = false;
    match probe.outcome {
        ProbeOutcome::CredentialsWithheld if !trust.is_trusted(&target_host) => {
            // Outside the trust set: the consent case; the old host is not the mailbox's.
            report.exchange_server_host = None;
            report.activesync_url = None;
            report.provider = None;
            report.needs_consent = Some(ConsentNeeded {
                host: target_host.clone(),
                reason: "activesync_move_outside_domain",
                from: moved_from.clone(),
            });
            report.error = Some(Failure {
                code: Code::NeedsConsent,
                message: format!(
                    "the mailbox moved from {moved_from} to {last} ({target_host} is outside \
                     the domain and gets the password only with consent)"
                ),
            });
        }
        ProbeOutcome::Moved | ProbeOutcome::Unreachable => {
            // Moved again and again, to a target refused, or to one that does not answer.
            report.exchange_server_host = None;
            report.activesync_url = None;
            report.provider = None;
            report.error = Some(Failure {
                code: probe.code,
                message: format!(
                    "the mailbox moved from {moved_from} to {last}, which could not be \
                     confirmed ({})",
                    probe.code.as_str()
                ),
            });
        }
        _ => {
            let same_host = report.exchange_server_host.as_deref() == Some(target_host.as_str());
            if !same_host {
                report.ews_url = None;
            }
            report.provider = Some(online::provider_of(&target_host, None));
            report.confirmed = trust.is_trusted(&target_host);
            report.exchange_server_host = Some(target_host);
            report.activesync_url = Some(last.clone());
        }
    }
}
