//! Figure 9: what the sync check (Provision, FolderSync) costs next to the OPTIONS check, per
//! verification of an explicit host, against a fake ActiveSync server answering with Horde's
//! recorded bodies.

use std::time::{Duration, Instant};

use exdisco::discovery::activesync::sync::DeviceIdentity;
use exdisco::discovery::{KnownHost, Pipeline};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::fleet::{FLEET_IP, Reply};

use std::io::Write;

use super::{BenchArgs, World, ms};

/// One mode's figures.
pub struct VerifyFigures {
    /// Median milliseconds per verification.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Requests per verification.
    pub requests: f64,
    /// CPU milliseconds per verification (this process: client and fake server).
    pub cpu_ms: f64,
}

/// `rounds` verifications, one at a time, OPTIONS only and then with the sync check.
pub async fn options_and_sync(
    world: &World,
    rounds: usize,
) -> anyhow::Result<(VerifyFigures, VerifyFigures)> {
    world.dns.a("eas.sync-bench.test", FLEET_IP);
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "bench@sync-bench.test:bench-password"
        )
    );
    world.fleet.host("eas.sync-bench.test", move |s| {
        if s.authorization.as_deref() != Some(expected.as_str()) {
            return Reply::status(401).header("WWW-Authenticate", "Basic realm=\"bench\"");
        }
        match s.query_param("Cmd").as_deref() {
            Some("Provision") => {
                Reply::recorded(include_bytes!("../../../fixtures/horde/provision-200.http"))
            }
            Some("FolderSync") => Reply::recorded(include_bytes!(
                "../../../fixtures/horde/foldersync-200.http"
            )),
            _ => Reply::status(200)
                .header("MS-ASProtocolVersions", "2.5,12.0,12.1,14.0,14.1")
                .header("MS-ASProtocolCommands", "FolderSync,Provision,Sync"),
        }
    });
    let pipeline = Pipeline::builder(world.config()).build()?;
    let address = EmailAddress::parse("bench@sync-bench.test")?;
    let credentials = Credentials::new("bench@sync-bench.test", "bench-password");
    let identity = DeviceIdentity::for_account("bench@sync-bench.test");
    let mut figures = Vec::new();
    for sync in [false, true] {
        let requests_before = world.fleet.requests();
        let cpu_before = super::cpu_seconds();
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            let mut report = pipeline
                .known_host(
                    &address,
                    KnownHost::explicit("eas.sync-bench.test"),
                    Some(&credentials),
                )
                .await?;
            if sync {
                pipeline
                    .check_sync(&mut report, &credentials, &identity)
                    .await;
                anyhow::ensure!(
                    report
                        .sync
                        .as_ref()
                        .is_some_and(|s| s.code == "sync_confirmed"),
                    "the sync check failed: {:?}",
                    report.sync
                );
            }
            times.push(started.elapsed());
        }
        let cpu = super::cpu_seconds() - cpu_before;
        let requests = world.fleet.requests() - requests_before;
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        figures.push(VerifyFigures {
            p50: at(0.5),
            p99: at(0.99),
            requests: requests as f64 / rounds as f64,
            cpu_ms: cpu * 1000.0 / rounds as f64,
        });
    }
    let sync = figures.pop().expect("two modes");
    let options = figures.pop().expect("two modes");
    Ok((options, sync))
}

/// Prints figure 9.
pub(super) async fn figure(
    args: &BenchArgs,
    world: &World,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let rounds = if args.quick { 200 } else { 1000 };
    let (options, sync) = options_and_sync(world, rounds).await?;
    writeln!(
        out,
        "9. verification of an explicit host, {rounds} one at a time: OPTIONS {:.1} requests, p50 {:.2} ms, p99 {:.2} ms, {:.3} CPU ms; with the sync check {:.1} requests, p50 {:.2} ms, p99 {:.2} ms, {:.3} CPU ms ({:.1}x the time)",
        options.requests,
        ms(options.p50),
        ms(options.p99),
        options.cpu_ms,
        sync.requests,
        ms(sync.p50),
        ms(sync.p99),
        sync.cpu_ms,
        sync.p50.as_secs_f64() / options.p50.as_secs_f64().max(1e-9),
    )?;
    Ok(())
}
