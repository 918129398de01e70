//! In-process fakes on loopback: a DNS authority, the HTTPS/HTTP fleet and a per-run CA. The
//! pipeline under test is the production one, pointed at them through its configuration.

pub mod app;
pub mod browser;
pub mod tls_proxy;

use std::sync::{Arc, Once};
use std::time::Duration;

use exdisco::discovery::{Config, Pipeline};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::Report;

pub use exdisco::fleet::{
    Answer, CertKind, FLEET_IP, FakeDns, Fleet, REFUSED_IP, Reply, Seen, TestCa,
};

/// Fixture replies for the tests (the fixtures live beside the sources, taken from real
/// servers' answers: `fixtures/README.md`).
pub trait ReplyFixture {
    /// The answer in `fixtures/{path}`: a whole recorded answer for `.http` files, else a 200
    /// XML answer with the file as its body.
    fn fixture(path: &str) -> Reply;
    /// The same with the templates' `{{email}}`, `{{local}}` and `{{domain}}` filled from the
    /// address the request asked for, as the real server fills them.
    fn shape(path: &str, seen: &Seen) -> Reply;
}

impl ReplyFixture for Reply {
    fn fixture(path: &str) -> Reply {
        if path.ends_with(".http") {
            Reply::recorded(&fixture(path))
        } else {
            Reply::xml(fixture(path))
        }
    }

    fn shape(path: &str, seen: &Seen) -> Reply {
        let email = seen
            .body
            .split("<EMailAddress>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or("user@example.test")
            .to_owned();
        let (local, domain) = email.split_once('@').unwrap_or(("user", "example.test"));
        let text = String::from_utf8(fixture(path))
            .expect("fixtures are text")
            .replace("{{email}}", &email)
            .replace("{{local}}", local)
            .replace("{{domain}}", domain);
        if path.ends_with(".http") {
            Reply::recorded(text.as_bytes())
        } else {
            Reply::xml(text)
        }
    }
}

/// Skips the calling test for a missing `service` (`REDIS`, `BROWSER`, `NODE`): a failure
/// when `EXDISCO_REQUIRE_{service}` is set (`.ci/run` sets all three), else a line in
/// `$CARGO_TARGET_TMPDIR/skipped-tests.log`, which `.ci/run` counts and prints after the run,
/// and on standard error.
pub fn skip(service: &str, why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        std::env::var_os(format!("EXDISCO_REQUIRE_{service}")).is_none(),
        "EXDISCO_REQUIRE_{service} is set, but {test} cannot run: {why}"
    );
    eprintln!("skipped: {test}: {why}");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.log");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        use std::io::Write;
        let _ = writeln!(file, "{service}\t{test}\t{why}");
    }
}

/// One test's world.
pub struct TestEnv {
    pub ca: Arc<TestCa>,
    pub dns: FakeDns,
    pub fleet: Fleet,
}

impl TestEnv {
    pub async fn start() -> Self {
        init_tracing();
        let ca = Arc::new(TestCa::new());
        let dns = FakeDns::start().await;
        let fleet = Fleet::start(ca.clone()).await;
        Self { ca, dns, fleet }
    }

    /// Serves `host` through `handler` and gives it an A record.
    pub fn host(
        &self,
        host: &str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        self.dns.a(host, FLEET_IP);
        self.fleet.host(host, handler);
        self
    }

    /// Serves `host` with a certificate of `kind`.
    pub fn host_with_cert(
        &self,
        host: &str,
        kind: CertKind,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        self.dns.a(host, FLEET_IP);
        self.fleet.host_with_cert(host, kind, handler);
        self
    }

    /// `host` accepts TCP and never answers.
    pub fn black_hole(&self, host: &str) -> &Self {
        self.dns.a(host, FLEET_IP);
        self.fleet.black_hole(host);
        self
    }

    /// `host` refuses connections (its A record now points where nothing listens).
    pub fn refused(&self, host: &str) -> &Self {
        let record = hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A(REFUSED_IP));
        self.dns.set(
            host,
            hickory_proto::rr::RecordType::A,
            Answer::Records(vec![record]),
        );
        self
    }

    /// The configuration a user would write to reach these fakes: the fake name server, the
    /// test CA as an extra root, loopback allowed, the fleet's port as the wire port, and
    /// short timeouts.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.dns.name_servers = vec![self.dns.addr];
        config.dns.timeout = Duration::from_millis(500);
        config.dns.attempts = 1;
        config.http.extra_roots = vec![self.ca.cert()];
        config.http.ports.https = self.fleet.addr.port();
        config.http.ports.http = self.fleet.addr.port();
        config.http.timeouts.connect = Duration::from_secs(2);
        config.http.timeouts.read = Duration::from_secs(2);
        config.http.timeouts.request = Duration::from_secs(3);
        config.allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
        config.deadline = Duration::from_secs(8);
        config.limits.per_host_per_second = 1000;
        config.limits.per_host_burst = 1000;
        config
    }

    pub async fn discover(&self, address: &str) -> Report {
        self.discover_with(self.config(), address, None).await
    }

    pub async fn discover_with(
        &self,
        config: Config,
        address: &str,
        credentials: Option<&Credentials>,
    ) -> Report {
        let pipeline = Pipeline::builder(config).build().unwrap();
        pipeline
            .discover(&EmailAddress::parse(address).unwrap(), credentials)
            .await
    }
}

/// A handler that answers `reply` over https and 404 over plain http.
pub fn https_only(reply: Reply) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.tls {
            reply.clone()
        } else {
            Reply::status(404)
        }
    }
}

/// A handler whose plain-http GET redirects (302) to `location` and whose https answers 404.
pub fn plain_http_redirect(location: &str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let location = location.to_owned();
    move |s: &Seen| {
        if s.tls {
            Reply::status(404)
        } else {
            Reply::redirect(302, &location)
        }
    }
}

/// The codes in the trail, for `method`/`target` filtering in assertions.
pub fn codes(report: &Report) -> Vec<&'static str> {
    report
        .trail
        .iter()
        .filter_map(|a| a.code)
        .map(|c| c.as_str())
        .collect()
}

/// Whether the trail holds an attempt at a target containing `target` with `code`.
pub fn has_attempt(report: &Report, target: &str, code: &str) -> bool {
    report
        .trail
        .iter()
        .any(|a| a.target.contains(target) && a.code.is_some_and(|c| c == code))
}

/// A real Exchange 2013 settings answer (`fixtures/pox/ex2013-outlook.xml`) naming `host`.
pub use exdisco::fleet::settings_answer;

/// The documented `redirectAddr` answer (`fixtures/pox/redirectaddr-msdoc.xml`) to `address`.
pub fn redirect_addr_answer(address: &str) -> Reply {
    let text = String::from_utf8(fixture("pox/redirectaddr-msdoc.xml")).expect("text");
    Reply::xml(text.replace("una@rsmig-new.example", address))
}

/// A `redirectUrl` answer (`fixtures/pox/redirecturl-reconstructed.xml`) to `host`'s
/// Autodiscover URL.
pub fn redirect_url_answer(host: &str) -> Reply {
    let text = String::from_utf8(fixture("pox/redirecturl-reconstructed.xml")).expect("text");
    Reply::xml(text.replace("{{redirect_host}}", host))
}

pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|err| panic!("{full}: {err}"))
}

/// Basic credentials as the fleet sees them.
pub fn basic(username: &str, password: &str) -> String {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// An Exchange-like ActiveSync endpoint: 401 with Basic to anonymous requests, 200 with the
/// protocol headers to the right credentials.
pub fn exchange(expected: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.is_autodiscover() {
            return Reply::status(404);
        }
        match &s.authorization {
            Some(auth) if *auth == expected => activesync_ok(),
            _ => Reply::status(401)
                .header("WWW-Authenticate", "Negotiate")
                .header("WWW-Authenticate", "basic realm=\"mail.example.test\""),
        }
    }
}

/// A handler that answers every Autodiscover request with the recorded answer `path` and
/// anything else (the ActiveSync path) with 404.
pub fn autodiscover_only(path: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.is_autodiscover() {
            Reply::fixture(path)
        } else {
            Reply::status(404)
        }
    }
}

/// `autodiscover.example.test` of an on-premises Exchange 2016 CU3+: Autodiscover v2 answers
/// anonymously with the recorded EWS answer, every POX request gets the recorded `challenge`.
pub fn autodiscover_with_v2(
    challenge: &'static str,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.path == "/autodiscover/autodiscover.json" {
            let text = String::from_utf8(fixture("v2/v2-onprem-ews.json")).unwrap();
            Reply::xml(text.replace("{{domain}}", "example.test"))
                .header("Content-Type", "application/json; charset=utf-8")
        } else if s.is_autodiscover() {
            Reply::fixture(challenge)
        } else {
            Reply::status(404)
        }
    }
}

/// The reverse of [`autodiscover_only`]: `path` everywhere but the Autodiscover paths.
pub fn activesync_only(path: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.is_autodiscover() {
            Reply::status(404)
        } else {
            Reply::fixture(path)
        }
    }
}

/// A domain whose own Autodiscover (mailcow's recorded 401) refuses every password, beside an
/// ActiveSync server `mail.example.test` that takes `alice@example.test` / `password`.
pub fn autodiscover_refusing_passwords(env: &TestEnv, password: &str) {
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        autodiscover_only("pox/mailcow-401.http"),
    );
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", password)),
    );
}

pub fn activesync_ok() -> Reply {
    Reply::status(200)
        .header("MS-Server-ActiveSync", "15.1")
        .header(
            "MS-ASProtocolVersions",
            "2.0,2.1,2.5,12.0,12.1,14.0,14.1,16.0,16.1",
        )
        .header(
            "MS-ASProtocolCommands",
            "Sync,SendMail,FolderSync,Ping,Provision",
        )
}

/// The hosted sign-in page as a browser gets it: its CSRF cookie (`name=value`), the token in
/// its form, and its headers.
pub async fn hosted_page(
    response: reqwest::Response,
) -> (String, String, reqwest::header::HeaderMap) {
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let cookie = cookie_of(&headers);
    let html = response.text().await.unwrap();
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    (cookie, token, headers)
}

/// Logs to the test writer when TEST_LOG is set.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // reqwest in the tests (plain HTTP to the daemon) needs a process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("exdisco=trace")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A browser without JavaScript on the hosted page: its CSRF cookie and the page it shows.
pub struct PageSession {
    http: reqwest::Client,
    cookie: String,
    action: url::Url,
    /// The page shown now.
    pub html: String,
}

impl PageSession {
    /// Opens `page_url`; when the daemon answers with no page, where it sends the browser
    /// (`Ok`) or the status and page (`Err`).
    pub async fn open(page_url: &str) -> Result<Self, Result<url::Url, (u16, String)>> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http.get(page_url).send().await.unwrap();
        if page.status() != 200 {
            return Err(landing(page).await);
        }
        let cookie = cookie_of(page.headers());
        let action = url::Url::parse(page_url)
            .unwrap()
            .join("/oauth/authorize")
            .unwrap();
        Ok(Self {
            http,
            cookie,
            action,
            html: page.text().await.unwrap(),
        })
    }

    /// Posts the page's form back, its hidden fields and `fields` (which replace what the
    /// page had, the step for one): where a 303 sends the browser, or the status and the page,
    /// which is then the page shown.
    pub async fn submit(&mut self, fields: &[(&str, &str)]) -> Result<url::Url, (u16, String)> {
        let mut form: Vec<(String, String)> = hidden_inputs(&self.html);
        form.retain(|(name, _)| !fields.iter().any(|(field, _)| field == name));
        form.extend(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let answer = self
            .http
            .post(self.action.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &self.cookie)
            .body(body)
            .send()
            .await
            .unwrap();
        let landed = landing(answer).await;
        if let Err((_, html)) = &landed {
            self.html.clone_from(html);
        }
        landed
    }
}

/// Where a 30x answer sends the browser, or the status and the page.
async fn landing(response: reqwest::Response) -> Result<url::Url, (u16, String)> {
    let status = response.status();
    match response.headers().get("location") {
        Some(location) if status.is_redirection() => {
            Ok(url::Url::parse(location.to_str().unwrap()).unwrap())
        }
        _ => Err((status.as_u16(), response.text().await.unwrap())),
    }
}

/// The `name=value` of the first cookie a response sets.
fn cookie_of(headers: &reqwest::header::HeaderMap) -> String {
    headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Signs in through the hosted page as a browser without JavaScript would: opens `page_url`,
/// posts the form back with its hidden fields and `fields`, and returns where the daemon sends
/// the browser (the `Location` of its 303), or the status and page when it does not.
pub async fn sign_in_through_page(
    page_url: &str,
    fields: &[(&str, &str)],
) -> Result<url::Url, (u16, String)> {
    match PageSession::open(page_url).await {
        Ok(mut session) => session.submit(fields).await,
        Err(landed) => landed,
    }
}

/// The `name` and `value` of every `<input type="hidden">` of a page.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let attribute = |tag: &str, name: &str| {
        tag.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|v| {
                v.replace("&amp;", "&")
                    .replace("&quot;", "\"")
                    .replace("&lt;", "<")
            })
    };
    html.split("<input")
        .skip(1)
        .filter_map(|tag| tag.split('>').next())
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
        .collect()
}

/// A query parameter of `url`.
pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Hosted Exchange, as the lab's `http-redirect-only` scenario: `autodiscover.redir.test`
/// answers only the plain-HTTP method, with a 302 to the hoster's Autodiscover, which names
/// `mbx.hoster.test` to the right password only; that server is ActiveSync.
pub fn hosted_exchange(env: &TestEnv, email: &str, password: &str) {
    env.refused("redir.test");
    env.host(
        "autodiscover.redir.test",
        plain_http_redirect("https://autodiscover.hoster.test/autodiscover/autodiscover.xml"),
    );
    let expected = basic(email, password);
    let autodiscover = expected.clone();
    env.host("autodiscover.hoster.test", move |s| {
        match &s.authorization {
            Some(auth) if s.is_autodiscover() && *auth == autodiscover => {
                Reply::xml(settings_answer("mbx.hoster.test"))
            }
            _ if s.is_autodiscover() => {
                Reply::status(401).header("WWW-Authenticate", "Basic realm=\"hoster\"")
            }
            _ => Reply::status(404),
        }
    });
    env.host("mbx.hoster.test", exchange(expected));
}

/// Every name a discovery of `domain` asks about answers `answer`.
pub fn dns_everywhere(env: &TestEnv, domain: &str, answer: fn() -> Answer) {
    let names = [
        domain.to_owned(),
        format!("autodiscover.{domain}"),
        format!("_autodiscover._tcp.{domain}"),
        format!("mail.{domain}"),
        format!("owa.{domain}"),
        format!("webmail.{domain}"),
        format!("exchange.{domain}"),
    ];
    for name in &names {
        for record in [
            hickory_proto::rr::RecordType::A,
            hickory_proto::rr::RecordType::AAAA,
            hickory_proto::rr::RecordType::SRV,
            hickory_proto::rr::RecordType::MX,
        ] {
            env.dns.set(name, record, answer());
        }
    }
}
