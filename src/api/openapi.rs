//! The OpenAPI 3.1 document of the daemon's JSON API, generated (utoipa) from the handlers'
//! request and answer types (`answers.rs`, the request shapes beside their handlers), served
//! at `GET /openapi.json` and kept in `docs/openapi.json` (a test says when that copy is
//! stale). The hosted sign-in page's HTML is not part of it.
//!
//! The operations below are descriptions only (utoipa reads their attributes); the handlers
//! are beside their routes, and answer with these same types.
#![allow(dead_code)]

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::answers::{
    AccountAnswer, CodeAnswer, ErrorAnswer, JobsAccepted, ManagedAccount, OAuthErrorAnswer,
    Success, SyncCheckAnswer, TokenAnswer, TokenInfoAnswer,
};
use super::authorize::AuthorizeBody;
use super::state::AppState;
use super::token::TokenRequest;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "exdisco",
        description = "Native authentication for Exchange mailboxes: discovery of the server, \
            verification of the credentials, codes redeemed for access tokens by the \
            application with its secret; the platform's account management; the discovery \
            queue.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        connect_authorize,
        connect_token,
        oauth_token,
        oauth_revoke,
        account,
        accounts_list,
        accounts_show,
        accounts_delete,
        accounts_revoke_all,
        accounts_token_info,
        discoveries_enqueue,
        discoveries_status,
        healthz,
        readyz,
    ),
    components(schemas(
        AuthorizeBody,
        TokenRequest,
        CodeAnswer,
        TokenAnswer,
        AccountAnswer,
        SyncCheckAnswer,
        ManagedAccount,
        TokenInfoAnswer,
        Success,
        JobsAccepted,
        ErrorAnswer,
        OAuthErrorAnswer
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_text(),
    )
        .into_response()
}

/// The document as JSON, as `docs/openapi.json` holds it.
pub fn document_text() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes")
}

/// Authorize a mailbox: discover its server (or take `settings.exchange_server_host`), check
/// the credentials there, and return a one-time code that carries what was verified. Nothing
/// is stored until the code is redeemed with the client secret.
#[utoipa::path(post, path = "/connect/authorize", request_body = AuthorizeBody,
    responses(
        (status = 200, description = "The code", body = CodeAnswer),
        (status = 400, description = "A field is missing, malformed or unknown", body = ErrorAnswer),
        (status = 401, description = "Unknown client, or the mail server refused the credentials", body = ErrorAnswer),
        (status = 404, description = "`reauth_account_id` names no account of this client", body = ErrorAnswer),
        (status = 409, description = "A scope or settings change without `reauth_account_id`, or consent to a host outside the domain is needed", body = ErrorAnswer),
        (status = 413, description = "The body is too large", body = ErrorAnswer),
        (status = 422, description = "Not an Exchange mailbox this way: Exchange Online (use office365), IMAP only, not found", body = ErrorAnswer),
        (status = 429, description = "A rate limit; see Retry-After", body = ErrorAnswer),
        (status = 502, description = "The mail server could not be reached", body = ErrorAnswer),
    ))]
fn connect_authorize() {}

/// Redeem a code with the client secret: creates or replaces the account and returns an
/// access token.
#[utoipa::path(post, path = "/connect/token", request_body = TokenRequest,
    responses(
        (status = 200, description = "The access token", body = TokenAnswer),
        (status = 400, description = "Malformed, or an unknown, used, expired or unbound code (`invalid_grant`)", body = ErrorAnswer),
        (status = 401, description = "Unknown client or wrong secret", body = ErrorAnswer),
        (status = 409, description = "The account may not be replaced this way", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn connect_token() {}

/// RFC 6749 4.1.3: redeem a code (form-encoded; the platform SDK's GET with a query too).
#[utoipa::path(post, path = "/oauth/token",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "`grant_type=authorization_code`, `code`, `redirect_uri`, `code_verifier`; the client by HTTP Basic or `client_id`/`client_secret`"),
    responses(
        (status = 200, description = "The access token", body = TokenAnswer),
        (status = 400, description = "RFC 6749 5.2", body = OAuthErrorAnswer),
        (status = 401, description = "`invalid_client`", body = OAuthErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn oauth_token() {}

/// Revoke an access token: the token itself (Bearer), or RFC 7009 by its client.
#[utoipa::path(post, path = "/oauth/revoke",
    request_body(content_type = "application/x-www-form-urlencoded", content = Object,
        description = "RFC 7009: `token`, with the client by HTTP Basic or `client_id`/`client_secret`; or empty, with `Authorization: Bearer` the token to end"),
    responses(
        (status = 200, description = "Revoked", body = Object),
        (status = 400, description = "Not a revocation form", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn oauth_revoke() {}

/// The account an access token opens (`Authorization: Bearer`, or the token as the Basic
/// user name).
#[utoipa::path(get, path = "/account",
    responses(
        (status = 200, description = "The account", body = AccountAnswer),
        (status = 401, description = "No token, or an unknown, ended or revoked one", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn account() {}

/// The client's accounts (the client secret as the Basic user name).
#[utoipa::path(get, path = "/a/{client_id}/accounts",
    params(
        ("client_id" = String, Path, description = "The client"),
        ("offset" = Option<u64>, Query, description = "Accounts to skip"),
        ("limit" = Option<u64>, Query, description = "Accounts at most (1 to 1000; 100)"),
    ),
    responses(
        (status = 200, description = "Its accounts, oldest first", body = Vec<ManagedAccount>),
        (status = 400, description = "`offset` or `limit` is not a whole number", body = ErrorAnswer),
        (status = 401, description = "No client secret, or another client's", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn accounts_list() {}

/// One of the client's accounts.
#[utoipa::path(get, path = "/a/{client_id}/accounts/{id}",
    params(("client_id" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "The account", body = ManagedAccount),
        (status = 401, description = "No client secret, or another client's", body = ErrorAnswer),
        (status = 404, description = "No such account of this client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn accounts_show() {}

/// Delete one of the client's accounts, its sealed secret, tokens and pending codes.
#[utoipa::path(delete, path = "/a/{client_id}/accounts/{id}",
    params(("client_id" = String, Path), ("id" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = Success),
        (status = 401, description = "No client secret, or another client's", body = ErrorAnswer),
        (status = 404, description = "No such account of this client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn accounts_delete() {}

/// Revoke every token of an account but `keep_access_token`.
#[utoipa::path(post, path = "/a/{client_id}/accounts/{id}/revoke-all",
    params(("client_id" = String, Path), ("id" = String, Path)),
    request_body(content = Object, description = "`keep_access_token` (optional)"),
    responses(
        (status = 200, description = "Revoked", body = Success),
        (status = 400, description = "Not the JSON or form this endpoint takes", body = ErrorAnswer),
        (status = 401, description = "No client secret, or another client's", body = ErrorAnswer),
        (status = 404, description = "No such account of this client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn accounts_revoke_all() {}

/// What an access token of an account is.
#[utoipa::path(post, path = "/a/{client_id}/accounts/{id}/token-info",
    params(("client_id" = String, Path), ("id" = String, Path)),
    request_body(content = Object, description = "`access_token`"),
    responses(
        (status = 200, description = "The token", body = TokenInfoAnswer),
        (status = 400, description = "Not the JSON or form this endpoint takes", body = ErrorAnswer),
        (status = 401, description = "No client secret, another client's, or not this account's token", body = ErrorAnswer),
        (status = 404, description = "No such account of this client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn accounts_token_info() {}

/// Queue discoveries (one job object, or a list of up to 1,000) for the client's workers.
#[utoipa::path(post, path = "/v1/discoveries",
    request_body(content = Object, description = "`{\"email\": ...}` or `{\"domain\": ...}`, or a list of them"),
    responses(
        (status = 202, description = "Queued", body = JobsAccepted),
        (status = 400, description = "Not a job or a list of jobs", body = ErrorAnswer),
        (status = 401, description = "No confidential client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
        (status = 503, description = "The queue is full", body = ErrorAnswer),
    ))]
fn discoveries_enqueue() {}

/// A queued job of the client: its state and, once done, the report.
#[utoipa::path(get, path = "/v1/discoveries/{id}",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The job", body = Object),
        (status = 401, description = "No confidential client", body = ErrorAnswer),
        (status = 404, description = "No such job of this client", body = ErrorAnswer),
        (status = 429, description = "A rate limit", body = ErrorAnswer),
    ))]
fn discoveries_status() {}

/// The process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
fn healthz() {}

/// The database takes a write now.
#[utoipa::path(get, path = "/readyz",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "the database is unavailable", body = String, content_type = "text/plain"),
    ))]
fn readyz() {}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is the document the code generates (set `EXDISCO_WRITE_OPENAPI=1`
    /// to rewrite it).
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let generated = super::document_text() + "\n";
        if std::env::var_os("EXDISCO_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is stale: run EXDISCO_WRITE_OPENAPI=1 cargo test -q --lib openapi"
        );
        let value: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(value["openapi"], "3.1.0");
        assert!(value["paths"]["/connect/authorize"]["post"].is_object());
    }
}
