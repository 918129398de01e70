//! `POST /connect/authorize`: the source's rate limit, the client check, the body parsed into
//! the flow's typed [`Authorization`], the client's and the account's limits (rule 25), then
//! the flow; answers `{"code": ...}`. The JSON shapes are the API's: the flow never sees them.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::answers::CodeAnswer;
use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::{AppState, AuthorizeCalls, Limited};
use crate::connect::{
    self, Authorization, ExchangeLogin, Field, Intent, Login, RefreshGrant, Scopes,
    redact_serde_message,
};
use crate::domain::EmailAddress;
use crate::store::CodeBinding;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/authorize", post(authorize))
}

#[tracing::instrument(skip_all, fields(client_id = %body.client_id))]
async fn authorize(
    State(state): State<AppState>,
    Limited { source, .. }: Limited<AuthorizeCalls>,
    ApiJson(body): ApiJson<AuthorizeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let limits = &state.limiters;
    state.connect.check_client(&body.client_id).await?;
    // A malformed address is refused by the parse below, before any traffic, without a charge.
    if let Ok(address) = EmailAddress::parse(&body.email_address) {
        limits
            .check_account(&body.client_id, &address, source)
            .await
            .map_err(ApiError::RateLimited)?;
    }
    let mut command = body.command();
    if let Ok(command) = &mut command {
        command.source = Some(source);
    }
    let code = match command {
        Ok(command) => state.connect.authorize(command).await?,
        Err(err) => return Err(state.connect.refused(err).into()),
    };
    Ok(no_store(CodeAnswer {
        code: code.expose_secret().to_owned(),
    }))
}

/// The body of `POST /connect/authorize`, as the platform's SDK sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "client_id": "cli_4f0c9d2a71b85e3c9a1d6b07", "name": "Alice Example",
    "email_address": "alice@example.test", "provider": "exchange",
    "settings": {"username": "alice@example.test", "password": "correct horse"},
    "scopes": "email.read_only,calendar.read_only"
}))]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    /// The client.
    pub client_id: String,
    /// The account holder's name.
    #[serde(default)]
    pub name: String,
    /// The mailbox address.
    pub email_address: String,
    /// `exchange` or `office365`.
    pub provider: String,
    /// Provider-specific settings: for `exchange` `username`, `password` and optionally
    /// `exchange_server_host` (or `eas_server_host`) and `consented_autodiscover_host`; for
    /// `office365` `microsoft_client_id`, `microsoft_client_secret`,
    /// `microsoft_refresh_token`, `redirect_uri`.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Scopes: comma-separated, or a list (as the platform's SDK sends them).
    #[serde(deserialize_with = "scopes_text")]
    #[schema(value_type = String)]
    pub scopes: String,
    /// The account being authorized again (required to change scopes).
    #[serde(default)]
    pub reauth_account_id: Option<String>,
}

impl AuthorizeBody {
    /// The typed authorization; a field it cannot take is `invalid_request` naming the field,
    /// never its value.
    pub fn command(self) -> Result<Authorization, connect::Error> {
        let address = EmailAddress::parse(&self.email_address)
            .map_err(|e| connect::Error::invalid(Field::EmailAddress, e.to_string()))?;
        let scopes = Scopes::parse(&self.scopes)?;
        let login = match self.provider.as_str() {
            "exchange" => Login::Exchange(exchange_login(self.settings)?),
            "office365" => Login::Office365(refresh_grant(self.settings)?),
            _ => {
                return Err(connect::Error::invalid(
                    Field::Provider,
                    "unknown provider; use exchange or office365".into(),
                ));
            }
        };
        Ok(Authorization {
            intent: Intent {
                client_id: self.client_id.into(),
                name: self.name,
                address,
                scopes,
                reauth: self
                    .reauth_account_id
                    .filter(|id| !id.is_empty())
                    .map(Into::into),
                through_browser: false,
                binding: CodeBinding::default(),
            },
            login,
            source: None,
        })
    }
}

/// Scopes as text, from a string or a list of strings.
fn scopes_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Scopes::deserialize(deserializer)? {
        Scopes::Text(text) => text,
        Scopes::List(list) => list.join(","),
    })
}

/// `settings` of provider `exchange`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSettings {
    username: String,
    password: SecretString,
    #[serde(default)]
    exchange_server_host: Option<String>,
    /// The platform's older name for `exchange_server_host`.
    #[serde(default)]
    eas_server_host: Option<String>,
    /// A host outside the domain that the user allowed to receive the password in this
    /// authorization (the answer to a `consent_required` error).
    #[serde(default)]
    consented_autodiscover_host: Option<String>,
}

/// `settings` of provider `office365`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Office365Settings {
    microsoft_client_id: String,
    microsoft_client_secret: SecretString,
    microsoft_refresh_token: SecretString,
    redirect_uri: String,
}

fn settings<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, connect::Error> {
    serde_json::from_value(value)
        .map_err(|e| connect::Error::invalid(Field::Settings, redact_serde_message(&e.to_string())))
}

fn exchange_login(value: serde_json::Value) -> Result<ExchangeLogin, connect::Error> {
    let settings: ExchangeSettings = settings(value)?;
    if settings.username.trim().is_empty() || settings.password.expose_secret().is_empty() {
        return Err(connect::Error::invalid(
            Field::Settings,
            "username and password are required".into(),
        ));
    }
    Ok(ExchangeLogin {
        username: settings.username,
        password: settings.password,
        host: settings.exchange_server_host.or(settings.eas_server_host),
        consented_host: settings.consented_autodiscover_host,
    })
}

fn refresh_grant(value: serde_json::Value) -> Result<RefreshGrant, connect::Error> {
    let settings: Office365Settings = settings(value)?;
    let redirect_uri = url::Url::parse(&settings.redirect_uri).map_err(|_| {
        connect::Error::invalid(Field::SettingsRedirectUri, "not a valid url".into())
    })?;
    Ok(RefreshGrant {
        microsoft_client_id: settings.microsoft_client_id,
        microsoft_client_secret: settings.microsoft_client_secret,
        refresh_token: settings.microsoft_refresh_token,
        redirect_uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        let err =
            serde_json::from_str::<ExchangeSettings>(r#"{"username":"a","password":123456789}"#)
                .err()
                .unwrap();
        let message = redact_serde_message(&err.to_string());
        assert!(!message.contains("123456789"), "{message}");
        assert!(message.contains("expected"), "{message}");
        let err = serde_json::from_str::<ExchangeSettings>(r#"{"MARKER-x":1}"#)
            .err()
            .unwrap();
        let message = redact_serde_message(&err.to_string());
        assert!(!message.contains("MARKER"), "{message}");
        assert!(message.starts_with("unknown field, expected"), "{message}");
    }

    #[test]
    fn each_provider_carries_its_own_fields() {
        let body: AuthorizeBody = serde_json::from_value(serde_json::json!({
            "client_id": "cli_x", "email_address": "alice@example.test", "provider": "exchange",
            "settings": {"username": "alice", "password": "pw", "eas_server_host": "mail.example.test"},
            "scopes": ["email.read_only", "calendar"]
        }))
        .unwrap();
        let command = body.command().unwrap();
        assert_eq!(command.intent.scopes.as_str(), "calendar,email.read_only");
        match command.login {
            Login::Exchange(login) => assert_eq!(login.host.as_deref(), Some("mail.example.test")),
            Login::Office365(_) => panic!("exchange"),
        }
        let body: AuthorizeBody = serde_json::from_value(serde_json::json!({
            "client_id": "cli_x", "email_address": "alice@example.test", "provider": "office365",
            "settings": {"username": "alice", "password": "pw"}, "scopes": "email"
        }))
        .unwrap();
        assert_eq!(body.command().unwrap_err().code(), "invalid_request");
    }
}
