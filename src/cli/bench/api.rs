//! Figure 5: authorize + token flows against a fake ActiveSync server, with and without a
//! slow-body attack from another source address at the same time, side by side.
//!
//! The attack is the one of the daemon-under-attack issue: connections that each declare a
//! 60 kB body and send one byte every 2 s, opened again as soon as they are closed. While it
//! runs, `/healthz` is asked every 100 ms from a third address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use exdisco::fleet::{FLEET_IP, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::World;

/// What one run of flows measured.
pub struct FlowFigures {
    /// Flows completed.
    pub flows: usize,
    /// Seconds they took.
    pub seconds: f64,
    /// Median flow.
    pub p50: Duration,
    /// 99th percentile flow.
    pub p99: Duration,
    /// `/healthz` answered within a second, of asked.
    pub health: (u64, u64),
    /// Slow-body connections: opened, closed at once by the per-source cap, answered 408.
    pub attack: Option<AttackFigures>,
    /// CPU seconds this process (daemons, fake server and clients) spent.
    pub cpu: f64,
}

/// Where the flows' state lives, and how many daemons share it (figure 8).
#[derive(Debug, Clone, Default)]
pub struct Instances {
    /// A PostgreSQL server (a database of the bench's own is made on it and dropped), or the
    /// SQLite file.
    pub postgres: Option<String>,
    /// Daemons on the one database, each on its own listener; the flows take turns.
    pub count: usize,
}

/// What the attacker saw.
#[derive(Debug, Default)]
pub struct AttackFigures {
    /// Connections opened.
    pub opened: u64,
    /// Closed before any answer (the per-source cap).
    pub refused: u64,
    /// Answered `408` (the body timeout).
    pub timed_out: u64,
}

/// Runs `clients` flow loops for `window`, with `slow_bodies` attacking connections if not 0.
pub async fn authorize_flows(
    world: &World,
    clients: usize,
    window: Duration,
    slow_bodies: usize,
    instances: &Instances,
) -> anyhow::Result<FlowFigures> {
    let password = "bench-password";
    world.dns.a("eas.example-bench.test", FLEET_IP);
    // Any account with the bench password: one account per flow, so that the per-account
    // credential limit is not what is measured.
    let has_password = move |auth: &str| {
        let encoded = auth.strip_prefix("Basic ").unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_default();
        decoded.ends_with(format!(":{password}").as_bytes())
    };
    world
        .fleet
        .host("eas.example-bench.test", move |s| match &s.authorization {
            Some(auth) if has_password(auth) => Reply::status(200)
                .header("MS-ASProtocolVersions", "14.1,16.1")
                .header("MS-ASProtocolCommands", "Sync,FolderSync"),
            _ => Reply::status(401).header("WWW-Authenticate", "Basic realm=\"bench\""),
        });
    let dir = std::env::temp_dir().join(format!(
        "exdisco-bench-{}-{slow_bodies}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, world.ca.pem())?;
    let mut config = exdisco::config::Config::default();
    config.store.path = dir.join("bench.db");
    config.discovery.dns_servers = vec![world.dns.addr];
    config.discovery.ca_files = vec![ca_file];
    config.discovery.allow_nets = vec!["127.0.0.0/8".parse()?];
    config.discovery.https_port = world.fleet.addr.port();
    config.discovery.http_port = world.fleet.addr.port();
    // The flows all come from one address, as from an application's backend: its limits are
    // lifted; the attacker's address keeps the others (10 s per body, 256 requests in flight).
    config.api.authorize_per_address_per_minute = 1_000_000;
    config.api.authorize_per_account_per_minute = 1_000_000;
    config.api.authorize_per_client_per_minute = 1_000_000;
    config.api.token_per_address_per_minute = 1_000_000;
    // 100 flow loops take 100 connections: the cap is raised to 128 for both addresses, so the
    // attacker's 300 meet it.
    config.api.max_connections_per_address = 128;
    // One fake server takes every flow: the per-host politeness limit (10/s by default) would
    // be the figure otherwise.
    config.discovery.per_host_per_second = 100_000;
    config.discovery.per_host_burst = 100_000;
    config.discovery.per_host_in_flight = 64;
    let scratch = match &instances.postgres {
        Some(server) => {
            let (url, database) = scratch_database(server).await?;
            config.store.url = Some(url.into());
            Some((server.clone(), database))
        }
        None => None,
    };
    let key = exdisco::secrets::MasterKey::generate_base64()?;
    let shutdown = CancellationToken::new();
    let mut bases = Vec::new();
    let mut servers = Vec::new();
    let mut client = None;
    for _ in 0..instances.count.max(1) {
        let app =
            exdisco::app::App::build(&config, exdisco::secrets::MasterKey::from_base64(&key)?)
                .await?;
        if client.is_none() {
            client = Some(exdisco::connect::add_client(&app.store, "bench", vec![]).await?);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        bases.push(format!("http://{}", listener.local_addr()?));
        let api_config = config.api.clone();
        let token = shutdown.clone();
        let metrics = app.metrics.clone();
        servers.push(tokio::spawn(async move {
            exdisco::api::serve(
                listener,
                app.router,
                &api_config,
                &metrics,
                token,
                Duration::from_secs(1),
            )
            .await
        }));
    }
    let client = client.context("no daemon")?;
    let address: SocketAddr = bases[0].trim_start_matches("http://").parse()?;
    let cpu_before = super::cpu_seconds();

    let stop = CancellationToken::new();
    let attack = (slow_bodies > 0).then(|| {
        let stats = Arc::new(AttackStats::default());
        for _ in 0..slow_bodies {
            tokio::spawn(slow_body(address, stats.clone(), stop.clone()));
        }
        stats
    });
    // Let the attack take hold before the flows start.
    if attack.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let health = tokio::spawn(probe_health(address, stop.clone()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .local_address("127.0.0.1".parse::<IpAddr>()?)
        .build()?;
    let client_id = client.client_id.clone();
    let secret = secrecy::ExposeSecret::expose_secret(&client.client_secret).to_owned();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task_index in 0..clients {
        let (http, base, client_id, secret) = (
            http.clone(),
            bases[task_index % bases.len()].clone(),
            client_id.clone(),
            secret.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut flow = 0;
            while started.elapsed() < window {
                // One account per flow: the per-account credential limit is not what is measured.
                let email = format!("bench{task_index}x{flow}@d1.bench.test");
                flow += 1;
                let begun = Instant::now();
                let authorize = serde_json::json!({
                    "client_id": client_id, "email_address": email, "provider": "exchange",
                    "settings": {"username": email, "password": password, "exchange_server_host": "eas.example-bench.test"},
                    "scopes": "email.read_only",
                });
                let code = super::post(&http, &format!("{base}/connect/authorize"), &authorize).await?["code"].as_str().context("no code")?.to_owned();
                let token = serde_json::json!({"client_id": client_id, "client_secret": secret, "code": code});
                super::post(&http, &format!("{base}/connect/token"), &token).await?["access_token"].as_str().context("no token")?;
                latencies.push(begun.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = super::cpu_seconds() - cpu_before;
    stop.cancel();
    let health = health.await?;
    shutdown.cancel();
    for server in servers {
        let _ = server.await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some((server, database)) = scratch {
        drop_database(&server, &database).await;
    }
    anyhow::ensure!(!latencies.is_empty(), "no flow completed");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Ok(FlowFigures {
        flows: latencies.len(),
        seconds,
        p50: at(0.5),
        p99: at(0.99),
        health,
        attack: attack.map(|stats| AttackFigures {
            opened: stats.opened.load(Ordering::Relaxed),
            refused: stats.refused.load(Ordering::Relaxed),
            timed_out: stats.timed_out.load(Ordering::Relaxed),
        }),
        cpu,
    })
}

/// A database of the bench's own on `server`: its URL and name.
async fn scratch_database(server: &str) -> anyhow::Result<(String, String)> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .context("the --postgres server")?;
    tokio::spawn(connection);
    let name = format!("exdisco_bench_{}_{}", std::process::id(), fastrand::u32(..));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let mut url = url::Url::parse(server)?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

async fn drop_database(server: &str, name: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(server, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        // The daemons' pools are gone with them; WITH (FORCE) ends what lingers.
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

#[derive(Default)]
struct AttackStats {
    opened: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

/// One attacking connection after another from 127.0.0.2: a 60 kB body announced, one byte
/// every 2 s.
async fn slow_body(target: SocketAddr, stats: Arc<AttackStats>, stop: CancellationToken) {
    let request = format!(
        "POST /connect/authorize HTTP/1.1\r\nHost: {target}\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n"
    );
    while !stop.is_cancelled() {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).is_err() {
            return;
        }
        let Ok(mut stream) = socket.connect(target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        stats.opened.fetch_add(1, Ordering::Relaxed);
        if stream.write_all(request.as_bytes()).await.is_err() {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut answer = [0u8; 16];
        loop {
            tokio::select! {
                read = stream.read(&mut answer) => {
                    match read {
                        Ok(n) if n >= 12 && answer.starts_with(b"HTTP/1.1 408") => {
                            stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(0) | Err(_) => {
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                            // Closed without an answer: the per-source cap. Try again soon.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Ok(_) => {}
                    }
                    break;
                }
                () = tokio::time::sleep(Duration::from_secs(2)) => {
                    if stream.write_all(b" ").await.is_err() {
                        break;
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

/// `GET /healthz` every 100 ms from 127.0.0.3: (answered within a second, asked).
async fn probe_health(target: SocketAddr, stop: CancellationToken) -> (u64, u64) {
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from([127, 0, 0, 3]))
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return (0, 0);
    };
    let url = format!("http://{target}/healthz");
    let (mut answered, mut asked) = (0, 0);
    while !stop.is_cancelled() {
        asked += 1;
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (answered, asked)
}
