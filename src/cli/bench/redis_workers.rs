//! Figure 7: the mix through Redis Streams, drained by 1 and then 2 `exdisco batch --queue`
//! processes, against the file runner at the same concurrency: the throughput ratio, and what
//! the queue costs per job (the workers' CPU and Redis's own).

use std::time::{Duration, Instant};

use anyhow::Context;
use exdisco::queue::redis::{RedisConfig, RedisQueue};

use super::child::{Launcher, Usage};
use super::mix::{self, Tally};

/// What one drain measured.
pub struct Drain {
    /// Seconds from the workers' start to the last result.
    pub seconds: f64,
    /// CPU seconds of the workers together.
    pub cpu: f64,
    /// CPU seconds of the Redis server meanwhile.
    pub redis_cpu: f64,
    /// The largest worker's peak, MiB.
    pub peak_mib: f64,
    /// The results, checked.
    pub tally: Tally,
}

/// Drains `domains` domains of the mix with `workers` processes of `concurrency` each. The
/// database of `url` is emptied first.
pub async fn drain(
    launcher: &Launcher,
    url: &str,
    domains: usize,
    workers: usize,
    concurrency: usize,
) -> anyhow::Result<Drain> {
    let client = redis::Client::open(url).context("a redis:// URL")?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut connection)
        .await?;
    let queue = RedisQueue::connect(url, RedisConfig::default()).await?;
    let jobs: Vec<(u64, String)> = mix::addresses(domains)
        .enumerate()
        .map(|(i, address)| (i as u64 + 1, address))
        .collect();
    for chunk in jobs.chunks(1000) {
        queue.enqueue(chunk).await?;
    }
    let redis_before = redis_cpu(&mut connection).await?;
    let concurrency = concurrency.to_string();
    let started = Instant::now();
    let running = (0..workers)
        .map(|_| launcher.batch(&["--queue", url, "--concurrency", &concurrency]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limit = Duration::from_secs(1800);
    loop {
        let (_, results, dead) = queue.lengths().await?;
        if results + dead >= domains as u64 {
            break;
        }
        anyhow::ensure!(started.elapsed() < limit, "the workers did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let redis_cpu = redis_cpu(&mut connection).await? - redis_before;
    for worker in &running {
        worker.terminate();
    }
    let mut usage = Vec::new();
    for worker in running {
        usage.push(worker.wait().await?);
    }
    let mut tally = Tally::default();
    let mut from = "-".to_owned();
    loop {
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("exdisco:results")
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        let Some(last) = page.ids.last() else { break };
        from = format!("({}", last.id);
        for entry in &page.ids {
            let result: String = entry.get("result").unwrap_or_default();
            tally.check(result.as_bytes());
        }
    }
    let dead = queue.lengths().await?.2 as usize;
    tally.wrong += dead;
    Ok(Drain {
        seconds,
        cpu: usage.iter().map(|u: &Usage| u.cpu).sum(),
        redis_cpu,
        peak_mib: usage.iter().map(|u| u.peak_mib).fold(0.0, f64::max),
        tally,
    })
}

/// The Redis server's user plus system CPU seconds (`INFO cpu`).
async fn redis_cpu(connection: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(connection)
        .await?;
    Ok(info
        .lines()
        .filter(|line| line.starts_with("used_cpu_user:") || line.starts_with("used_cpu_sys:"))
        .filter_map(|line| line.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum())
}
