//! Figure 8: authorize + token flows by where the state lives: the SQLite file, then
//! PostgreSQL with one daemon and with two (in this process, each on its own listener, the
//! flows alternating), with the CPU of this process and of a local PostgreSQL server.

use std::io::Write;

use super::{BenchArgs, World, api, ms};

/// Prints figure 8.
pub(super) async fn figure(
    args: &BenchArgs,
    world: &World,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let window = args.api_window();
    let mut runs = vec![("SQLite, 1 daemon", None, 1)];
    if let Some(server) = &args.postgres {
        runs.push(("PostgreSQL, 1 daemon", Some(server.clone()), 1));
        runs.push(("PostgreSQL, 2 daemons", Some(server.clone()), 2));
    }
    writeln!(
        out,
        "8. authorize + token, {} at once for {} s, by where the state lives (CPU: this process: daemons, fake server, clients):",
        args.api_clients,
        window.as_secs()
    )?;
    for (name, postgres, count) in runs {
        let instances = api::Instances { postgres, count };
        let server_before = postgres_cpu_seconds();
        let figures = api::authorize_flows(world, args.api_clients, window, 0, &instances).await?;
        let per_100 = |cpu: f64| cpu * 100.0 / figures.flows.max(1) as f64;
        let server = if instances.postgres.is_some() {
            format!(
                ", PostgreSQL server (if local) {:.2}",
                per_100(postgres_cpu_seconds() - server_before)
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "   {name}: {:.1} flows/s ({} flows), p50 {:.1} ms, p99 {:.1} ms; CPU s per 100 flows: this process {:.2}{server}",
            figures.flows as f64 / figures.seconds,
            figures.flows,
            ms(figures.p50),
            ms(figures.p99),
            per_100(figures.cpu),
        )?;
    }
    Ok(())
}

/// CPU seconds of every `postgres` process on this machine, and of the backends they reaped
/// (a local server's whole cost; 0 without one).
fn postgres_cpu_seconds() -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.split_once(") ") else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        // utime, stime, cutime, cstime: fields 14 to 17, 12 to 15 after the name.
        let fields: Vec<&str> = rest.split(' ').collect();
        total += fields
            .get(11..15)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.parse::<f64>().ok())
            .sum::<f64>()
            / ticks;
    }
    total
}
