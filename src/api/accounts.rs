//! The platform's account management API, as its SDK calls it (npm `nylas` 6.x,
//! `lib/models/management-account.js`): `GET /a/{client_id}/accounts` (`offset`, `limit`),
//! `GET` and `DELETE /a/{client_id}/accounts/{id}`, `POST …/{id}/revoke-all`
//! (`keep_access_token`), `POST …/{id}/token-info` (`access_token`). The application proves
//! itself with its secret as the HTTP Basic user name (as the SDK sends it) or as
//! `client_id:client_secret`; a client sees only its own accounts. `upgrade` and `downgrade`
//! change a billing state exdisco does not have, and say so.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::answers::{ManagedAccount, Success, TokenInfoAnswer};
use super::auth::basic_client;
use super::body::form_or_json;
use super::error::ApiError;
use super::no_store;
use super::state::{AppState, Limited, ResourceCalls};
use crate::account::{AccountId, ClientId};
use crate::connect::{self, Field};

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/a/{client_id}/accounts", get(list))
        .route("/a/{client_id}/accounts/{id}", get(show).delete(delete))
        .route("/a/{client_id}/accounts/{id}/revoke-all", post(revoke_all))
        .route("/a/{client_id}/accounts/{id}/token-info", post(token_info))
        .route("/a/{client_id}/accounts/{id}/upgrade", post(billing))
        .route("/a/{client_id}/accounts/{id}/downgrade", post(billing))
}

/// The client of the path, if the request proves it with that client's secret.
async fn client(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<ClientId, ApiError> {
    let (user, password) = basic_client(headers).ok_or(ApiError::MissingClient)?;
    let secret = if password.expose_secret().is_empty() {
        // The SDK: the secret as the user name.
        SecretString::from(user)
    } else if user == client_id {
        password
    } else {
        return Err(connect::Error::BadClient.into());
    };
    Ok(state
        .connect
        .authenticate_confidential_client(client_id, &secret)
        .await?)
}

/// A JSON body, whatever its content type (the SDK sends JSON as `text/plain`), or a form.
fn read_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .ok()
        .or_else(|| form_or_json(headers, body))
        .ok_or_else(|| {
            connect::Error::invalid(
                Field::Body,
                "not the JSON or form this endpoint takes".into(),
            )
            .into()
        })
}

/// One account of the client the request proves itself as: `/a/{client_id}/accounts/{id}`.
struct Managed {
    client: ClientId,
    account: AccountId,
}

impl axum::extract::FromRequestParts<AppState> for Managed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let Path((client_id, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let client = client(state, &parts.headers, &client_id).await?;
        Ok(Self {
            client,
            account: AccountId::from(id),
        })
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_limit")]
    limit: u64,
}

fn default_limit() -> u64 {
    100
}

async fn list(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let client = client(&state, &headers, &client_id).await?;
    let Query(page) = page.map_err(|_| {
        connect::Error::invalid(Field::Paging, "offset and limit are whole numbers".into())
    })?;
    let accounts = state
        .connect
        .accounts(&client, page.offset, page.limit)
        .await?;
    let shown: Vec<ManagedAccount> = accounts.iter().map(ManagedAccount::from).collect();
    Ok(no_store(shown))
}

async fn show(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    headers: HeaderMap,
    Path((client_id, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let client = client(&state, &headers, &client_id).await?;
    let account = state
        .connect
        .account_of(&client, &AccountId::from(id))
        .await?;
    Ok(no_store(ManagedAccount::from(&account)))
}

async fn delete(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    managed: Managed,
) -> Result<impl IntoResponse, ApiError> {
    state
        .connect
        .delete_account(&managed.client, &managed.account)
        .await?;
    Ok(no_store(Success {
        success: true,
        revoked: None,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct RevokeAll {
    #[serde(default)]
    keep_access_token: Option<String>,
}

async fn revoke_all(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    managed: Managed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let form: RevokeAll = if body.is_empty() {
        RevokeAll::default()
    } else {
        read_body(&headers, &body)?
    };
    let revoked = state
        .connect
        .revoke_all(
            &managed.client,
            &managed.account,
            form.keep_access_token.as_deref(),
        )
        .await?;
    Ok(no_store(Success {
        success: true,
        revoked: Some(revoked),
    }))
}

#[derive(Debug, Deserialize)]
struct TokenInfoBody {
    access_token: SecretString,
}

async fn token_info(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    managed: Managed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let form: TokenInfoBody = read_body(&headers, &body)?;
    let (account, info) = state
        .connect
        .token_info(
            &managed.client,
            &managed.account,
            form.access_token.expose_secret(),
        )
        .await?;
    Ok(no_store(TokenInfoAnswer {
        scopes: account.scopes.as_str().to_owned(),
        state: if info.valid { "valid" } else { "invalid" }.to_owned(),
        created_at: info.created_at,
        updated_at: info.created_at,
    }))
}

async fn billing(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    managed: Managed,
) -> Result<impl IntoResponse, ApiError> {
    state
        .connect
        .account_of(&managed.client, &managed.account)
        .await?;
    Err::<(), _>(ApiError::Connect(connect::Error::invalid(
        Field::Billing,
        "exdisco has no billing states: upgrade and downgrade change nothing here".into(),
    )))
}
