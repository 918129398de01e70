//! The embedded queue over HTTP: `POST /v1/discoveries` (one job or a list) answers the job
//! ids; `GET /v1/discoveries/{id}` answers the state and, once done, the report. Workers inside
//! `serve` drain the queue.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use super::state::AppState;
use crate::batch::parse_line;
use crate::connect;
use crate::store::unix_now;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/discoveries", post(enqueue))
        .route("/v1/discoveries/{id}", get(status))
}

async fn enqueue(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
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
    let ids: Vec<String> = jobs.iter().map(|(id, _)| id.clone()).collect();
    state
        .connect
        .store()
        .enqueue_jobs(jobs, unix_now())
        .await
        .map_err(connect::Error::from)?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "ids": ids }))))
}

async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let status = state
        .connect
        .store()
        .job_status(id)
        .await
        .map_err(connect::Error::from)?;
    status.map(axum::Json).ok_or(ApiError::NotFound)
}

fn invalid(message: &str) -> ApiError {
    ApiError::Connect(connect::Error::InvalidRequest {
        field: "jobs",
        message: message.to_owned(),
    })
}

fn invalid_at(index: usize, message: &str) -> ApiError {
    invalid(&format!("job {index}: {message}"))
}

fn new_job_id() -> Result<String, ApiError> {
    let token = crate::secrets::random_token("").map_err(connect::Error::from)?;
    use secrecy::ExposeSecret;
    Ok(format!("job_{}", &token.expose_secret()[..22]))
}

const MAX_JOBS_PER_REQUEST: usize = 1000;
