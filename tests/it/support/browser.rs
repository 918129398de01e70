//! Headless Chromium driven through WebDriver (Debian's `chromium` and `chromium-driver`), and
//! the application side of an OAuth flow: a loopback server whose `/callback` records where the
//! browser lands.
//!
//! Without a chromedriver the browser tests skip, unless `EXDISCO_REQUIRE_BROWSER` is set (CI
//! sets it, so there they run or fail).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A chromedriver process and one browser session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

/// How a test wants the browser.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scripts {
    On,
    Off,
}

impl Browser {
    /// A new browser, or `None` (after saying why) when this machine has no chromedriver.
    pub async fn start(scripts: Scripts) -> Option<Self> {
        let driver_path = std::env::var_os("EXDISCO_CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
        if !driver_path.exists() {
            super::skip(
                "BROWSER",
                &format!(
                    "no chromedriver at {driver_path:?} (apt-get install chromium chromium-driver)"
                ),
            );
            return None;
        }
        let port = free_port();
        let log = std::env::temp_dir().join(format!("exdisco-chromedriver-{port}.log"));
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let binary =
            std::env::var("EXDISCO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut options = json!({
            "binary": binary,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-proxy-server",
                "--window-size=480,1100",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if scripts == Scripts::Off {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("no webdriver session: {err} (see {})", log.display()),
            }
        };
        Some(Self {
            client,
            driver,
            port,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Waits until the browser is on a page whose URL satisfies `done`.
    pub async fn wait_for_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "never reached {what}; at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matching `css` is on the page.
    pub async fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.has(css).await {
            assert!(
                Instant::now() < deadline,
                "{css} never appeared; at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the page as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop ends chromedriver and anything left of the browser.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's own way out ends the browsers it started, even when a test panicked
        // before closing its session; then the process itself.
        use std::io::Write;
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The application's side: `/callback` records each query it gets; any other page is
/// the application's own (used to post a forged form from another origin).
pub struct AppSite {
    pub addr: SocketAddr,
    landed: Arc<Mutex<Vec<String>>>,
}

impl AppSite {
    pub async fn start(forged_form: String) -> Self {
        use axum::extract::RawQuery;
        use axum::response::Html;
        let landed = Arc::new(Mutex::new(Vec::new()));
        let record = landed.clone();
        let app = axum::Router::new()
            .route(
                "/callback",
                axum::routing::get(move |RawQuery(query): RawQuery| {
                    let record = record.clone();
                    async move {
                        record.lock().unwrap().push(query.unwrap_or_default());
                        Html("<h1>Back at the application</h1>")
                    }
                }),
            )
            .route(
                "/forged",
                axum::routing::get(move || {
                    let page = forged_form.clone();
                    async move { Html(page) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, landed }
    }

    pub fn callback(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// The queries `/callback` received, parsed.
    pub fn landings(&self) -> Vec<Vec<(String, String)>> {
        self.landed
            .lock()
            .unwrap()
            .iter()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .collect()
    }
}

/// The value of `name` in a parsed query.
pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
