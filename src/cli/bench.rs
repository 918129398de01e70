//! `exdisco bench`: the figures users choose a discovery tool for, measured on loopback
//! against the in-process fleet, each printed with the parameters that produced it.
//!
//! 1. Latency under a broken candidate: the root domain a black hole (accepts TCP, never
//!    answers) against the root domain refusing connections, and the black hole with the
//!    candidates run one after another, as most clients do.
//! 2. Peak memory of a batch of 100,000 queued addresses (first, on a fresh heap).
//! 3. Batch throughput over many domains with a network delay per request: discoveries per
//!    second, CPU time per discovery, peak memory; next to the machine's limit measured in the
//!    same run (TLS handshakes per second over handshakes per discovery).
//! 4. Lookups per second of a domain already in the cache.
//! 5. authorize + token flows per second against a fake ActiveSync server, p50 and p99, then
//!    the same under a slow-body attack from another address (`api`).
//! 6. A realistic mix of domains through the batch runner at growing sizes, every result
//!    checked against the fleet's truth (`mix`).

mod api;
mod child;
mod instances;
mod mix;
mod redis_workers;
mod sync;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exdisco::batch::{BatchConfig, DEFAULT_CONCURRENCY, DomainCache, DoneLines, run_batch};
use exdisco::discovery::{Config, Pipeline};
use exdisco::domain::EmailAddress;
use exdisco::fleet::{self, FLEET_IP, FakeDns, Fleet, REFUSED_IP, Reply, TestCa};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Smaller figures, for a quick look (1,000 addresses, 5 runs).
    #[arg(long)]
    quick: bool,
    /// Network delay added to every answer, in milliseconds.
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Addresses in the throughput batch.
    #[arg(long, default_value_t = 10_000)]
    addresses: usize,
    /// Domains they spread over.
    #[arg(long, default_value_t = 2_000)]
    domains: usize,
    /// Jobs in flight in the batch.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Discoveries per latency figure (the median is printed).
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// How long idle connections are kept, in milliseconds (default: the client's, 250 ms).
    #[arg(long)]
    pool_idle_ms: Option<u64>,
    /// How long the plain-HTTP redirect and SRV wait for the POX URLs, in milliseconds
    /// (default: the pipeline's, 200 ms; 0 runs every Autodiscover candidate at once).
    #[arg(long)]
    second_wave_ms: Option<u64>,
    /// Concurrent authorize + token loops of figure 5.
    #[arg(long, default_value_t = 100)]
    api_clients: usize,
    /// Slow-body connections of the attack in figure 5 (0: no attack run).
    #[arg(long, default_value_t = 300)]
    slow_bodies: usize,
    /// Seconds each run of figure 5 lasts (default: 12, quick: 3).
    #[arg(long)]
    api_seconds: Option<u64>,
    /// Batch sizes of figure 6, in domains (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    mix_sizes: Vec<usize>,
    /// Jobs in flight in figure 6 (comma-separated: each size runs at each; default:
    /// `exdisco batch`'s own default).
    #[arg(long, value_delimiter = ',')]
    mix_concurrency: Vec<usize>,
    /// Domains of the mix that a client one step at a time is timed on in figure 6 (0: none).
    #[arg(long, default_value_t = 200)]
    sequential_sample: usize,
    /// A Redis server for figure 7 (redis://HOST:PORT/DB; its database is emptied). Without
    /// it, figure 7 is skipped.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Domains of the mix in figure 7.
    #[arg(long, default_value_t = 10_000)]
    redis_domains: usize,
    /// Per-worker concurrencies of figure 7 (comma-separated): one that leaves the CPU
    /// partly idle, one where the CPU is the limit.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    redis_concurrency: Vec<usize>,
    /// A PostgreSQL server for figure 8 (postgres://USER@HOST:PORT/DB; a database of the
    /// bench's own is made there and dropped). Without it, figure 8 runs SQLite only.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Only these figures (repeatable; default: all).
    #[arg(long, value_enum)]
    only: Vec<Figure>,
}

/// The bench's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Figure {
    /// 1: latency under a broken candidate.
    Latency,
    /// 2: memory of 100,000 queued addresses.
    Memory,
    /// 3: batch throughput next to the machine's limit.
    Batch,
    /// 4: cache lookups.
    Cache,
    /// 5: authorize + token flows.
    Api,
    /// 6: a realistic mix of domains at growing sizes.
    Mix,
    /// 7: the mix through Redis Streams, 1 and 2 worker processes.
    Redis,
    /// 8: authorize + token flows on SQLite, and on PostgreSQL with 1 and 2 daemons.
    Instances,
    /// 9: what the sync check costs next to the OPTIONS check.
    Sync,
}

impl BenchArgs {
    /// How long each run of the flow figures (5, 8) lasts.
    fn api_window(&self) -> Duration {
        Duration::from_secs(self.api_seconds.unwrap_or(if self.quick { 3 } else { 12 }))
    }
}

pub(super) struct World {
    ca: Arc<TestCa>,
    dns: FakeDns,
    fleet: Fleet,
    pool_idle: Option<Duration>,
    second_wave: Option<Duration>,
}

impl World {
    async fn start(delay: Duration) -> Self {
        let ca = Arc::new(TestCa::new());
        let dns = FakeDns::start().await;
        let fleet = Fleet::start(ca.clone()).await;
        dns.wildcard_a("bench.test", FLEET_IP);
        dns.set_recording(false);
        fleet.set_recording(false);
        fleet.hosts_under("bench.test", move |s| {
            let reply = if s.is_autodiscover() && s.tls && s.host.split('.').count() <= 4 {
                let domain = s.host.strip_prefix("autodiscover.").unwrap_or(&s.host);
                Reply::xml(fleet::settings_answer(&format!("mail.{domain}")))
            } else if s.host.starts_with("mail.") && !s.is_autodiscover() {
                Reply::status(401).header("WWW-Authenticate", "Basic realm=\"bench\"")
            } else {
                Reply::status(404)
            };
            reply.delayed(delay)
        });
        Self {
            ca,
            dns,
            fleet,
            pool_idle: None,
            second_wave: None,
        }
    }

    fn config(&self) -> Config {
        let mut config = Config::default();
        config.dns.name_servers = vec![self.dns.addr];
        config.http.extra_roots = vec![self.ca.cert()];
        config.http.ports.https = self.fleet.addr.port();
        config.http.ports.http = self.fleet.addr.port();
        config.allow_nets = vec!["127.0.0.0/8".parse().expect("a valid network")];
        config.limits.per_host_per_second = 100_000;
        config.limits.per_host_burst = 100_000;
        if let Some(idle) = self.pool_idle {
            config.http.pool_idle = idle;
        }
        if let Some(delay) = self.second_wave {
            config.second_wave_delay = delay;
        }
        config
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    // The bench's own HTTP client (to the API) needs a process-wide TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (addresses, domains, runs) = if args.quick {
        (1_000, 200, 5)
    } else {
        (args.addresses, args.domains, args.runs)
    };
    let delay = Duration::from_millis(args.delay_ms);
    let mut world = World::start(delay).await;
    world.pool_idle = args.pool_idle_ms.map(Duration::from_millis);
    world.second_wave = args.second_wave_ms.map(Duration::from_millis);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "exdisco bench: loopback fleet, {} ms per answer, {} cores, idle connections kept {} ms, second wave after {} ms",
        args.delay_ms,
        cores(),
        world.config().http.pool_idle.as_millis(),
        world.config().second_wave_delay.as_millis()
    )?;
    writeln!(out)?;
    let wanted = |figure: Figure| args.only.is_empty() || args.only.contains(&figure);

    // 1. Latency under a broken candidate.
    if wanted(Figure::Latency) {
        world.fleet.black_hole("lat.bench.test");
        world.dns.set(
            "ref.bench.test",
            hickory_proto::rr::RecordType::A,
            fleet::Answer::Records(vec![hickory_proto::rr::RData::A(
                hickory_proto::rr::rdata::A(REFUSED_IP),
            )]),
        );
        // Interleaved, so that the machine's drift weighs on both alike.
        let (black_hole, refused) =
            median_pair(&world, "alice@lat.bench.test", "alice@ref.bench.test", runs).await?;
        let sequential =
            median_discovery(&world, "alice@lat.bench.test", runs.min(3), true).await?;
        writeln!(
            out,
            "1. latency, one discovery, median of {runs} (black hole: root accepts TCP, never answers)"
        )?;
        writeln!(
            out,
            "   root refuses connections      {:>9.1} ms",
            ms(refused)
        )?;
        writeln!(
            out,
            "   root is a black hole          {:>9.1} ms   ratio {:.2} (target <= 1.2)",
            ms(black_hole),
            ratio(black_hole, refused)
        )?;
        writeln!(
            out,
            "   black hole, one after another {:>9.1} ms   ({} runs; what concurrency buys: x{:.0})",
            ms(sequential),
            runs.min(3),
            ratio(sequential, black_hole)
        )?;
        writeln!(out)?;
    }

    // 2. Memory of 100,000 queued addresses over the domains (each discovered once, then shared),
    // 64 in flight: in-flight discoveries and their TLS connections are what weighs.
    if wanted(Figure::Memory) {
        reset_peak_memory();
        let memory_concurrency = args.concurrency.min(64);
        let queued = if args.quick { 20_000 } else { 100_000 };
        let (big, big_seconds) = batch(&world, queued, domains, memory_concurrency).await?;
        writeln!(
            out,
            "2. {} queued addresses over {domains} domains, {memory_concurrency} in flight: peak memory {:.1} MiB (target < 100), {:.0} addresses/s",
            big.done,
            peak_memory_mib(),
            big.done as f64 / big_seconds
        )?;
        writeln!(out)?;
    }

    // 3. Batch throughput, next to the machine's limit.
    if wanted(Figure::Batch) {
        let rounds = if args.quick { 1 } else { 3 };
        let mut results = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            results.push(throughput_round(&world, addresses, domains, args.concurrency).await?);
        }
        results.sort_by(|a, b| a.share().total_cmp(&b.share()));
        let shares: Vec<f64> = results.iter().map(Round::share).collect();
        let middle = &results[results.len() / 2];
        let Round {
            summary,
            seconds,
            cpu,
            peak,
            rate_before,
            rate_after,
            per_discovery,
        } = middle;
        let handshake_rate = middle.handshake_rate();
        let limit = middle.limit();
        let rate = summary.discoveries as f64 / seconds;
        writeln!(
            out,
            "3. batch: {addresses} addresses over {domains} domains, {} in flight (the median of {rounds} rounds)",
            args.concurrency
        )?;
        writeln!(
            out,
            "   {} found, {} discoveries in {:.1} s",
            summary.found, summary.discoveries, seconds
        )?;
        writeln!(out, "   discoveries per second        {:>9.1}", rate)?;
        writeln!(
            out,
            "   addresses per second          {:>9.1}",
            summary.done as f64 / seconds
        )?;
        writeln!(
            out,
            "   CPU per discovery             {:>9.2} ms   (client and fleet together)",
            cpu * 1000.0 / summary.discoveries.max(1) as f64
        )?;
        writeln!(
            out,
            "   peak memory                   {:>9.1} MiB  (process, fleet included)",
            peak
        )?;
        writeln!(
            out,
            "   machine limit: {:.0} TLS handshakes/s (client and fleet on the same cores; {:.0} before the round, {:.0} after), {:.1} per discovery",
            handshake_rate, rate_before, rate_after, per_discovery
        )?;
        writeln!(
            out,
            "   limit {:.1} discoveries/s; achieved {:.0}% of it (target >= 50%; rounds: {})",
            limit,
            100.0 * middle.share(),
            shares
                .iter()
                .map(|s| format!("{:.0}%", 100.0 * s))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out)?;
    }

    // 4. Cache lookups.
    if wanted(Figure::Cache) {
        let (lookups, cache_seconds) = cache_lookups(&world).await?;
        writeln!(
            out,
            "4. cache: {:.0} lookups/s of a cached domain ({lookups} in {:.2} s; target > 100,000)",
            lookups as f64 / cache_seconds,
            cache_seconds
        )?;
        writeln!(out)?;
    }

    // 5. The authorize API, calm and under attack.
    if wanted(Figure::Api) {
        let window = args.api_window();
        let calm = api::authorize_flows(
            &world,
            args.api_clients,
            window,
            0,
            &api::Instances::default(),
        )
        .await?;
        let flows_per_second = |f: &api::FlowFigures| f.flows as f64 / f.seconds;
        writeln!(
            out,
            "5. authorize + token with an explicit host, {} at once for {} s: {:.1} flows/s ({} flows), p50 {:.1} ms, p99 {:.1} ms; /healthz {}/{}",
            args.api_clients,
            window.as_secs(),
            flows_per_second(&calm),
            calm.flows,
            ms(calm.p50),
            ms(calm.p99),
            calm.health.0,
            calm.health.1,
        )?;
        if args.slow_bodies > 0 {
            let mut attacked = api::authorize_flows(
                &world,
                args.api_clients,
                window,
                args.slow_bodies,
                &api::Instances::default(),
            )
            .await?;
            let attack = attacked.attack.take().unwrap_or_default();
            writeln!(
                out,
                "   the same under {} slow-body connections from another address: {:.1} flows/s ({:.2} of calm), p50 {:.1} ms, p99 {:.1} ms; /healthz {}/{} answered within 1 s; attacker: {} connections, {} closed by the per-address cap, {} answered 408",
                args.slow_bodies,
                flows_per_second(&attacked),
                flows_per_second(&attacked) / flows_per_second(&calm).max(1e-9),
                ms(attacked.p50),
                ms(attacked.p99),
                attacked.health.0,
                attacked.health.1,
                attack.opened,
                attack.refused,
                attack.timed_out,
            )?;
        }
    }
    if wanted(Figure::Instances) {
        instances::figure(&args, &world, &mut out).await?;
    }
    if wanted(Figure::Sync) {
        sync::figure(&args, &world, &mut out).await?;
    }
    // 6. A realistic mix at growing sizes, through `exdisco batch` as its own process.
    if wanted(Figure::Mix) || wanted(Figure::Redis) {
        mix::install(&world);
    }
    if wanted(Figure::Mix) {
        let launcher = child::Launcher::new(&world)?;
        writeln!(
            out,
            "\n6. a realistic mix (25% no such domain, 20% web host, 20% Exchange Online, 10% refused, 15% on-premises, 5% hoster, 3% slow, 2% black hole), one address each, through `exdisco batch FILE --out FILE` as its own process (the fleet in this one)"
        )?;
        let concurrencies: Vec<Option<usize>> = if args.mix_concurrency.is_empty() {
            vec![None]
        } else {
            args.mix_concurrency.iter().copied().map(Some).collect()
        };
        // What a process costs before its first job (start, roots, resolver), measured on
        // an empty input and taken off the per-domain figures.
        let fixed = mix::run(&launcher, 0, None).await?.usage;
        writeln!(
            out,
            "   an empty input: {:.2} s, CPU {:.2} s, peak {:.1} MiB (the fixed cost, taken off the CPU per domain below)",
            fixed.seconds, fixed.cpu, fixed.peak_mib
        )?;
        let mut first_cost = None;
        let mut mean_seconds = 0.0;
        for &domains in &args.mix_sizes {
            for &concurrency in &concurrencies {
                let figures = mix::run(&launcher, domains, concurrency).await?;
                let usage = figures.usage;
                let cost = (usage.cpu - fixed.cpu).max(0.0) / figures.domains.max(1) as f64;
                let relative = cost / *first_cost.get_or_insert(cost);
                writeln!(
                    out,
                    "   {:>7} domains, {} in flight: {:.1} s, {:.0} domains/s, CPU {:.2} ms per domain (x{:.2} of the first; the fleet {:.2} more), peak {:.1} MiB; {} of {} results wrong",
                    figures.domains,
                    concurrency.map_or(format!("{DEFAULT_CONCURRENCY} (the default)"), |c| c
                        .to_string()),
                    usage.seconds,
                    figures.domains as f64 / usage.seconds,
                    cost * 1000.0,
                    relative,
                    figures.fleet_cpu * 1000.0 / figures.domains.max(1) as f64,
                    usage.peak_mib,
                    figures.tally.wrong,
                    figures.tally.results,
                )?;
                let all: Vec<f64> = figures.tally.seconds.values().flatten().copied().collect();
                mean_seconds = all.iter().sum::<f64>() / all.len().max(1) as f64;
            }
        }
        // What each kind costs on its own: a light run, where no discovery waits for a core.
        let mut light = mix::run(&launcher, 400, Some(4)).await?;
        let costs = light.tally.costs();
        writeln!(
            out,
            "   what each kind of domain costs, 400 domains 4 at a time (ms, p50/max; {} wrong): {costs}",
            light.tally.wrong,
        )?;
        if args.sequential_sample > 0 {
            let sample = args.sequential_sample;
            let (seconds, wrong) = mix::sequential_seconds(&world, sample).await?;
            let per_domain = seconds / sample as f64;
            writeln!(
                out,
                "   a client one step at a time (10 s timeouts, no deadline), the first {sample} domains: {:.1} s per domain ({wrong} wrong), so one at a time 100,000 take {:.1} h; exdisco's own discoveries: {:.2} s per domain (x{:.1} less)",
                per_domain,
                per_domain * 100_000.0 / 3600.0,
                mean_seconds,
                per_domain / mean_seconds.max(1e-9),
            )?;
        }
    }
    // 7. The mix through Redis Streams, 1 and 2 worker processes.
    if wanted(Figure::Redis) {
        figure_redis(&args, &world, &mut out).await?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn figure_redis(args: &BenchArgs, world: &World, out: &mut impl Write) -> anyhow::Result<()> {
    let domains = args.redis_domains;
    writeln!(
        out,
        "\n7. {domains} domains of the mix through Redis Streams (`exdisco batch --queue`), 1 and 2 worker processes, against the file runner"
    )?;
    let Some(url) = &args.redis else {
        writeln!(
            out,
            "   skipped: give --redis redis://HOST:PORT/DB (a database the bench may empty)"
        )?;
        return Ok(());
    };
    let launcher = child::Launcher::new(world)?;
    for &concurrency in &args.redis_concurrency {
        let file = mix::run(&launcher, domains, Some(concurrency)).await?;
        let one = redis_workers::drain(&launcher, url, domains, 1, concurrency).await?;
        let two = redis_workers::drain(&launcher, url, domains, 2, concurrency).await?;
        let per_job = |cpu: f64| cpu * 1000.0 / domains.max(1) as f64;
        let file_cpu = per_job(file.usage.cpu);
        writeln!(
            out,
            "   {concurrency} in flight per process: file {:.1} s ({:.0}/s, CPU {:.2} ms/job); 1 worker {:.1} s ({:.0}/s, CPU {:.2} ms/job + redis {:.2}); 2 workers {:.1} s ({:.0}/s, CPU {:.2} ms/job + redis {:.2}); 2 workers / 1: x{:.2}; the queue's overhead {:.2} ms CPU per job (workers {:+.2}, redis {:.2}); wrong {}/{}/{}; peak per worker {:.0} MiB",
            file.usage.seconds,
            domains as f64 / file.usage.seconds,
            file_cpu,
            one.seconds,
            domains as f64 / one.seconds,
            per_job(one.cpu),
            per_job(one.redis_cpu),
            two.seconds,
            domains as f64 / two.seconds,
            per_job(two.cpu),
            per_job(two.redis_cpu),
            one.seconds / two.seconds,
            per_job(one.cpu) - file_cpu + per_job(one.redis_cpu),
            per_job(one.cpu) - file_cpu,
            per_job(one.redis_cpu),
            file.tally.wrong,
            one.tally.wrong,
            two.tally.wrong,
            one.peak_mib.max(two.peak_mib),
        )?;
    }
    Ok(())
}

/// One throughput round: the limit just before and just after the batch, so that the
/// machine's drift weighs on both sides alike.
struct Round {
    summary: exdisco::batch::Summary,
    seconds: f64,
    cpu: f64,
    peak: f64,
    rate_before: f64,
    rate_after: f64,
    per_discovery: f64,
}

impl Round {
    /// Handshakes per second, the mean of the two measurements around the round.
    fn handshake_rate(&self) -> f64 {
        (self.rate_before + self.rate_after) / 2.0
    }

    fn limit(&self) -> f64 {
        self.handshake_rate() / self.per_discovery.max(1.0)
    }

    fn share(&self) -> f64 {
        self.summary.discoveries as f64 / self.seconds / self.limit()
    }
}

async fn throughput_round(
    world: &World,
    addresses: usize,
    domains: usize,
    concurrency: usize,
) -> anyhow::Result<Round> {
    let rate_before = handshake_rate(world, Duration::from_secs(1)).await?;
    let before = (fleet::https::handshakes(), cpu_seconds());
    reset_peak_memory();
    let (summary, seconds) = batch(world, addresses, domains, concurrency).await?;
    let handshakes = fleet::https::handshakes() - before.0;
    let cpu = cpu_seconds() - before.1;
    let peak = peak_memory_mib();
    let rate_after = handshake_rate(world, Duration::from_secs(1)).await?;
    Ok(Round {
        per_discovery: handshakes as f64 / summary.discoveries.max(1) as f64,
        summary,
        seconds,
        cpu,
        peak,
        rate_before,
        rate_after,
    })
}

async fn median_pair(
    world: &World,
    first: &str,
    second: &str,
    runs: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs.max(1) {
        a.push(median_discovery(world, first, 1, false).await?);
        b.push(median_discovery(world, second, 1, false).await?);
    }
    a.sort();
    b.sort();
    Ok((a[a.len() / 2], b[b.len() / 2]))
}

async fn median_discovery(
    world: &World,
    address: &str,
    runs: usize,
    sequential: bool,
) -> anyhow::Result<Duration> {
    let address = EmailAddress::parse(address)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let mut config = world.config();
        config.sequential = sequential;
        // A fresh pipeline each time: no pooled connection, no cached DNS answer.
        let pipeline = Pipeline::builder(config).build()?;
        let started = Instant::now();
        let report = pipeline.discover(&address, None).await;
        times.push(started.elapsed());
        anyhow::ensure!(
            report.is_found(),
            "the latency world is broken: {:?}",
            report.error
        );
    }
    times.sort();
    Ok(times[times.len() / 2])
}

async fn batch(
    world: &World,
    addresses: usize,
    domains: usize,
    concurrency: usize,
) -> anyhow::Result<(exdisco::batch::Summary, f64)> {
    let pipeline = Pipeline::builder(world.config()).build()?;
    let cache = DomainCache::new(domains * 2, Duration::from_secs(3600));
    let input: String = (0..addresses)
        .map(|i| format!("user{i}@d{}.bench.test\n", i % domains.max(1)))
        .collect();
    let mut config = BatchConfig::default();
    config.concurrency = concurrency.max(1);
    // The fleet's servers hold their certificates before the clock starts, as real ones do
    // (the handshake limit below is measured with a certificate made beforehand, too).
    world
        .fleet
        .prepare_certificates((0..domains.max(1)).flat_map(|i| {
            ["", "autodiscover.", "mail."].map(|prefix| format!("{prefix}d{i}.bench.test"))
        }));
    let started = Instant::now();
    let summary = run_batch(
        &pipeline,
        &cache,
        input.as_bytes(),
        &mut tokio::io::sink(),
        &DoneLines::default(),
        &config,
        &CancellationToken::new(),
        |_| {},
    )
    .await?;
    Ok((summary, started.elapsed().as_secs_f64()))
}

async fn cache_lookups(world: &World) -> anyhow::Result<(u64, f64)> {
    let pipeline = Pipeline::builder(world.config()).build()?;
    let cache = DomainCache::new(16, Duration::from_secs(3600));
    let address = EmailAddress::parse("alice@d1.bench.test")?;
    cache.discover(&pipeline, &address).await;
    let lookups = 1_000_000u64;
    let started = Instant::now();
    for _ in 0..lookups {
        let (report, _) = cache.discover(&pipeline, &address).await;
        std::hint::black_box(report);
    }
    Ok((lookups, started.elapsed().as_secs_f64()))
}

async fn handshake_rate(world: &World, window: Duration) -> anyhow::Result<f64> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(world.ca.cert())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = world.fleet.addr;
    world
        .fleet
        .prepare_certificates(["hs.bench.test".to_owned()]);
    let deadline = Instant::now() + window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let connector = connector.clone();
        tasks.spawn(async move {
            let name =
                rustls::pki_types::ServerName::try_from("hs.bench.test").expect("a valid name");
            let mut done = 0u64;
            while Instant::now() < deadline {
                let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                if connector.connect(name.clone(), stream).await.is_ok() {
                    done += 1;
                }
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.unwrap_or(0);
    }
    Ok(total as f64 / window.as_secs_f64())
}

pub(super) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "{url}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(serde_json::from_slice(&bytes)?)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// User plus system CPU seconds of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // utime and stime, in clock ticks of 1/100 s
}

/// Resets the peak resident memory (Linux: `clear_refs` 5).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, in MiB.
fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
