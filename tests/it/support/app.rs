//! The daemon in-process on 127.0.0.1:0 with a temporary database, pointed at the fakes.

use std::net::SocketAddr;
use std::time::Duration;

use exdisco::clock::Clock;
use exdisco::config::Config;
use exdisco::secrets::MasterKey;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::TestEnv;

/// A running daemon.
pub struct TestApp {
    pub addr: SocketAddr,
    pub store: exdisco::store::Store,
    pub pipeline: exdisco::discovery::Pipeline,
    pub metrics: exdisco::metrics::Metrics,
    /// The daemon's clock: a manual one, which tests move instead of waiting.
    pub clock: Clock,
    pub client_id: String,
    pub client_secret: String,
    pub config: Config,
    pub key: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// The `exdisco` binary with the state of a daemon in a directory and the flags that point it
/// at a test world's fakes.
pub struct Binary {
    exe: std::path::PathBuf,
    pub config: Config,
    dns: String,
    fleet_port: String,
}

impl Binary {
    /// The binary for `env`, with its state (and the CA file) in `dir`.
    pub fn new(env: &TestEnv, dir: &std::path::Path) -> Self {
        Self {
            exe: assert_cmd::cargo::cargo_bin("exdisco"),
            config: app_config(env, dir),
            dns: env.dns.addr.to_string(),
            fleet_port: env.fleet.addr.port().to_string(),
        }
    }

    /// `exdisco ARGS`, nothing added.
    pub fn bare(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(&self.exe);
        command.args(args);
        command
    }

    /// `exdisco ARGS` on this state (`--db`, `--key-file`).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.bare(args);
        command
            .arg("--db")
            .arg(&self.config.store.path)
            .arg("--key-file")
            .arg(&self.config.store.key_file);
        command
    }

    /// `exdisco serve --listen 127.0.0.1:0 ARGS`, pointed at the fakes.
    pub fn serve(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        command
            .args(args)
            .args(["--dns-server", &self.dns, "--allow-net", "127.0.0.0/8"])
            .args([
                "--https-port",
                &self.fleet_port,
                "--http-port",
                &self.fleet_port,
            ])
            .arg("--ca-file")
            .arg(&self.config.discovery.ca_files[0]);
        command
    }
}

/// The daemon's configuration for `env`, with its state in `dir`.
pub fn app_config(env: &TestEnv, dir: &std::path::Path) -> Config {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, env.ca.pem()).unwrap();
    let mut config = Config::default();
    config.store.path = dir.join("exdisco.db");
    config.store.key_file = dir.join("exdisco.key");
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.discovery.dns_servers = vec![env.dns.addr];
    config.discovery.ca_files = vec![ca];
    config.discovery.allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
    config.discovery.https_port = env.fleet.addr.port();
    config.discovery.http_port = env.fleet.addr.port();
    config.discovery.timeout = Duration::from_secs(8);
    config.connect.office365_token_url =
        "https://login.example.test/common/oauth2/v2.0/token".into();
    config.shutdown_grace = Duration::from_secs(2);
    // Jobs run when a test drains the queue (`drain_queue`), not behind its back.
    config.queue.workers = 0;
    config
}

impl TestApp {
    /// Starts a daemon for `env`; `tweak` adjusts the configuration first.
    pub async fn spawn(env: &TestEnv, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = app_config(env, dir.path());
        tweak(&mut config);
        let key = MasterKey::generate_base64().unwrap();
        let mut app = Self::start(config, key, None).await;
        let client =
            exdisco::connect::add_client(&open_store(&app.config.store.path), "test", vec![])
                .await
                .unwrap();
        app.client_id = client.client_id;
        app.client_secret = client.client_secret.expose_secret().to_owned();
        app._dir = Some(dir);
        app
    }

    async fn start(config: Config, key: String, dir: Option<tempfile::TempDir>) -> Self {
        Self::start_with_clock(config, key, dir, Clock::manual()).await
    }

    /// The daemon as `exdisco serve` runs it (`App::run`: the API, the sweep, the queue
    /// workers the configuration asks for), on `clock`.
    async fn start_with_clock(
        config: Config,
        key: String,
        dir: Option<tempfile::TempDir>,
        clock: Clock,
    ) -> Self {
        let key_value = MasterKey::from_base64(&key).unwrap();
        let app = exdisco::app::App::build_with_clock(&config, key_value, clock.clone())
            .await
            .unwrap();
        let (store, pipeline, metrics) =
            (app.store.clone(), app.pipeline.clone(), app.metrics.clone());
        let listener = TcpListener::bind(config.api.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (token, run_config) = (shutdown.clone(), config.clone());
        let task = tokio::spawn(async move {
            app.run(listener, &run_config, token).await.unwrap();
        });
        Self {
            addr,
            store,
            pipeline,
            metrics,
            clock,
            client_id: String::new(),
            client_secret: String::new(),
            config,
            key,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    /// Registers another client with `redirect_uris` and makes it this app's client.
    pub async fn use_client(&mut self, name: &str, redirect_uris: Vec<String>) {
        let client = exdisco::connect::add_client(&self.store, name, redirect_uris)
            .await
            .unwrap();
        self.client_id = client.client_id;
        self.client_secret = client.client_secret.expose_secret().to_owned();
    }

    /// Stops this daemon and starts another on the same database and key.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let dir = self._dir.take();
        let clock = self.clock.clone();
        let mut next =
            Self::start_with_clock(self.config.clone(), self.key.clone(), dir, clock).await;
        next.client_id = std::mem::take(&mut self.client_id);
        next.client_secret = std::mem::take(&mut self.client_secret);
        next
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Runs the embedded queue's jobs until it is empty; returns how many ran.
    pub async fn drain_queue(&self) -> usize {
        use exdisco::queue::{RunOutcome, StoreQueue, Worker};
        let queue = StoreQueue::new(self.store.clone(), Duration::from_secs(60), 3);
        let cache = exdisco::batch::DomainCache::new(1000, Duration::from_secs(60));
        let worker = Worker::new(
            queue,
            self.pipeline.clone(),
            cache,
            Some(self.metrics.clone()),
        );
        let mut ran = 0;
        while worker.try_run_one().await.unwrap() == RunOutcome::Ran {
            ran += 1;
        }
        ran
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs JSON; returns the status, the headers and the body as JSON (or Null).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, _, json) = read(request.send().await.unwrap()).await;
        (status, json)
    }

    /// POSTs jobs to `/v1/discoveries` as this app's client.
    pub async fn post_jobs(&self, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .post(self.url("/v1/discoveries"))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// GET `/v1/discoveries/{id}` as this app's client.
    pub async fn job(&self, id: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(&format!("/v1/discoveries/{id}")))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .send()
            .await
            .unwrap();
        let (status, _, json) = read(response).await;
        (status, json)
    }

    /// GET /account with a bearer token.
    pub async fn account(&self, token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/account"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, _, json) = read(response).await;
        (status, json)
    }

    /// The authorize body of an exchange account.
    pub fn exchange_request(&self, email: &str, password: &str, host: Option<&str>) -> Value {
        let mut settings = serde_json::json!({ "username": email, "password": password });
        if let Some(host) = host {
            settings["exchange_server_host"] = host.into();
        }
        serde_json::json!({
            "client_id": self.client_id,
            "name": "Alice Example",
            "email_address": email,
            "provider": "exchange",
            "settings": settings,
            "scopes": "email.read_only,calendar.read_only,contacts.read_only",
        })
    }

    /// Authorize then token; returns the token response.
    pub async fn connect(&self, request: &Value) -> Value {
        let (status, _, body) = self.post("/connect/authorize", request).await;
        assert_eq!(status, 200, "authorize: {body}");
        let code = body["code"].as_str().unwrap().to_owned();
        let (status, _, token) = self
            .post("/connect/token", &self.token_request(&code))
            .await;
        assert_eq!(status, 200, "token: {token}");
        token
    }

    pub fn token_request(&self, code: &str) -> Value {
        serde_json::json!({ "client_id": self.client_id, "client_secret": self.client_secret, "code": code })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn read(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn open_store(path: &std::path::Path) -> exdisco::store::Store {
    exdisco::store::Store::open(path).unwrap()
}
