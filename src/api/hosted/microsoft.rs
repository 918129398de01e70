//! "Sign in with Microsoft" for mailboxes on Exchange Online: the Microsoft identity platform
//! authorization-code flow with PKCE.
//!
//! `POST /oauth/microsoft` (CSRF-checked) seals what the page knows (the application's OAuth
//! parameters, the address, a PKCE verifier, a binding to this browser's CSRF cookie, an
//! expiry) into Microsoft's `state` and sends the browser to the authorization endpoint.
//! `GET /oauth/microsoft/callback` opens that state, checks the binding, redeems the code at
//! the token endpoint and sends the browser back to the application with a one-time code.

use std::net::SocketAddr;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::super::state::AppState;
use super::csrf::Csrf;
use super::flow::{Flow, FlowQuery, Posted};
use super::page;
use super::sign_in::{PostedForm, check_posted, internal, rejected, see_other, stop};
use crate::connect::{Error as FlowError, MicrosoftCode};

/// How long a Microsoft sign-in may take, in seconds.
const PENDING_TTL: i64 = 600;
/// What the sealed state is bound to.
const PURPOSE: &str = "microsoft-state";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/microsoft", post(start))
        .route("/oauth/microsoft/callback", get(callback))
}

#[derive(Debug, Default, Deserialize)]
struct StartForm {
    #[serde(flatten)]
    posted: Posted,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

impl PostedForm for StartForm {
    fn posted(&self) -> &Posted {
        &self.posted
    }
}

/// What travels, sealed, through Microsoft's `state`.
#[derive(Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    scopes: String,
    state: Option<String>,
    reauth_account_id: Option<String>,
    name: String,
    email: String,
    verifier: String,
    binding: String,
    #[serde(default)]
    code_challenge: Option<String>,
    expires_at: i64,
}

impl Pending {
    fn flow_query(&self) -> FlowQuery {
        FlowQuery {
            client_id: Some(self.client_id.clone()),
            redirect_uri: Some(self.redirect_uri.clone()),
            response_type: None,
            scopes: Some(self.scopes.clone()),
            state: self.state.clone(),
            login_hint: None,
            reauth_account_id: self.reauth_account_id.clone(),
            code_challenge: self.code_challenge.clone(),
            code_challenge_method: self.code_challenge.as_ref().map(|_| "S256".to_owned()),
        }
    }
}

async fn start(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<StartForm>, FormRejection>,
) -> Response {
    let (form, csrf, flow) = match check_posted(&state, &headers, form).await {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    let key = state.connect.key();
    let Some((app, authorize_url)) = &state.hosted.microsoft else {
        return stop(
            &state,
            StatusCode::NOT_FOUND,
            "Microsoft sign-in is not set up here.",
        );
    };
    if state
        .limiters
        .check_sign_in(&flow.client_id, &form.email, peer.ip())
        .await
        .is_err()
    {
        return stop(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a minute, then try again.",
        );
    }
    let Ok(verifier) = crate::secrets::random_token("") else {
        return internal(&state);
    };
    let verifier = verifier.expose_secret().to_owned();
    let pending = Pending {
        client_id: flow.client_id.clone(),
        redirect_uri: flow.redirect_uri.clone(),
        scopes: flow.scopes.clone(),
        state: flow.state.clone(),
        reauth_account_id: flow.reauth_account_id.clone(),
        name: form.name.trim().to_owned(),
        email: form.email.trim().to_owned(),
        binding: csrf.binding(key),
        verifier: verifier.clone(),
        code_challenge: flow.code_challenge.clone(),
        expires_at: state.connect.now() + PENDING_TTL,
    };
    let sealed = serde_json::to_string(&pending)
        .ok()
        .and_then(|plain| key.seal_text(&plain, PURPOSE).ok());
    let Some(sealed) = sealed else {
        return internal(&state);
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = authorize_url.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &state.hosted.microsoft_callback())
        .append_pair("response_mode", "query")
        .append_pair("scope", &app.scope)
        .append_pair("state", &sealed)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", pending.email.as_str());
    see_other(url.as_str())
}

#[derive(Debug, Default, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let invalid = |state: &AppState| {
        stop(
            state,
            StatusCode::BAD_REQUEST,
            "This Microsoft sign-in is invalid or has expired. Go back to the application and start again.",
        )
    };
    let Ok(Query(query)) = query else {
        return invalid(&state);
    };
    let key = state.connect.key();
    let pending = query
        .state
        .as_deref()
        .and_then(|sealed| key.open_text(sealed, PURPOSE).ok())
        .and_then(|plain| serde_json::from_str::<Pending>(plain.expose_secret()).ok())
        .filter(|p| p.expires_at >= state.connect.now());
    let Some(pending) = pending else {
        return invalid(&state);
    };
    let bound =
        Csrf::from_headers(&headers).is_some_and(|c| c.verify_binding(key, &pending.binding));
    if !bound {
        warn!("microsoft callback refused: started in another browser");
        return stop(
            &state,
            StatusCode::FORBIDDEN,
            "This Microsoft sign-in was started in another browser. Go back to the application and start again.",
        );
    }
    let flow = match Flow::check(&state.connect, &pending.flow_query(), false).await {
        Ok(flow) => flow,
        Err(reject) => return rejected(&state, reject),
    };
    let Some((app, _)) = &state.hosted.microsoft else {
        return stop(
            &state,
            StatusCode::NOT_FOUND,
            "Microsoft sign-in is not set up here.",
        );
    };
    let code = match (query.code, query.error) {
        (Some(code), None) if !code.expose_secret().is_empty() => code,
        (_, error) => {
            info!(
                error = error.as_deref().unwrap_or(""),
                "microsoft sign-in declined"
            );
            return see_other(
                &flow.error_redirect("access_denied", "Microsoft sign-in was not completed"),
            );
        }
    };
    let email = pending.email.clone();
    let intent = match flow.intent(&pending.name, &pending.email) {
        Ok(intent) => intent,
        Err(_) => return invalid(&state),
    };
    let grant = MicrosoftCode {
        intent,
        microsoft_client_id: app.client_id.clone(),
        microsoft_client_secret: app.client_secret.clone(),
        microsoft_scope: app.scope.clone(),
        code,
        code_verifier: SecretString::from(pending.verifier),
        redirect_uri: state.hosted.microsoft_callback(),
    };
    let result = state.connect.authorize_microsoft_code(grant).await;
    match result {
        Ok(code) => see_other(&flow.redirect_with(&[("code", code.expose_secret())])),
        Err(FlowError::CredentialsRefused) => stop(
            &state,
            StatusCode::UNAUTHORIZED,
            "Microsoft did not accept this sign-in. Go back to the application and try again.",
        ),
        Err(FlowError::MicrosoftAccountMismatch { signed_in_as }) => {
            let message = format!(
                "You signed in to Microsoft as {signed_in_as}, but this mailbox is {}. Start again and sign in to Microsoft with the mailbox's account.",
                email
            );
            page::respond(
                StatusCode::CONFLICT,
                page::error(
                    &state.hosted,
                    "Another Microsoft account",
                    &message,
                    Some(("Start again", flow.restart_path())),
                ),
                None,
                None,
            )
        }
        Err(FlowError::Upstream(code)) => {
            warn!(code, "microsoft token endpoint failed");
            stop(
                &state,
                StatusCode::BAD_GATEWAY,
                "Microsoft could not be reached. Try again in a few minutes.",
            )
        }
        Err(other) => {
            warn!(code = other.code(), "microsoft sign-in failed");
            stop(
                &state,
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed. Go back to the application and start again.",
            )
        }
    }
}
