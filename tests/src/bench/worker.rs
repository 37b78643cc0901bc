//! The real `worker` binary, started as a separate process next to this executable, its
//! environment pointing at a bench world; stopped with SIGTERM.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use tokio::process::{Child, Command};

use super::{env::BenchEnv, procfs};

/// The `worker` executable next to this one (`target/release/worker` for `target/release/bench`).
pub fn worker_exe() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = me.parent().context("this executable has no directory")?;
    let exe = dir.join("worker");
    if !exe.is_file() {
        anyhow::bail!(
            "the worker binary is missing: expected {} (the bench runs it as a separate process); \
             build it first: cargo build --release -p worker -p tests",
            exe.display()
        );
    }
    Ok(exe)
}

pub struct WorkerProc {
    child: Child,
    pid: u32,
    log_path: PathBuf,
}

/// How a wait that also watched the worker ended.
pub enum Watched<T> {
    Done(T),
    TimedOut,
    WorkerDied,
}

impl WorkerProc {
    /// Starts a worker on `env` and waits until its `/healthz` answers.
    pub async fn start(exe: &Path, env: &BenchEnv, concurrency: usize) -> anyhow::Result<Self> {
        Self::start_with(exe, env, concurrency, &[]).await
    }

    /// `start`, with more environment variables for the worker.
    pub async fn start_with(
        exe: &Path,
        env: &BenchEnv,
        concurrency: usize,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
            probe.local_addr()?.port()
        };
        // Several workers may run on one bench world (`scale`): each gets its own log.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let nth = STARTED.fetch_add(1, Ordering::Relaxed);
        let log_path = std::env::temp_dir().join(format!("fbtr_bench_{}_worker{nth}.log", env.id));
        let log = std::fs::File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let c = &env.config;
        let mut cmd = Command::new(exe);
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("DATABASE_URL", c.database_url.expose())
            .env("REDIS_URL", c.redis_url.expose())
            .env("REDIS_KEY_PREFIX", &c.redis_key_prefix)
            .env("FB_GRAPH_URL", &c.fb_graph_url)
            .env("WORKER_CONCURRENCY", concurrency.to_string())
            .env("WORKER_METRICS_BIND", format!("127.0.0.1:{port}"))
            .env("FB_HTTP_TIMEOUT_SECS", "20")
            .env("SHUTDOWN_GRACE_SECS", "10")
            .env("RUST_LOG", "warn");
        if let Some(k) = &c.encryption {
            cmd.env("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", k.primary_key.expose())
                .env("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", k.deterministic_key.expose())
                .env("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", k.key_derivation_salt.expose());
        }
        if let Some(app_id) = &c.fb_app_id {
            cmd.env("FB_APP_ID", app_id);
        }
        if let Some(secret) = &c.fb_app_secret {
            cmd.env("FB_APP_SECRET", secret.expose());
        }
        cmd.envs(extra.iter().copied());
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("start {}", exe.display()))?;
        let pid = child.id().context("the worker exited at once")?;
        let mut worker = Self { child, pid, log_path };
        worker.wait_ready(port).await?;
        Ok(worker)
    }

    async fn wait_ready(&mut self, port: u16) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the worker exited while starting ({status}); its log:\n{}", self.log_tail(20));
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the worker did not answer {url} within 60 s; its log:\n{}", self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resolves when the worker process has exited.
    pub async fn died(&mut self) {
        while self.alive() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `fut` for at most `limit`, giving up early when the worker dies.
    pub async fn watch<T>(&mut self, limit: Duration, fut: impl Future<Output = T>) -> Watched<T> {
        tokio::select! {
            r = tokio::time::timeout(limit, fut) => match r {
                Ok(v) => Watched::Done(v),
                Err(_) => Watched::TimedOut,
            },
            () = self.died() => Watched::WorkerDied,
        }
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        procfs::peak_rss_mib(&self.pid.to_string())
    }

    /// The last `n` lines the worker wrote to stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM (`kill -TERM`), then waits for the exit (SIGKILL after 30 s). Removes the log when
    /// the worker exited cleanly; otherwise says where it is.
    pub async fn stop(mut self) -> Option<ExitStatus> {
        if self.alive() {
            let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        }
        let status = match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        if status.is_some_and(|s| s.success()) {
            let _ = std::fs::remove_file(&self.log_path);
        } else {
            eprintln!("[bench] the worker did not exit cleanly ({status:?}); its log: {}", self.log_path.display());
        }
        status
    }
}

/// Several worker processes on one bench world (`scale`), watched and stopped together.
pub struct Workers {
    procs: Vec<WorkerProc>,
}

impl Workers {
    /// Starts `count` workers, one after another (each waits for its `/healthz`); on an error the
    /// ones already started are stopped.
    pub async fn start(exe: &Path, env: &BenchEnv, concurrency: usize, count: usize) -> anyhow::Result<Self> {
        let mut procs = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            match WorkerProc::start(exe, env, concurrency).await {
                Ok(p) => procs.push(p),
                Err(e) => {
                    for p in procs {
                        p.stop().await;
                    }
                    return Err(e.context(format!("start worker {} of {count}", i + 1)));
                }
            }
        }
        Ok(Self { procs })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(WorkerProc::pid).collect()
    }

    pub fn all_alive(&mut self) -> bool {
        self.procs.iter_mut().all(WorkerProc::alive)
    }

    /// Runs `fut` for at most `limit`, giving up early when any worker dies.
    pub async fn watch<T>(&mut self, limit: Duration, fut: impl Future<Output = T>) -> Watched<T> {
        let any_died = async {
            while self.all_alive() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            r = tokio::time::timeout(limit, fut) => match r {
                Ok(v) => Watched::Done(v),
                Err(_) => Watched::TimedOut,
            },
            () = any_died => Watched::WorkerDied,
        }
    }

    /// The highest peak RSS of any of them, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.procs.iter().filter_map(WorkerProc::peak_rss_mib).reduce(f64::max)
    }

    /// Stops them all (concurrently); true when every one exited cleanly.
    pub async fn stop(self) -> (bool, Vec<Option<String>>) {
        let exits = futures::future::join_all(self.procs.into_iter().map(WorkerProc::stop)).await;
        let clean = exits.iter().all(|e| e.is_some_and(|s| s.success()));
        (clean, exits.into_iter().map(|e| e.map(|s| s.to_string())).collect())
    }
}
