//! The page's HTML: one layout, the sign-in form in its two steps (account; account and
//! server), the Exchange Online page and the error page. Values are escaped by `maud`; the
//! password is never written back into a page.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::Hosted;
use super::assets::{LOGO_PATH, PROGRESS_PATH, STYLE_PATH};
use super::flow::Flow;

/// The policy of pages whose forms only post to the daemon.
pub const DEFAULT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of a page whose forms may end, after redirects, at `targets` (browsers check
/// `form-action` on every redirect of a submission).
pub fn csp(targets: &[String]) -> String {
    let mut sources = String::from("'self'");
    for target in targets {
        sources.push(' ');
        sources.push_str(target);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action {sources}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// An HTML answer with its policy and, when given, the CSRF cookie.
pub fn respond(
    status: StatusCode,
    markup: Markup,
    policy: Option<String>,
    cookie: Option<HeaderValue>,
) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(value) = policy.and_then(|p| HeaderValue::from_str(&p).ok()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

fn layout(hosted: &Hosted, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · " (hosted.name) }
                link rel="stylesheet" href=(STYLE_PATH);
                script src=(PROGRESS_PATH) defer {}
            }
            body {
                main {
                    header.brand {
                        img src=(LOGO_PATH) alt="" width="40" height="40";
                        span { (hosted.name) }
                    }
                    (body)
                }
                footer { "Your password goes only to your mail server, over a verified connection." }
            }
        }
    }
}

/// Which fields the sign-in form shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Name, address, password.
    Account,
    /// The same, and the server (discovery found nothing usable).
    Server,
}

impl Step {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Server => "server",
        }
    }
}

/// What the form shows in its fields (never the password).
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields<'a> {
    /// The name.
    pub name: &'a str,
    /// The address.
    pub email: &'a str,
    /// The username, when not the address.
    pub username: &'a str,
    /// The server.
    pub host: &'a str,
}

/// Messages tied to fields.
#[derive(Debug, Default)]
pub struct FieldErrors {
    /// On the address.
    pub email: Option<String>,
    /// On the password.
    pub password: Option<String>,
    /// On the server.
    pub host: Option<String>,
}

impl FieldErrors {
    pub(super) fn list(&self) -> Vec<(&'static str, &str)> {
        [
            ("email", &self.email),
            ("password", &self.password),
            ("host", &self.host),
        ]
        .into_iter()
        .filter_map(|(id, message)| message.as_deref().map(|m| (id, m)))
        .collect()
    }
}

/// A message above the form.
#[derive(Debug)]
pub struct Notice {
    /// `error` or `info`.
    pub kind: &'static str,
    /// Its heading.
    pub title: String,
    /// Its text.
    pub text: String,
}

/// The sign-in form.
pub struct SignIn<'a> {
    /// The checked OAuth parameters.
    pub flow: &'a Flow,
    /// The CSRF token.
    pub csrf: &'a str,
    /// Which fields.
    pub step: Step,
    /// Their values.
    pub fields: Fields<'a>,
    /// Messages tied to them.
    pub errors: FieldErrors,
    /// A message above the form.
    pub notice: Option<Notice>,
}

fn application(flow: &Flow) -> &str {
    if flow.client_name.trim().is_empty() {
        "An application"
    } else {
        flow.client_name.as_str()
    }
}

fn flow_fields(flow: &Flow, csrf: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="client_id" value=(flow.client_id);
        input type="hidden" name="redirect_uri" value=(flow.redirect_uri);
        input type="hidden" name="scopes" value=(flow.scopes);
        @if let Some(state) = &flow.state {
            input type="hidden" name="state" value=(state);
        }
        @if let Some(reauth) = &flow.reauth_account_id {
            input type="hidden" name="reauth_account_id" value=(reauth);
        }
        @if let Some(challenge) = &flow.code_challenge {
            input type="hidden" name="code_challenge" value=(challenge);
            input type="hidden" name="code_challenge_method" value="S256";
        }
    }
}

fn notice(notice: &Notice) -> Markup {
    html! {
        div class={ "notice " (notice.kind) } role=(if notice.kind == "error" { "alert" } else { "status" }) {
            h2 { (notice.title) }
            p { (notice.text) }
        }
    }
}

fn field_error(id: &str, message: Option<&String>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.field-error id={ (id) "-error" } { "Error: " (message) }
        }
    }
}

/// The sign-in form in `view.step`.
pub fn sign_in(hosted: &Hosted, view: &SignIn<'_>) -> Markup {
    let flow = view.flow;
    let errors = view.errors.list();
    let first_error = errors.first().map(|(id, _)| *id);
    // The first field with an error, else the first to fill (the password is never kept).
    let focus = first_error.unwrap_or(if view.fields.email.is_empty() {
        "email"
    } else {
        "password"
    });
    let invalid = |id: &str| errors.iter().any(|(e, _)| *e == id).then_some("true");
    let described = |id: &str, hint: Option<&str>| {
        let mut ids: Vec<String> = hint.map(str::to_owned).into_iter().collect();
        if invalid(id).is_some() {
            ids.push(format!("{id}-error"));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let title = match view.step {
        Step::Account => "Connect your mailbox",
        Step::Server => "Enter your Exchange server",
    };
    let progress = "Finding your Exchange server and checking your password…|Still working: some mail servers take a while to answer. Keep this page open.";
    let body = html! {
        h1 { (title) }
        p.lead {
            (application(flow)) " asks to connect to your Exchange mailbox. "
            "Sign in with your email address and the password you use for email."
        }
        @if let Some(n) = &view.notice { (notice(n)) }
        @if !errors.is_empty() {
            div.notice.error role="alert" {
                h2 { "There is a problem" }
                ul {
                    @for (id, message) in &errors {
                        li { a href={ "#" (id) } { (message) } }
                    }
                }
            }
        }
        form method="post" action="/oauth/authorize" data-progress=(progress) {
            (flow_fields(flow, view.csrf))
            input type="hidden" name="step" value=(view.step.as_str());
            label for="name" { "Your name" span.hint { "Optional" } }
            input #name type="text" name="name" autocomplete="name" maxlength="200"
                value=(view.fields.name);
            label for="email" { "Email address" }
            input #email type="email" name="email" autocomplete="email" required maxlength="320"
                spellcheck="false" value=(view.fields.email)
                aria-invalid=[invalid("email")] aria-describedby=[described("email", None)]
                autofocus[focus == "email"];
            (field_error("email", view.errors.email.as_ref()))
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password"
                required maxlength="1024"
                aria-invalid=[invalid("password")] aria-describedby=[described("password", None)]
                autofocus[focus == "password"];
            (field_error("password", view.errors.password.as_ref()))
            @if view.step == Step::Server {
                label for="host" {
                    "Exchange server"
                    span.hint #host-hint { "Its name, such as mail.example.com. Your administrator or your mail app's settings show it." }
                }
                input #host type="text" name="exchange_server_host" required maxlength="253"
                    autocomplete="off" autocapitalize="none" spellcheck="false" inputmode="url"
                    value=(view.fields.host)
                    aria-invalid=[invalid("host")] aria-describedby=[described("host", Some("host-hint"))]
                    autofocus[focus == "host"];
                (field_error("host", view.errors.host.as_ref()))
                label for="username" {
                    "Username"
                    span.hint #username-hint { "Only if it is not your email address, such as EXAMPLE\\alice." }
                }
                input #username type="text" name="username" autocomplete="username" maxlength="320"
                    autocapitalize="none" spellcheck="false" value=(view.fields.username)
                    aria-describedby="username-hint";
            }
            button type="submit" { "Connect" }
            div #progress role="status" aria-live="polite" hidden {
                p #progress-text {}
                progress aria-label="Working" {}
            }
        }
        p.secondary {
            a href=(flow.error_redirect("access_denied", "the user cancelled")) {
                "Cancel and return to " (application(flow))
            }
        }
    };
    layout(hosted, title, body)
}

/// A host outside the mailbox's domain that discovery was sent to.
pub struct Consent<'a> {
    /// The checked OAuth parameters.
    pub flow: &'a Flow,
    /// The CSRF token.
    pub csrf: &'a str,
    /// The form's values so far.
    pub fields: Fields<'a>,
    /// The host that asks for the password.
    pub host: &'a str,
    /// Where the redirect came from.
    pub from: &'a str,
    /// The consent token, bound to this browser and host.
    pub token: &'a str,
}

/// Asks the user, as Outlook does, whether a server outside their domain may have the
/// password for this sign-in; or to enter their server instead.
pub fn consent(hosted: &Hosted, view: &Consent<'_>) -> Markup {
    let flow = view.flow;
    let domain = view.fields.email.rsplit('@').next().unwrap_or_default();
    let from_host = url::Url::parse(view.from)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| view.from.to_owned());
    let title = "Allow this server to set up your mailbox?";
    let body = html! {
        h1 { (title) }
        div.notice.info role="status" {
            p {
                (from_host) " sent us to " strong #consent-host { (view.host) } ", which is not part of "
                (domain) ". If you allow it, your password goes to " (view.host)
                ", for this sign-in only, so that it can tell us where your mailbox is."
            }
            p { "Allow it only if your email is hosted there, by your email provider. Otherwise, enter your server instead." }
        }
        form method="post" action="/oauth/authorize" {
            (flow_fields(flow, view.csrf))
            input type="hidden" name="consent_host" value=(view.host);
            input type="hidden" name="consent_token" value=(view.token);
            input type="hidden" name="name" value=(view.fields.name);
            input type="hidden" name="email" value=(view.fields.email);
            input type="hidden" name="username" value=(view.fields.username);
            label for="password" { "Password" span.hint { "Enter it again: it was not kept." } }
            input #password type="password" name="password" autocomplete="current-password"
                required maxlength="1024" autofocus;
            button #allow type="submit" name="step" value="consent" { "Allow " (view.host) }
            button #refuse type="submit" name="step" value="refuse_consent" formnovalidate
                class="secondary" { "Enter my server instead" }
        }
    };
    layout(hosted, title, body)
}

/// The mailbox is on Exchange Online: password sign-in is off there.
pub fn exchange_online(
    hosted: &Hosted,
    flow: &Flow,
    csrf: &str,
    name: &str,
    email: &str,
) -> Markup {
    let title = "Sign in with Microsoft";
    let body = html! {
        h1 { (title) }
        div.notice.info role="status" {
            h2 { "Your mailbox is on Microsoft 365" }
            p {
                (email) " is hosted by Microsoft (Exchange Online). Microsoft has turned off "
                "password sign-in for these mailboxes, so your password cannot be checked here."
            }
        }
        @if hosted.microsoft.is_some() {
            form method="post" action="/oauth/microsoft" {
                (flow_fields(flow, csrf))
                input type="hidden" name="name" value=(name);
                input type="hidden" name="email" value=(email);
                p { "Sign in on Microsoft's page; you will come back to " (application(flow)) " afterwards." }
                button type="submit" autofocus { "Sign in with Microsoft" }
            }
        } @else {
            p {
                (application(flow)) " has not set up Microsoft sign-in here. Ask its support how "
                "to connect a Microsoft 365 mailbox."
            }
        }
        p.secondary { a href=(flow.restart_path()) { "Use another email address" } }
        p.secondary {
            a href=(flow.error_redirect("access_denied", "the user cancelled")) {
                "Cancel and return to " (application(flow))
            }
        }
    };
    layout(hosted, title, body)
}

/// A page that explains why the flow stopped; `back` is a link to offer, if any.
pub fn error(hosted: &Hosted, title: &str, message: &str, back: Option<(&str, String)>) -> Markup {
    let body = html! {
        h1 { (title) }
        div.notice.error role="alert" { p { (message) } }
        @if let Some((label, href)) = back {
            p.secondary { a href=(href) { (label) } }
        }
    };
    layout(hosted, title, body)
}
