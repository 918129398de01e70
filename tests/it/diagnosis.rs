//! Why a discovery failed: the headline names the cause found anywhere in the trail (DNS that
//! dooms every candidate, a loop, a refused password), every failure carries a remedy, and
//! `discover --report` draws the race in a self-contained page.

use exdisco::fleet::Answer;

use crate::cli::{args, exdisco};
use crate::support::*;

#[tokio::test]
async fn dns_that_dooms_every_candidate_is_the_headline() {
    let env = TestEnv::start().await;
    dns_everywhere(&env, "broken.test", || Answer::ServFail);
    let report = env.discover("mia@broken.test").await;
    let failure = report.error.as_ref().unwrap();
    assert_eq!(failure.code, "dns_servfail", "{failure:?}");
    assert_eq!(
        report.remedy,
        Some(exdisco::report::Remedy::FixDns {
            domain: "broken.test".into()
        }),
        "the remedy is typed: what to do, with which value"
    );
    assert!(
        report
            .remedy
            .as_ref()
            .unwrap()
            .to_string()
            .contains("name servers of broken.test")
    );
    // Unknown names are NXDOMAIN in the fake DNS: the registered domain does not exist.
    let report = env.discover("olga@gone.test").await;
    assert_eq!(report.error.as_ref().unwrap().code, "dns_nxdomain");
    assert!(
        report
            .remedy
            .as_ref()
            .unwrap()
            .to_string()
            .contains("not a registered domain")
    );
    // A missing name under a domain is "nothing found", with the general remedy.
    let report = env.discover("zoe@corp.gone.test").await;
    assert_eq!(report.error.as_ref().unwrap().code, "not_found");
    assert!(
        report
            .remedy
            .as_ref()
            .unwrap()
            .to_string()
            .contains("publish autodiscover.corp.gone.test")
    );
}

#[tokio::test]
async fn a_redirect_chain_or_loop_is_the_headline() {
    let env = TestEnv::start().await;
    env.refused("loop.test");
    env.host(
        "autodiscover.loop.test",
        https_only(Reply::redirect(
            302,
            "https://autodiscover.loop.test/autodiscover/autodiscover.xml?again",
        )),
    );
    let report = env.discover("ivy@loop.test").await;
    let code = report.error.as_ref().unwrap().code;
    assert!(
        code == "redirect_loop" || code == "redirect_limit",
        "{code:?}"
    );
    assert!(
        report
            .remedy
            .as_ref()
            .unwrap()
            .to_string()
            .contains("redirects")
    );
    // redirectUrl from server to server with the password: the discovery's attempts run out.
    env.refused("chain.test");
    env.host("autodiscover.chain.test", |s| match &s.authorization {
        Some(_) => redirect_url_answer("ad1.chain.test"),
        None => Reply::status(401).header("WWW-Authenticate", "Basic realm=\"chain\""),
    });
    for (host, next) in [
        ("ad1.chain.test", "ad2.chain.test"),
        ("ad2.chain.test", "ad1.chain.test"),
    ] {
        env.host(host, move |s| match &s.authorization {
            Some(_) => redirect_url_answer(next),
            None => Reply::status(401).header("WWW-Authenticate", "Basic realm=\"chain\""),
        });
    }
    let credentials = exdisco::domain::Credentials::new("hank@chain.test", "Hank-Pass-08");
    let report = env
        .discover_with(env.config(), "hank@chain.test", Some(&credentials))
        .await;
    assert_eq!(
        report.error.as_ref().unwrap().code,
        "redirect_loop",
        "{:?}",
        codes(&report)
    );
}

/// A found and a failed discovery, each with its `--report` page; the pages' paths.
pub async fn report_pages(env: &TestEnv, dir: &std::path::Path) -> [std::path::PathBuf; 2] {
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host("mail.example.test", |_| activesync_ok());
    let mut pages = Vec::new();
    for (address, name, exit) in [
        ("alice@example.test", "found.html", 0),
        ("olga@gone.test", "failed.html", 1),
    ] {
        let page = dir.join(name);
        let list = [
            "discover",
            address,
            "--username",
            address,
            "--password-stdin",
            "--report",
        ];
        let mut arguments = args(&list);
        arguments.push(page.display().to_string());
        let run = exdisco(env, arguments, Some("Secret-Pass-Marker\n".into())).await;
        assert_eq!(run.code, exit, "{address}: {}{}", run.stdout, run.stderr);
        pages.push(page);
    }
    [pages[0].clone(), pages[1].clone()]
}

#[tokio::test]
async fn the_report_page_draws_the_race_and_holds_no_secret() {
    let env = TestEnv::start().await;
    let dir = tempfile::tempdir().unwrap();
    let [found, failed] = report_pages(&env, dir.path()).await;
    for page in [&found, &failed] {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(html.contains("<svg"), "a picture of the race");
        assert!(
            !html.contains("Secret-Pass-Marker"),
            "no credential in the page"
        );
        assert!(
            !html.contains("<link") && !html.contains("src=\""),
            "self-contained"
        );
    }
    let failed = std::fs::read_to_string(&failed).unwrap();
    assert!(
        failed.contains("Remedy:") && failed.contains("dns_nxdomain"),
        "{failed}"
    );
    // The headline, not the trail (which names the host on failed pages too).
    assert!(
        std::fs::read_to_string(&found)
            .unwrap()
            .contains("<div class=\"headline found\"><strong>mail.example.test</strong>"),
        "the found page's headline names the host"
    );
    assert!(!failed.contains("headline found"));
}

#[tokio::test]
async fn each_face_says_the_typed_remedy_in_its_own_words() {
    // Issue 23: the engine returns what to do with which value; the command line names its
    // flags, the API its fields.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.refused("autodiscover.example.test");
    let run = exdisco(
        &env,
        args(&["discover", "--json", "zoe@example.test"]),
        None,
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let remedy = &json["remedy"];
    assert_eq!(remedy["action"], "fix_listener", "{json}");
    assert_eq!(remedy["host"], "autodiscover.example.test");
    assert!(
        remedy["text"].as_str().unwrap().contains("--host"),
        "{remedy}"
    );

    let app = crate::support::app::TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request("zoe@example.test", "Any-Pass-1", None);
    let (status, _, body) = app.post("/connect/authorize", &request).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["remedy_action"]["action"], "fix_listener");
    let words = body["remedy"].as_str().unwrap();
    assert!(words.contains("settings.exchange_server_host"), "{words}");
    assert!(
        !words.contains("--"),
        "no command-line flag in the API: {words}"
    );
}
