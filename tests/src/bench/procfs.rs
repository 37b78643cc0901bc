//! What `/proc` says about memory and CPU time: the worker's peak RSS, and where CPU time went
//! (worker, this process, Postgres, Redis, the whole machine).

use std::{sync::OnceLock, time::Instant};

use serde_json::{Value, json};

/// `VmHWM` (peak resident set) of `pid` ("self" for this process), in MiB.
pub fn peak_rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kib / 1024.0, 1))
}

/// Clock ticks per second for `/proc/*/stat` times (`getconf CLK_TCK`, 100 when unknown).
fn ticks_per_sec() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// (comm, utime + stime, cutime + cstime) in ticks, from `/proc/{pid}/stat`.
fn stat(pid: &str) -> Option<(String, u64, u64)> {
    let raw = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = raw.find('(')?;
    let close = raw.rfind(')')?;
    let comm = raw.get(open + 1..close)?.to_owned();
    // Fields after the comm start at field 3 (state); utime is field 14.
    let rest: Vec<&str> = raw.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some((comm, field(14)? + field(15)?, field(16)? + field(17)?))
}

/// CPU seconds used by `pid` itself.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    stat(pid).map(|(_, own, _)| own as f64 / ticks_per_sec())
}

/// CPU seconds used by every process named one of `names`, reaped children included (Postgres
/// backends that ended are counted in the postmaster's).
fn cpu_secs_named(names: &[&str]) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    let ticks: u64 = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| stat(&pid))
        .filter(|(comm, _, _)| names.contains(&comm.as_str()))
        .map(|(_, own, children)| own + children)
        .sum();
    ticks as f64 / ticks_per_sec()
}

/// (busy, total) jiffies of all CPUs, and the number of CPUs, from `/proc/stat`.
fn machine() -> (u64, u64, usize) {
    let Ok(raw) = std::fs::read_to_string("/proc/stat") else { return (0, 0, 0) };
    let cores = raw.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count();
    let Some(line) = raw.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0, cores) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total, cores)
}

/// A snapshot of CPU counters; the difference of two says where the time between them went.
pub struct Usage {
    at: Instant,
    worker: f64,
    bench: f64,
    postgres: f64,
    redis: f64,
    busy: u64,
    total: u64,
    cores: usize,
}

impl Usage {
    /// `worker_pids`: the worker processes whose CPU time is summed as `worker_cpu_s`.
    pub fn take(worker_pids: &[u32]) -> Self {
        let (busy, total, cores) = machine();
        Self {
            at: Instant::now(),
            worker: worker_pids.iter().filter_map(|p| cpu_secs(&p.to_string())).sum(),
            bench: cpu_secs("self").unwrap_or(0.0),
            postgres: cpu_secs_named(&["postgres", "postmaster"]),
            redis: cpu_secs_named(&["redis-server"]),
            busy,
            total,
            cores,
        }
    }

    /// CPU seconds per party since `earlier`, the wall time, and how busy the machine was.
    pub fn since(&self, earlier: &Usage) -> Value {
        let d = |a: f64, b: f64| round((a - b).max(0.0), 2);
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        let total = self.total.saturating_sub(earlier.total);
        let busy_pct =
            if total == 0 { 0.0 } else { 100.0 * self.busy.saturating_sub(earlier.busy) as f64 / total as f64 };
        json!({
            "wall_s": round(wall, 2),
            "worker_cpu_s": d(self.worker, earlier.worker),
            "bench_cpu_s": d(self.bench, earlier.bench),
            "postgres_cpu_s": d(self.postgres, earlier.postgres),
            "redis_cpu_s": d(self.redis, earlier.redis),
            "machine_busy_pct": round(busy_pct, 1),
            "cores": self.cores,
        })
    }
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
