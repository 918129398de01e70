//! Figure 6: a batch of domains as real lists are (security inventories, migrations,
//! platforms' sign-ups), through the same code as `exdisco batch`, at growing sizes, with every
//! result checked against the fleet's truth.
//!
//! The mix (fixed seed; the shares are this bench's assumption, from what such lists hold):
//!
//! | kind | share | why it is there | truth |
//! | --- | --- | --- | --- |
//! | `nx` | 25% | typos, expired and made-up domains | no host |
//! | `web` | 20% | a web host answers every name and redirects everything to its home page | no host |
//! | `exo` | 20% | Exchange Online (its recorded POX answer) | provider office365 |
//! | `refused` | 10% | `autodiscover.` resolves, nothing listens | no host |
//! | `onprem` | 15% | on-premises Exchange: Autodiscover answers settings | `mail.DOMAIN` |
//! | `hoster` | 5% | hosted Exchange through the plain-HTTP redirect | needs consent |
//! | `slow` | 3% | a server that answers after 1.5 s | `mail.DOMAIN` |
//! | `hole` | 2% | a black hole: TLS completes, no answer ever | no host |

use std::time::{Duration, Instant};

use exdisco::batch::{BatchConfig, DomainCache, DoneLines, run_batch};
use exdisco::discovery::Pipeline;
use exdisco::fleet::{self, FLEET_IP, REFUSED_IP, Reply};
use tokio_util::sync::CancellationToken;

use super::World;

/// Exchange Online's own answer to a POX request, as recorded (fixtures/pox/o365-full.xml).
const EXO_ANSWER: &[u8] = include_bytes!("../../../fixtures/pox/o365-full.xml");

/// The kinds and their shares, in percent.
const KINDS: [(&str, u32); 8] = [
    ("nx", 25),
    ("web", 20),
    ("exo", 20),
    ("refused", 10),
    ("onprem", 15),
    ("hoster", 5),
    ("slow", 3),
    ("hole", 2),
];

/// What one size measured.
pub struct MixFigures {
    /// Domains.
    pub domains: usize,
    /// Seconds.
    pub seconds: f64,
    /// CPU seconds of the process.
    pub cpu: f64,
    /// Peak resident MiB.
    pub peak: f64,
    /// Results that disagree with the fleet's truth.
    pub wrong: usize,
}

/// The kind of domain `i` (a fixed, seeded draw).
fn kind_of(i: usize) -> &'static str {
    let mut rng = fastrand::Rng::with_seed(0x5eed ^ i as u64);
    let mut pick = rng.u32(0..100);
    for (kind, share) in KINDS {
        if pick < share {
            return kind;
        }
        pick -= share;
    }
    "nx"
}

fn domain_of(i: usize) -> String {
    match kind_of(i) {
        // Outside every wildcard of the fake DNS: NXDOMAIN.
        "nx" => format!("d{i}.mixgone.test"),
        kind => format!("d{i}.{kind}.mix.test"),
    }
}

/// Sets the mix up on `world`'s fleet and DNS.
pub fn install(world: &World) {
    world.dns.wildcard_a("refused.mix.test", REFUSED_IP);
    world.dns.wildcard_a("mix.test", FLEET_IP);
    world.dns.wildcard_a("mixhoster.test", FLEET_IP);
    world.fleet.hosts_under("mixhoster.test", |s| {
        if s.is_autodiscover() {
            Reply::status(401).header("WWW-Authenticate", "Basic realm=\"hoster\"")
        } else {
            Reply::status(404)
        }
    });
    world.fleet.hosts_under("mix.test", |s| {
        let labels: Vec<&str> = s.host.split('.').collect();
        let kind = labels
            .get(labels.len().saturating_sub(3))
            .copied()
            .unwrap_or("");
        let domain = labels[labels.len().saturating_sub(4)..].join(".");
        let mail = format!("mail.{domain}");
        match kind {
            "web" => Reply::redirect(302, &format!("https://www.{domain}/")),
            "exo" if s.is_autodiscover() => Reply::xml(EXO_ANSWER.to_vec()),
            "onprem" | "slow" if s.is_autodiscover() && s.tls => {
                let reply = Reply::xml(fleet::settings_answer(&mail));
                if kind == "slow" {
                    reply.delayed(Duration::from_millis(1500))
                } else {
                    reply
                }
            }
            "hoster" if !s.tls && s.is_autodiscover() => Reply::redirect(
                302,
                "https://autodiscover.mixhoster.test/autodiscover/autodiscover.xml",
            ),
            "hole" => Reply::status(200).delayed(Duration::from_secs(120)),
            _ => Reply::status(404),
        }
    });
}

/// Whether `record` (a batch output line) is what the fleet holds for its domain.
fn is_right(record: &serde_json::Value, i: usize) -> bool {
    let host = record["exchange_server_host"].as_str();
    let domain = domain_of(i);
    match kind_of(i) {
        "onprem" | "slow" => host == Some(format!("mail.{domain}").as_str()),
        "exo" => record["provider"] == "office365",
        "hoster" => {
            host.is_none() && record["needs_consent"]["host"] == "autodiscover.mixhoster.test"
        }
        _ => host.is_none(),
    }
}

/// One batch of `domains` domains of the mix, one address each, `concurrency` in flight.
pub async fn run(world: &World, domains: usize, concurrency: usize) -> anyhow::Result<MixFigures> {
    let pipeline = Pipeline::builder(world.config()).build()?;
    // As `exdisco batch` holds it.
    let cache = DomainCache::new(100_000, Duration::from_secs(3600));
    let input: String = (0..domains)
        .map(|i| format!("user{i}@{}\n", domain_of(i)))
        .collect();
    let mut config = BatchConfig::default();
    config.concurrency = concurrency.max(1);
    super::reset_peak_memory();
    let cpu_before = super::cpu_seconds();
    let started = Instant::now();
    // The results are checked as they are written, as a file would take them: none is kept.
    let mut output = Checker::default();
    run_batch(
        &pipeline,
        &cache,
        input.as_bytes(),
        &mut output,
        &DoneLines::default(),
        &config,
        &CancellationToken::new(),
        |_| {},
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = super::cpu_seconds() - cpu_before;
    let peak = super::peak_memory_mib();
    let wrong = output.wrong;
    Ok(MixFigures {
        domains,
        seconds,
        cpu,
        peak,
        wrong,
    })
}

/// An output that checks each result line against the truth as it is written.
#[derive(Default)]
struct Checker {
    partial: Vec<u8>,
    wrong: usize,
}

impl Checker {
    fn check(&mut self, line: &[u8]) {
        let right = serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|record| {
            let i = record["line"].as_u64().unwrap_or(0).saturating_sub(1) as usize;
            is_right(&record, i)
        });
        if !right {
            self.wrong += 1;
        }
    }
}

impl tokio::io::AsyncWrite for Checker {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.partial.extend_from_slice(bytes);
        while let Some(end) = this.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = this.partial.drain(..=end).collect();
            if line.len() > 1 {
                this.check(&line[..line.len() - 1]);
            }
        }
        std::task::Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
