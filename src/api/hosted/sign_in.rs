//! `GET /oauth/authorize` shows the form; `POST /oauth/authorize` checks it, runs the flow of
//! `/connect/authorize` and sends the browser back with a code, or shows the form again with
//! what went wrong.

use std::net::SocketAddr;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::{error, info};

use super::super::state::AppState;
use super::csrf::Csrf;
use super::flow::{Flow, FlowQuery, Posted, Reject};
use super::page::{self, FieldErrors, Fields, Notice, SignIn, Step};
use crate::connect::{Authorization, Error as FlowError, ExchangeLogin, Field, Login};
use crate::report::Remedy;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/oauth/authorize", get(show).post(submit))
}

/// What the sign-in form posts.
#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    #[serde(flatten)]
    posted: Posted,
    #[serde(default)]
    step: PostedStep,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    exchange_server_host: String,
    /// The host the user allows (step `consent`), with its token.
    #[serde(default)]
    consent_host: String,
    #[serde(default)]
    consent_token: String,
}

/// What the button that sent the form asks for (its `step`): a value the page does not write
/// is the first step.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PostedStep {
    /// The same, and the server.
    Server,
    /// Allow the host the consent page names.
    Consent,
    /// Do not allow it: enter the server instead.
    RefuseConsent,
    /// Name, address, password (`account`, or anything else).
    #[default]
    #[serde(other)]
    Account,
}

/// A form of the page, with the fields every form posts.
pub trait PostedForm {
    /// The CSRF token and the OAuth parameters.
    fn posted(&self) -> &Posted;
}

impl PostedForm for SignInForm {
    fn posted(&self) -> &Posted {
        &self.posted
    }
}

/// Checks a posted form: sent from this page (its `Origin`, when the browser names one),
/// readable, carrying this browser's CSRF token, its OAuth parameters still valid. Otherwise
/// the page to answer with; nothing else happens.
pub async fn check_posted<F: PostedForm>(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<F>, FormRejection>,
) -> Result<(F, Csrf, Flow), Response> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("null"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin
        && !state.hosted.is_own_origin(origin, host)
    {
        info!("form refused: posted from another origin");
        return Err(stop(
            state,
            StatusCode::FORBIDDEN,
            "This form was not sent from this page. Go back to the application and start again.",
        ));
    }
    let Ok(Form(form)) = form else {
        return Err(stop(
            state,
            StatusCode::BAD_REQUEST,
            "The form could not be read.",
        ));
    };
    let key = state.connect.key();
    let Some(csrf) = Csrf::from_headers(headers).filter(|c| c.verify(key, &form.posted().csrf))
    else {
        info!("form refused: missing or wrong csrf token");
        return Err(stop(
            state,
            StatusCode::FORBIDDEN,
            "This form has expired or was not sent from this page. Go back to the application and start again.",
        ));
    };
    match Flow::check(&state.connect, &form.posted().query(), false).await {
        Ok(flow) => Ok((form, csrf, flow)),
        Err(reject) => Err(rejected(state, reject)),
    }
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<FlowQuery>, QueryRejection>,
) -> Response {
    let hosted = &state.hosted;
    let Ok(Query(query)) = query else {
        return stop(&state, StatusCode::BAD_REQUEST, "The link is malformed.");
    };
    let flow = match Flow::check(&state.connect, &query, true).await {
        Ok(flow) => flow,
        Err(reject) => return rejected(&state, reject),
    };
    let csrf = match Csrf::from_headers(&headers).map_or_else(Csrf::new, Ok) {
        Ok(csrf) => csrf,
        Err(_) => return internal(&state),
    };
    let token = csrf.token(state.connect.key());
    let hint = query.login_hint.as_deref().unwrap_or_default();
    let hint = if hint.len() <= 320 { hint } else { "" };
    let view = SignIn {
        flow: &flow,
        csrf: &token,
        step: Step::Account,
        fields: Fields {
            email: hint,
            ..Fields::default()
        },
        errors: FieldErrors::default(),
        notice: None,
    };
    page::respond(
        StatusCode::OK,
        page::sign_in(hosted, &view),
        Some(page::csp(&[flow.redirect_source()])),
        Some(csrf.cookie(hosted.secure_cookies)),
    )
}

async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let (form, csrf, flow) = match check_posted(&state, &headers, form).await {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    let key = state.connect.key();
    let token = csrf.token(key);
    let step = match form.step {
        PostedStep::Server | PostedStep::RefuseConsent => Step::Server,
        PostedStep::Account | PostedStep::Consent => Step::Account,
    };
    // A consent counts only for this browser and this host (its token); one that does not
    // verify does nothing.
    let consented = match form.step {
        PostedStep::Consent
            if csrf.verify_consent(key, &form.consent_host, &form.consent_token) =>
        {
            Some(form.consent_host.clone())
        }
        PostedStep::Consent => {
            info!("form refused: a consent that is not this browser's");
            return stop(
                &state,
                StatusCode::FORBIDDEN,
                "This form has expired or was not sent from this page. Go back to the application and start again.",
            );
        }
        _ => None,
    };
    let host = form.exchange_server_host.trim();
    let email = form.email.trim();
    let reply = Reply {
        state: &state,
        cookie: &csrf,
        flow: &flow,
        csrf: &token,
        fields: Fields {
            name: form.name.trim(),
            email,
            username: form.username.trim(),
            host,
        },
    };
    if form.step == PostedStep::RefuseConsent {
        state.metrics.consent("refused");
        return reply.form(StatusCode::OK, Step::Server, FieldErrors::default(), None);
    }
    let password = form.password.filter(|p| !p.expose_secret().is_empty());
    let mut missing = FieldErrors::default();
    if email.is_empty() {
        missing.email = Some("Enter your email address.".into());
    }
    if password.is_none() {
        missing.password = Some("Enter your password.".into());
    }
    if step == Step::Server && host.is_empty() {
        missing.host = Some("Enter the name of your Exchange server.".into());
    }
    let Some(password) = password.filter(|_| missing.list().is_empty()) else {
        return reply.form(StatusCode::BAD_REQUEST, step, missing, None);
    };
    if let Err(wait) = state
        .limiters
        .check_sign_in(&flow.client_id, email, peer.ip())
        .await
    {
        let mut response = reply.form(
            StatusCode::TOO_MANY_REQUESTS,
            step,
            FieldErrors::default(),
            Some(Notice {
                kind: "error",
                title: "Too many attempts".into(),
                text: format!("Wait {} seconds, then try again.", wait.as_secs().max(1)),
            }),
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let username = if form.username.trim().is_empty() {
        email
    } else {
        form.username.trim()
    };
    let login = Login::Exchange(ExchangeLogin {
        username: username.to_owned(),
        password,
        host: (step == Step::Server).then(|| host.to_owned()),
        consented_host: consented,
    });
    let result = match flow.intent(&form.name, email) {
        Ok(intent) => {
            let command = Authorization {
                intent,
                login,
                source: Some(peer.ip()),
            };
            state.connect.authorize(command).await
        }
        Err(err) => Err(state.connect.refused(err)),
    };
    match result {
        Ok(code) => see_other(&flow.redirect_with(&[("code", code.expose_secret())])),
        Err(err) => reply.failure(step, err),
    }
}

/// Answers to one submission.
struct Reply<'a> {
    state: &'a AppState,
    /// This browser's CSRF cookie (consent tokens are bound to it).
    cookie: &'a Csrf,
    flow: &'a Flow,
    csrf: &'a str,
    fields: Fields<'a>,
}

impl Reply<'_> {
    fn form(
        &self,
        status: StatusCode,
        step: Step,
        errors: FieldErrors,
        notice: Option<Notice>,
    ) -> Response {
        let view = SignIn {
            flow: self.flow,
            csrf: self.csrf,
            step,
            fields: self.fields,
            errors,
            notice,
        };
        page::respond(
            status,
            page::sign_in(&self.state.hosted, &view),
            Some(page::csp(&[self.flow.redirect_source()])),
            None,
        )
    }

    /// The server form again: `host` did not answer as Exchange (`code` says how).
    /// The mailbox is IMAP/SMTP: say so, and send the user back to the application.
    fn not_exchange(&self, domain: &str, servers: &[crate::report::MailServer]) -> Response {
        let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
        let back = self.flow.error_redirect(
            "access_denied",
            "the mailbox is not on Exchange (imap_only)",
        );
        page::respond(
            StatusCode::OK,
            page::error(
                &self.state.hosted,
                "This is not an Exchange mailbox",
                &format!(
                    "The mail of {domain} is served by IMAP and SMTP servers ({}), not by \
                     Exchange. This application connects Exchange mailboxes only; your password \
                     was not sent to those servers.",
                    list.join(", ")
                ),
                Some(("Return to the application", back)),
            ),
            None,
            None,
        )
    }

    fn server_unanswered(&self, host: &str, code: &str) -> Response {
        self.form(
            StatusCode::BAD_GATEWAY,
            Step::Server,
            FieldErrors {
                host: Some(format!(
                    "{host} did not answer as an Exchange server ({code}). Check the name and try again."
                )),
                ..FieldErrors::default()
            },
            None,
        )
    }

    /// The form again, or another page, for a refusal of the flow.
    fn failure(&self, step: Step, err: FlowError) -> Response {
        let host = self.fields.host;
        let domain = self.fields.email.rsplit('@').next().unwrap_or_default();
        let info = |title: &str, text: String| Notice {
            kind: "info",
            title: title.to_owned(),
            text,
        };
        match err {
            FlowError::ConsentRequired { host, from, .. } => {
                let view = page::Consent {
                    flow: self.flow,
                    csrf: self.csrf,
                    fields: self.fields,
                    host: &host,
                    from: &from,
                    token: &self.cookie.consent_token(self.state.connect.key(), &host),
                };
                page::respond(
                    StatusCode::OK,
                    page::consent(&self.state.hosted, &view),
                    Some(page::csp(&[self.flow.redirect_source()])),
                    None,
                )
            }
            FlowError::CredentialsRefused => self.form(
                StatusCode::UNAUTHORIZED,
                step,
                FieldErrors {
                    password: Some(
                        "The mail server refused this email address and password. Check them and try again."
                            .into(),
                    ),
                    ..FieldErrors::default()
                },
                None,
            ),
            FlowError::InvalidRequest { field, message } => {
                let mut errors = FieldErrors::default();
                match field {
                    Field::EmailAddress => {
                        errors.email = Some(format!("This is not a valid email address ({message})."))
                    }
                    Field::ExchangeServerHost => {
                        errors.host = Some(format!("This is not a valid server name ({message})."))
                    }
                    _ => errors.password = Some("Enter your password.".into()),
                }
                self.form(StatusCode::BAD_REQUEST, step, errors, None)
            }
            FlowError::ExchangeOnline => {
                let hosted = &self.state.hosted;
                let mut targets = vec![self.flow.redirect_source()];
                if let Some((_, url)) = &hosted.microsoft {
                    targets.push(super::flow::csp_source(url.as_str()));
                }
                page::respond(
                    StatusCode::OK,
                    page::exchange_online(
                        hosted,
                        self.flow,
                        self.csrf,
                        self.fields.name,
                        self.fields.email,
                    ),
                    Some(page::csp(&targets)),
                    None,
                )
            }
            FlowError::TooManyAttempts => self.form(
                StatusCode::TOO_MANY_REQUESTS,
                step,
                FieldErrors::default(),
                Some(Notice {
                    kind: "error",
                    title: "Too many attempts".into(),
                    text: "Too many passwords were tried for this mailbox. Wait 15 minutes, then try again.".into(),
                }),
            ),
            FlowError::SyncCheckFailed { code, .. } => self.form(
                StatusCode::UNPROCESSABLE_ENTITY,
                step,
                FieldErrors::default(),
                Some(Notice {
                    kind: "error",
                    title: "Your mailbox cannot sync yet".into(),
                    text: sync_words(code),
                }),
            ),
            FlowError::LimitsUnavailable => self.form(
                StatusCode::SERVICE_UNAVAILABLE,
                step,
                FieldErrors::default(),
                Some(Notice {
                    kind: "error",
                    title: "Please try again".into(),
                    text: "We could not check your sign-in safely just now, so your password was not sent. Try again in a minute.".into(),
                }),
            ),
            FlowError::ImapOnly { servers } => self.not_exchange(domain, &servers),
            FlowError::DiscoveryFailed { .. }
            | FlowError::Unconfirmed
            | FlowError::NotActiveSync(_)
            | FlowError::Upstream(_)
                if step == Step::Account =>
            {
                let first = match &err {
                    FlowError::DiscoveryFailed {
                        remedy: Some(remedy),
                        ..
                    } => user_words(remedy).map(|w| format!("{w} ")),
                    _ => None,
                };
                self.form(
                    StatusCode::OK,
                    Step::Server,
                    FieldErrors::default(),
                    Some(info(
                        "We could not find your Exchange server",
                        format!(
                            "{}No Exchange server answered for {domain}. Enter the server's \
                             name, and your password again, and we will check it directly.",
                            first.unwrap_or_default()
                        ),
                    )),
                )
            }
            FlowError::DiscoveryFailed { code, .. } | FlowError::NotActiveSync(code) => {
                self.server_unanswered(host, code.as_str())
            }
            FlowError::Upstream(code) => self.server_unanswered(host, code),
            FlowError::Unconfirmed => self.form(
                StatusCode::BAD_GATEWAY,
                Step::Server,
                FieldErrors {
                    host: Some(format!("{host} could not be confirmed as your server.")),
                    ..FieldErrors::default()
                },
                None,
            ),
            FlowError::ScopeChange | FlowError::SettingsChange | FlowError::AccountNotFound => stop_with_back(
                self.state,
                StatusCode::CONFLICT,
                "This mailbox is already connected to the application with other permissions; the application must ask again to change them.",
                self.flow,
            ),
            FlowError::UnknownClient => stop(
                self.state,
                StatusCode::BAD_REQUEST,
                "The application that sent you here is not registered.",
            ),
            other => {
                error!(code = other.code(), error = %other, "hosted sign-in failed");
                internal(self.state)
            }
        }
    }
}

/// Why a mailbox that signed in will not sync, in the words of the person signing in.
fn sync_words(code: crate::code::Code) -> String {
    use crate::code::Code;
    let words = match code {
        Code::DeviceQuarantined => {
            "Your password is right, but your organization holds new devices until an administrator allows them. Ask your IT department to allow this connection, then sign in again."
        }
        Code::DeviceBlocked => {
            "Your password is right, but your organization blocks this kind of connection. Ask your IT department to allow it."
        }
        Code::UserDisabledForSync => {
            "Your password is right, but your mailbox is not enabled for mobile sync (Exchange ActiveSync). Ask your IT department to enable it."
        }
        Code::MaxDevicesReached => {
            "Your password is right, but your mailbox has as many connected devices as it may. Remove a device you no longer use (in Outlook on the web, Settings, Mobile devices), then sign in again."
        }
        Code::Throttled => "Your mail server is busy right now. Try again in a few minutes.",
        Code::MailboxMoved => {
            "Your mailbox has moved to another server. Sign in again; if this keeps happening, ask your IT department where your mailbox is now."
        }
        Code::RemoteWipeRequested => {
            "Your organization has asked to wipe this connection. Ask your IT department before you sign in again."
        }
        _ => {
            "Your password is right, but your mail server will not let this connection sync. Ask your IT department, and give them this code:"
        }
    };
    format!("{words} ({code})")
}

/// What a person signing in can do about a failed discovery, in their words; `None` when it
/// is for the domain's administrator (the page then asks for the server's name).
fn user_words(remedy: &Remedy) -> Option<String> {
    match remedy {
        Remedy::CheckAddress { domain } => Some(format!(
            "Check your email address: {domain} is not a registered domain."
        )),
        Remedy::RetryOrNameServer => {
            Some("Your mail servers answered too slowly; you can also try again later.".into())
        }
        Remedy::FixDns { domain } => Some(format!(
            "The name servers of {domain} are failing; your IT department can fix them."
        )),
        _ => None,
    }
}

/// A `303 See Other` to `location`.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The page for refused OAuth parameters.
pub fn rejected(state: &AppState, reject: Reject) -> Response {
    match reject {
        Reject::Page(message) => stop(state, StatusCode::BAD_REQUEST, message),
        Reject::Redirect(location) => see_other(&location),
        Reject::Internal => internal(state),
    }
}

/// An error page that links nowhere.
pub fn stop(state: &AppState, status: StatusCode, message: &str) -> Response {
    page::respond(
        status,
        page::error(&state.hosted, "This sign-in cannot go on", message, None),
        None,
        None,
    )
}

fn stop_with_back(state: &AppState, status: StatusCode, message: &str, flow: &Flow) -> Response {
    let back = flow.error_redirect(
        "access_denied",
        "the account is connected with other scopes",
    );
    page::respond(
        status,
        page::error(
            &state.hosted,
            "This sign-in cannot go on",
            message,
            Some(("Return to the application", back)),
        ),
        None,
        None,
    )
}

/// The page for a failure on our side.
pub fn internal(state: &AppState) -> Response {
    page::respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        page::error(
            &state.hosted,
            "Something went wrong",
            "Something went wrong on our side. Try again in a few minutes.",
            None,
        ),
        None,
        None,
    )
}
