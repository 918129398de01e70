//! `discover --report FILE.html`: one self-contained page (no external asset; it works
//! offline) that people look at rather than read: the headline and the remedy, a picture of the
//! race (SVG, one lane per candidate: when each attempt started and ended, its outcome, where
//! the waves began, what was superseded or cancelled), then the trail. The report holds no
//! credential, so neither does the page; `maud` escapes every value.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use exdisco::report::{Attempt, Method, Outcome, Report};

const STYLE: &str = "
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
.headline { border-left: 6px solid; padding: .8rem 1rem; border-radius: 6px; margin: 1rem 0; }
.found { border-color: #1a7f37; background: #eef8f0; }
.failed { border-color: #cf222e; background: #fdf0f0; }
.remedy { margin-top: .4rem; }
code { font: 13px ui-monospace, monospace; }
svg { width: 100%; height: auto; background: #fafbfc; border: 1px solid #d0d7de; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; margin-top: 1.5rem; font-size: 13px; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e1e4e8; vertical-align: top; }
td.target { word-break: break-all; }
.legend span { display: inline-block; margin-right: 1rem; }
.legend i { display: inline-block; width: .9rem; height: .9rem; border-radius: 2px; vertical-align: -2px; margin-right: .3rem; }
";

/// The colour of an outcome, in the picture and its legend.
fn colour(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Answered => "#2da44e",
        Outcome::Redirected => "#218bff",
        Outcome::Failed => "#cf222e",
        Outcome::Refused => "#d4a72c",
        _ => "#8c959f",
    }
}

/// The page for `report`.
pub fn render(report: &Report) -> String {
    let domain = report.email.rsplit('@').next().unwrap_or_default();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "exdisco: " (report.email) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Where " (report.email) "'s Exchange server lives" }
                (headline(report, domain))
                (timeline(&report.trail))
                (trail_table(&report.trail))
                p { small { "exdisco discover, " (format!("{:.3}", report.seconds)) " s. Credentials never appear in this page." } }
            }
        }
    };
    page.into_string()
}

fn headline(report: &Report, domain: &str) -> Markup {
    match (&report.exchange_server_host, &report.error) {
        (Some(host), _) => html! {
            div.headline.found {
                strong { (host) }
                " — found by " code { (report.method.map_or("?", Method::as_str)) }
                @if report.confirmed { ", confirmed" } @else { ", not confirmed: it needs the user's confirmation" }
                @if let Some(evidence) = report.evidence { " (" (evidence.as_str()) ")" }
            }
        },
        (None, Some(failure)) => html! {
            div.headline.failed {
                strong { "No server found for " (domain) ": " (failure.message) }
                " " code { (failure.code.as_str()) }
                @if let Some(remedy) = &report.remedy {
                    div.remedy { strong { "Remedy: " } (super::output::remedy_words(remedy)) }
                }
            }
        },
        (None, None) => html! { div.headline.failed { "No server found." } },
    }
}

/// The race: one lane per candidate method, attempts as bars on a time axis.
fn timeline(trail: &[Attempt]) -> Markup {
    let mut lanes: Vec<Method> = Vec::new();
    for attempt in trail {
        if !lanes.contains(&attempt.method) {
            lanes.push(attempt.method);
        }
    }
    let end = trail
        .iter()
        .map(|a| a.start_ms + a.ms.max(1))
        .max()
        .unwrap_or(1)
        .max(10);
    let (left, width, lane_height) = (170.0, 900.0, 30.0);
    let height = 40.0 + lane_height * lanes.len() as f64;
    let x = |ms: u64| left + width * ms as f64 / end as f64;
    let wave = |methods: &[Method]| {
        trail
            .iter()
            .filter(|a| methods.contains(&a.method) && a.outcome != Outcome::Cancelled)
            .map(|a| a.start_ms)
            .min()
    };
    let second = wave(&[Method::HttpRedirect, Method::Srv, Method::AutodiscoverV2]);
    let fallback = wave(&[Method::ActiveSync]);
    let ticks: Vec<u64> = (0..=4).map(|i| end * i / 4).collect();
    html! {
        h2 { "The race" }
        p.legend {
            @for (outcome, label) in [(Outcome::Answered, "answered"), (Outcome::Redirected, "redirected"),
                (Outcome::Failed, "failed"), (Outcome::Refused, "refused"), (Outcome::Cancelled, "cancelled or superseded")] {
                span { i style={ "background:" (colour(outcome)) } {} (label) }
            }
        }
        svg viewBox={ "0 0 " (left + width + 20.0) " " (height) } role="img"
            aria-label="When each candidate's attempts started and ended" {
            @for tick in &ticks {
                line x1=(x(*tick)) x2=(x(*tick)) y1="20" y2=(height - 10.0) stroke="#e1e4e8" {}
                text x=(x(*tick)) y="14" font-size="11" text-anchor="middle" fill="#57606a" { (tick) " ms" }
            }
            @for (label, at) in [("wave 2", second), ("fallback", fallback)] {
                @if let Some(at) = at {
                    line x1=(x(at)) x2=(x(at)) y1="20" y2=(height - 10.0) stroke="#8250df"
                        stroke-dasharray="4 3" {}
                    text x=(x(at) + 3.0) y=(height - 12.0) font-size="11" fill="#8250df" { (label) }
                }
            }
            @for (lane, method) in lanes.iter().enumerate() {
                @let y = 28.0 + lane_height * lane as f64;
                text x="8" y=(y + 15.0) font-size="12" fill="#1b1f24" { (method.as_str()) }
                @for attempt in trail.iter().filter(|a| a.method == *method) {
                    @let start = x(attempt.start_ms);
                    @let bar = (x(attempt.start_ms + attempt.ms.max(1)) - start).max(3.0);
                    rect x=(start) y=(y + 2.0) width=(bar) height=(lane_height - 10.0) rx="3"
                        fill=(colour(attempt.outcome)) {
                        title {
                            (attempt.step.as_str()) " " (attempt.target) ": " (attempt.outcome.as_str())
                            @if let Some(code) = attempt.code { " (" (code.as_str()) ")" }
                            ", " (attempt.ms) " ms"
                        }
                    }
                }
            }
        }
    }
}

fn trail_table(trail: &[Attempt]) -> Markup {
    html! {
        h2 { "Every attempt" }
        table {
            thead { tr { th { "start" } th { "ms" } th { "candidate" } th { "step" } th { "target" }
                th { "outcome" } th { "code" } th { "credentials" } th { "detail" } } }
            tbody {
                @for a in trail {
                    tr {
                        td { (a.start_ms) } td { (a.ms) } td { (a.method.as_str()) } td { (a.step.as_str()) }
                        td.target { (a.target) }
                        td style={ "color:" (colour(a.outcome)) } { (a.outcome.as_str()) }
                        td { @if let Some(code) = a.code { code { (code.as_str()) } } }
                        td { @if a.authenticated { "sent" } @else { "none" } }
                        td { (a.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}
