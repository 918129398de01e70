//! The embedded queue over HTTP, for registered clients only (`Authorization: Basic
//! client_id:client_secret`): `POST /v1/discoveries` (one job or a list) answers the job ids;
//! `GET /v1/discoveries/{id}` answers the state and, once done, the report, to the client that
//! queued the job only (anyone else gets 404). Intake is rate-limited per client and the queue
//! is bounded (`503` when full); finished jobs are deleted after `store.job_retention`. Workers
//! inside `serve` drain the queue.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;

use super::answers::JobsAccepted;
use super::auth::basic_client;
use super::error::{ApiError, ApiJson};
use super::state::{AppState, Limited, ResourceCalls, TokenCalls};
use crate::batch::parse_line;
use crate::connect::{self, ClientId, JobId};
use crate::store::Intake;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/discoveries", post(enqueue))
        .route("/v1/discoveries/{id}", get(status))
}

/// The client the request authenticates as: the queue is for clients that keep a secret.
async fn client(state: &AppState, headers: &HeaderMap) -> Result<ClientId, ApiError> {
    let (client_id, secret) = basic_client(headers).ok_or(ApiError::MissingClient)?;
    Ok(state
        .connect
        .authenticate_confidential_client(&client_id, &secret)
        .await?)
}

async fn enqueue(
    State(state): State<AppState>,
    _: Limited<TokenCalls>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let client = client(&state, &headers).await?;
    let items = match body {
        Value::Array(items) => items,
        item @ Value::Object(_) => vec![item],
        _ => return Err(invalid("a job object or a list of job objects")),
    };
    if items.is_empty() || items.len() > MAX_JOBS_PER_REQUEST {
        return Err(invalid("between 1 and 1000 jobs per request"));
    }
    let mut jobs = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let line = item.to_string();
        match parse_line(&line) {
            Ok(Some(job)) => jobs.push((new_job_id()?, job.input)),
            Ok(None) => return Err(invalid_at(index, "empty job")),
            Err(err) => return Err(invalid_at(index, &format!("{err} ({})", err.code()))),
        }
    }
    state
        .limiters
        .check_intake(client.as_str(), jobs.len())
        .await
        .map_err(ApiError::RateLimited)?;
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.to_string()).collect();
    let intake = state
        .connect
        .enqueue_jobs(&client, jobs, state.max_queued)
        .await?;
    if intake == Intake::Full {
        return Err(ApiError::QueueFull);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(JobsAccepted { ids })))
}

async fn status(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let client = client(&state, &headers).await?;
    let status = state.connect.job_status(&client, id.into()).await?;
    status.map(axum::Json).ok_or(ApiError::NotFound)
}

fn invalid(message: &str) -> ApiError {
    ApiError::Connect(connect::Error::InvalidRequest {
        field: connect::Field::Jobs,
        message: message.to_owned(),
    })
}

fn invalid_at(index: usize, message: &str) -> ApiError {
    invalid(&format!("job {index}: {message}"))
}

fn new_job_id() -> Result<JobId, ApiError> {
    let token = crate::secrets::random_token("").map_err(connect::Error::from)?;
    use secrecy::ExposeSecret;
    Ok(format!("job_{}", &token.expose_secret()[..22]).into())
}

const MAX_JOBS_PER_REQUEST: usize = 1000;
