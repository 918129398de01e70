//! The OAuth parameters of a sign-in: checked on every request of the flow, since they come
//! back from the browser in hidden fields. The client must exist and the `redirect_uri` must be
//! one it registered, character for character; until both hold, nothing redirects anywhere.

use serde::Deserialize;
use url::Url;

use crate::connect::{self, Connect};
use crate::store::CodeBinding;

/// Longest `state` passed through.
const MAX_STATE: usize = 2048;
/// Longest value of any other parameter.
const MAX_PARAMETER: usize = 2048;

/// The parameters as the browser sent them.
#[derive(Debug, Default, Deserialize)]
pub struct FlowQuery {
    /// The application.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Where to send the browser back.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Must be `code` (only on the first request).
    #[serde(default)]
    pub response_type: Option<String>,
    /// Comma-separated scopes.
    #[serde(default, alias = "scope")]
    pub scopes: Option<String>,
    /// The application's value, passed back untouched.
    #[serde(default)]
    pub state: Option<String>,
    /// Pre-fills the address.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// The account being authorized again.
    #[serde(default)]
    pub reauth_account_id: Option<String>,
    /// The PKCE challenge (RFC 7636 4.3).
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// Its method: only `S256`.
    #[serde(default)]
    pub code_challenge_method: Option<String>,
}

/// What every form of the page posts back besides its own fields: the CSRF token and the OAuth
/// parameters, which are checked again on each post.
#[derive(Debug, Default, Deserialize)]
pub struct Posted {
    /// The CSRF token.
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    scopes: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    reauth_account_id: Option<String>,
    #[serde(default)]
    code_challenge: Option<String>,
    #[serde(default)]
    code_challenge_method: Option<String>,
}

impl Posted {
    /// The parameters, as a query to check.
    pub fn query(&self) -> FlowQuery {
        FlowQuery {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            response_type: None,
            scopes: self.scopes.clone(),
            state: self.state.clone(),
            login_hint: None,
            reauth_account_id: self.reauth_account_id.clone(),
            code_challenge: self.code_challenge.clone(),
            code_challenge_method: self.code_challenge_method.clone(),
        }
    }
}

/// Checked parameters.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The application's id.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// The registered redirect URI, exactly as registered.
    pub redirect_uri: String,
    /// The scopes, normalised.
    pub scopes: String,
    /// The application's state.
    pub state: Option<String>,
    /// The account being authorized again.
    pub reauth_account_id: Option<String>,
    /// The PKCE S256 challenge the code will be bound to.
    pub code_challenge: Option<String>,
}

/// Why the parameters were refused.
#[derive(Debug)]
pub enum Reject {
    /// Show an error page: there is no trusted place to send the browser.
    Page(&'static str),
    /// Send the browser back to the application with an OAuth error.
    Redirect(String),
    /// The store failed.
    Internal,
}

impl Flow {
    /// Checks `query`; `first` is the request that starts the flow (it must ask for a code).
    pub async fn check(connect: &Connect, query: &FlowQuery, first: bool) -> Result<Self, Reject> {
        let client_id = query
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= MAX_PARAMETER)
            .ok_or(Reject::Page(
                "The link that brought you here has no application (client_id).",
            ))?;
        let client = connect
            .find_client(&client_id.into())
            .await
            .map_err(|_| Reject::Internal)?
            .ok_or(Reject::Page(
                "The application that sent you here is not registered.",
            ))?;
        let redirect_uri = query.redirect_uri.as_deref().unwrap_or_default();
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(Reject::Page(
                "The application sent you here with a return address (redirect_uri) it has not registered, so you will not be sent anywhere.",
            ));
        }
        let state = match &query.state {
            Some(state) if state.len() > MAX_STATE => {
                return Err(Reject::Page("The state parameter is too long."));
            }
            Some(state) => Some(state.clone()),
            None => None,
        };
        let mut flow = Self {
            client_id: client.client_id,
            client_name: client.name,
            redirect_uri: redirect_uri.to_owned(),
            scopes: String::new(),
            state,
            reauth_account_id: query
                .reauth_account_id
                .clone()
                .filter(|r| !r.is_empty() && r.len() <= MAX_PARAMETER),
            code_challenge: None,
        };
        if first && query.response_type.as_deref() != Some("code") {
            return Err(Reject::Redirect(flow.error_redirect(
                "unsupported_response_type",
                "response_type must be code",
            )));
        }
        // PKCE (RFC 7636): S256 only; a public client (no secret) must use it.
        let challenge = query.code_challenge.as_deref().filter(|c| !c.is_empty());
        match (challenge, query.code_challenge_method.as_deref()) {
            (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => {
                flow.code_challenge = Some(challenge.to_owned());
            }
            (Some(_), _) => {
                return Err(Reject::Redirect(flow.error_redirect(
                    "invalid_request",
                    "code_challenge must be an S256 challenge, with code_challenge_method=S256",
                )));
            }
            (None, _) if client.secret_hash.is_empty() => {
                return Err(Reject::Redirect(flow.error_redirect(
                    "invalid_request",
                    "a public client must send a PKCE code_challenge (S256)",
                )));
            }
            (None, _) => {}
        }
        match connect::Scopes::parse(query.scopes.as_deref().unwrap_or_default()) {
            Ok(scopes) => flow.scopes = scopes.as_str().to_owned(),
            Err(_) => {
                return Err(Reject::Redirect(flow.error_redirect(
                    "invalid_scope",
                    "scopes must be a comma-separated list of known scopes",
                )));
            }
        }
        Ok(flow)
    }

    /// The authorization this flow asks for, for `name` at `email` (through the browser).
    pub fn intent(&self, name: &str, email: &str) -> Result<connect::Intent, connect::Error> {
        let address = crate::domain::EmailAddress::parse(email)
            .map_err(|e| connect::Error::invalid(connect::Field::EmailAddress, e.to_string()))?;
        Ok(connect::Intent {
            client_id: self.client_id.as_str().into(),
            name: name.trim().to_owned(),
            address,
            scopes: connect::Scopes::parse(&self.scopes)?,
            reauth: self
                .reauth_account_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .map(Into::into),
            through_browser: true,
            binding: self.binding(),
        })
    }

    /// What the code must be redeemed with: this redirect URI and the PKCE challenge.
    pub fn binding(&self) -> CodeBinding {
        CodeBinding {
            redirect_uri: self.redirect_uri.clone(),
            code_challenge: self.code_challenge.clone().unwrap_or_default(),
        }
    }

    /// The redirect URI with `pairs` and the state added to its query.
    pub fn redirect_with(&self, pairs: &[(&str, &str)]) -> String {
        // A registered URI always parses: clients are checked when they are added.
        let Ok(mut url) = Url::parse(&self.redirect_uri) else {
            return self.redirect_uri.clone();
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
        }
        url.to_string()
    }

    /// The redirect URI with an OAuth error.
    pub fn error_redirect(&self, error: &str, description: &str) -> String {
        self.redirect_with(&[("error", error), ("error_description", description)])
    }

    /// The source a Content-Security-Policy must allow for a form that may end there.
    pub fn redirect_source(&self) -> String {
        csp_source(&self.redirect_uri)
    }

    /// The address of the page that starts this flow again.
    pub fn restart_path(&self) -> String {
        let mut url = Url::parse("http://restart.invalid/oauth/authorize").expect("a fixed url");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scopes", &self.scopes);
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
            if let Some(reauth) = &self.reauth_account_id {
                query.append_pair("reauth_account_id", reauth);
            }
            if let Some(challenge) = &self.code_challenge {
                query
                    .append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", "S256");
            }
        }
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    }
}

/// Whether `challenge` is a base64url SHA-256 (43 characters, RFC 7636 4.2).
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A CSP source expression for `url`'s origin (`https://app.example:8443`), or its scheme when
/// it has no origin (`com.example.app:`).
pub fn csp_source(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => match url.origin() {
            origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
            url::Origin::Opaque(_) => format!("{}:", url.scheme()),
        },
        Err(_) => "'none'".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_sources_are_origins() {
        assert_eq!(
            csp_source("https://app.example.com/cb?x=1"),
            "https://app.example.com"
        );
        assert_eq!(
            csp_source("http://127.0.0.1:8123/callback"),
            "http://127.0.0.1:8123"
        );
        assert_eq!(csp_source("com.example.app:/oauth"), "com.example.app:");
    }

    #[test]
    fn redirects_keep_the_registered_query_and_pass_state_untouched() {
        let flow = Flow {
            client_id: "cli".into(),
            client_name: "App".into(),
            redirect_uri: "https://app.example.com/cb?tenant=7".into(),
            scopes: "email".into(),
            state: Some("a b&c=d/é".into()),
            reauth_account_id: None,
            code_challenge: None,
        };
        let url = Url::parse(&flow.redirect_with(&[("code", "exd_code_x")])).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("tenant".to_owned(), "7".to_owned()),
                ("code".to_owned(), "exd_code_x".to_owned()),
                ("state".to_owned(), "a b&c=d/é".to_owned()),
            ]
        );
        assert!(
            flow.restart_path()
                .starts_with("/oauth/authorize?client_id=cli")
        );
    }
}
