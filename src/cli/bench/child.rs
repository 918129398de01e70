//! `exdisco batch` run as its own process against the bench's fleet, as a user runs it, so
//! that its memory and CPU are measured apart from the fleet's (which shares the cores, as
//! the servers of a real batch do not).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::World;

/// How to start `exdisco` processes that reach the fleet: the flags a user would give.
pub struct Launcher {
    exe: PathBuf,
    network: Vec<String>,
    /// A folder of this bench run (the CA file, inputs and outputs), removed on drop.
    pub dir: PathBuf,
}

/// What one process used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall-clock seconds from its start to its exit.
    pub seconds: f64,
    /// User plus system CPU seconds.
    pub cpu: f64,
    /// Peak resident memory, MiB.
    pub peak_mib: f64,
}

/// A started process.
pub struct Running {
    pid: libc::pid_t,
    started: Instant,
}

impl Launcher {
    /// A launcher for `world`'s fleet and name server.
    pub fn new(world: &World) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("exdisco-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, world.ca.pem())?;
        let port = world.fleet.addr.port().to_string();
        let network = vec![
            "--dns-server".to_owned(),
            world.dns.addr.to_string(),
            "--ca-file".to_owned(),
            ca.display().to_string(),
            "--allow-net".to_owned(),
            "127.0.0.0/8".to_owned(),
            "--https-port".to_owned(),
            port.clone(),
            "--http-port".to_owned(),
            port,
        ];
        Ok(Self {
            exe: std::env::current_exe().context("cannot find the exdisco binary")?,
            network,
            dir,
        })
    }

    /// Starts `exdisco batch ARGS... NETWORK-FLAGS`, its output discarded.
    pub fn batch(&self, args: &[&str]) -> anyhow::Result<Running> {
        let child = Command::new(&self.exe)
            .arg("batch")
            .args(args)
            .args(&self.network)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start exdisco batch")?;
        Ok(Running {
            pid: child.id() as libc::pid_t,
            started: Instant::now(),
        })
    }

    /// A path in this run's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Running {
    /// Asks the process to stop (SIGTERM), as an operator would.
    pub fn terminate(&self) {
        // SAFETY: `kill` has no memory effects; the pid is our unwaited child's.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
    }

    /// Waits for the exit, off the runtime's threads (the fleet keeps serving), and reads
    /// what the process used from the kernel's accounting of it (`wait4`).
    pub async fn wait(self) -> anyhow::Result<Usage> {
        let Running { pid, started } = self;
        tokio::task::spawn_blocking(move || {
            let mut status = 0;
            // SAFETY: a zeroed rusage is a valid value for the kernel to fill.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: both pointers are to live locals; the pid is our child's.
            let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            anyhow::ensure!(waited == pid, "cannot wait for exdisco batch");
            let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            anyhow::ensure!(exited_ok, "exdisco batch failed (status {status})");
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            Ok(Usage {
                seconds: started.elapsed().as_secs_f64(),
                cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
                peak_mib: usage.ru_maxrss as f64 / 1024.0, // KiB on Linux
            })
        })
        .await?
    }
}

/// Writes `lines` to `path`, one per line.
pub fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}
