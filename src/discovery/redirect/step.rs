//! The plain-HTTP redirect method (MS-OXDSCLI 3.1.5.3): a GET without credentials or body to
//! `http://autodiscover.DOMAIN/autodiscover/autodiscover.xml`; only an https `Location` to an
//! Autodiscover path is used.

use reqwest::Method as HttpMethod;
use url::Url;

use crate::discovery::error::Error;
use crate::discovery::steps::{CandidateOutcome, Origin, Steps, failed, location};
use crate::report::{Outcome, Step};

impl Steps {
    /// The plain-HTTP redirect step: GET without credentials or body; only an https
    /// `Location` to an Autodiscover path is used, then POSTed to (its host trusted only if it
    /// belongs to the trust set, rule 3; a host outside it needs consent, rule 4).
    pub(in crate::discovery) async fn http_redirect(&self, url: Url) -> CandidateOutcome {
        let fetched = match self
            .send(Step::HttpRedirect, HttpMethod::GET, &url, None)
            .await
        {
            Ok(fetched) => fetched,
            Err(code) => return failed(code),
        };
        let location = match (fetched.status.as_u16(), location(&fetched.headers)) {
            (301 | 302 | 303 | 307 | 308, Some(location)) => location,
            _ => {
                let err = Error::NoRedirect {
                    url: url.to_string(),
                };
                self.amend_last(&url, Outcome::Failed, Some(&err));
                return failed(err.code());
            }
        };
        match self.hop(&url, &location) {
            Ok(target) => {
                let origin = Origin::Redirect {
                    from: url.to_string(),
                    reason: "http_redirect_outside_domain",
                };
                self.follow_pox(target, origin).await
            }
            Err(err) => {
                self.record_refusal(Step::HttpRedirect, &location, &err);
                failed(err.code())
            }
        }
    }
}
