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

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use exdisco::discovery::Pipeline;
use exdisco::domain::EmailAddress;
use exdisco::fleet::{self, FLEET_IP, REFUSED_IP, Reply};
use tokio::task::JoinSet;

use super::World;
use super::child::{Launcher, Usage, write_lines};

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
    /// What the `exdisco batch` process used.
    pub usage: Usage,
    /// CPU seconds of this process (the fleet and the DNS) meanwhile.
    pub fleet_cpu: f64,
    /// The results, checked.
    pub tally: Tally,
}

/// The kind of domain `i` (a fixed, seeded draw).
pub fn kind_of(i: usize) -> &'static str {
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

pub fn domain_of(i: usize) -> String {
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

/// Whether `record` (a result: a batch output line or a queue's result) is what the fleet
/// holds for domain `i`.
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

/// The input of a batch of `domains` domains of the mix, one address each.
pub fn addresses(domains: usize) -> impl Iterator<Item = String> {
    (0..domains).map(|i| format!("user{i}@{}", domain_of(i)))
}

/// Results checked against the truth, and what each kind of domain cost.
#[derive(Debug, Default)]
pub struct Tally {
    /// Results read.
    pub results: usize,
    /// Of those, not what the fleet holds (or unreadable).
    pub wrong: usize,
    /// Seconds of each discovery, by kind.
    pub seconds: BTreeMap<&'static str, Vec<f64>>,
}

impl Tally {
    /// Checks one result (JSON); its domain is known by its address, `user{i}@...`.
    pub fn check(&mut self, result: &[u8]) {
        self.results += 1;
        let record: serde_json::Value = serde_json::from_slice(result).unwrap_or_default();
        let index = record["email"]
            .as_str()
            .and_then(|email| email.strip_prefix("user")?.split('@').next()?.parse().ok());
        let Some(i) = index else {
            self.wrong += 1;
            return;
        };
        if !is_right(&record, i) {
            self.wrong += 1;
        }
        let seconds = record["seconds"].as_f64().unwrap_or(0.0);
        self.seconds.entry(kind_of(i)).or_default().push(seconds);
    }

    /// "kind p50/max" for every kind, in milliseconds.
    pub fn costs(&mut self) -> String {
        self.seconds
            .iter_mut()
            .map(|(kind, seconds)| {
                seconds.sort_by(f64::total_cmp);
                let p50 = seconds.get(seconds.len() / 2).copied().unwrap_or(0.0);
                let max = seconds.last().copied().unwrap_or(0.0);
                format!("{kind} {:.0}/{:.0}", p50 * 1000.0, max * 1000.0)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One batch of `domains` domains of the mix through `exdisco batch FILE --out FILE` as its
/// own process, `concurrency` in flight (none: its default); every output line checked.
pub async fn run(
    launcher: &Launcher,
    domains: usize,
    concurrency: Option<usize>,
) -> anyhow::Result<MixFigures> {
    let input = launcher.path("mix.txt");
    let output = launcher.path("mix.jsonl");
    write_lines(&input, addresses(domains))?;
    let _ = std::fs::remove_file(&output);
    let concurrency = concurrency.map(|c| c.to_string());
    let (input_arg, output_arg) = (input.display().to_string(), output.display().to_string());
    let mut args = vec![input_arg.as_str(), "--out", output_arg.as_str()];
    if let Some(concurrency) = &concurrency {
        args.extend(["--concurrency", concurrency.as_str()]);
    }
    let fleet_before = super::cpu_seconds();
    let usage = launcher.batch(&args)?.wait().await?;
    let fleet_cpu = super::cpu_seconds() - fleet_before;
    let mut tally = Tally::default();
    for line in std::io::BufReader::new(std::fs::File::open(&output)?).split(b'\n') {
        tally.check(&line?);
    }
    let _ = std::fs::remove_file(&output);
    Ok(MixFigures {
        domains,
        usage,
        fleet_cpu,
        tally,
    })
}

/// What a client that follows the protocol one step at a time, with the usual 10 s
/// timeouts and no deadline of its own, spends on the first `sample` domains of the mix:
/// the sum of their discoveries' durations (each is sequential; they are timed side by side,
/// `side_by_side` at once, which changes none of their durations on an idle fleet).
pub async fn sequential_seconds(world: &World, sample: usize) -> anyhow::Result<(f64, usize)> {
    let mut config = world.config();
    config.sequential = true;
    config.http.timeouts.connect = Duration::from_secs(10);
    config.http.timeouts.read = Duration::from_secs(10);
    config.http.timeouts.request = Duration::from_secs(10);
    config.dns.timeout = Duration::from_secs(10);
    config.deadline = Duration::from_secs(600);
    let pipeline = Pipeline::builder(config).build()?;
    let side_by_side = 64;
    let mut set: JoinSet<(f64, bool)> = JoinSet::new();
    let (mut total, mut wrong) = (0.0, 0);
    for (i, address) in addresses(sample).enumerate() {
        if set.len() >= side_by_side
            && let Some(done) = set.join_next().await
        {
            let (seconds, right) = done?;
            total += seconds;
            wrong += usize::from(!right);
        }
        let pipeline = pipeline.clone();
        set.spawn(async move {
            let address = EmailAddress::parse(&address).expect("a valid address");
            let started = Instant::now();
            let report = pipeline.discover(&address, None).await;
            let record = serde_json::to_value(&report).unwrap_or_default();
            (started.elapsed().as_secs_f64(), is_right(&record, i))
        });
    }
    while let Some(done) = set.join_next().await {
        let (seconds, right) = done?;
        total += seconds;
        wrong += usize::from(!right);
    }
    Ok((total, wrong))
}
