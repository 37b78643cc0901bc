//! Command-line flags, parsed by hand.

use std::time::Duration;

pub const USAGE: &str = "\
bench: throughput, latency and limits of the refresh service against the real worker binary

USAGE:
    cargo build --release -p worker -p tests && target/release/bench [FLAGS]

FLAGS:
    --channels N          channels in the cycle workload, inboxes in dashboard (default 100000;
                          --quick: 2000)
    --latency-ms N        Graph simulator latency per request (default 5)
    --concurrency N       the worker's WORKER_CONCURRENCY (default 32)
    --workloads LIST      comma-separated, run in this order (default all):
                            cycle       W1: one refresh cycle over --channels healthy channels
                            cycle-encrypted  the same cycle with both token columns Rails-encrypted
                                        as Chatwoot stores them (the cost of decryption)
                            storm-one   W2: --storm-reports send-failure reports about one channel
                            storm-many  W2: one report each for --storm-channels channels
                            latency     W3: report-to-new-token latency, idle and during a cycle
                            scale       W4: the cycle with --workers worker processes
                            limits      raw Redis round trips and Postgres UPDATEs per second
                            baseline    the cycle's work done plainly: 1 GET + 1 UPDATE per channel
                            watch       Chatwoot's own counter: the watcher's Redis cost over
                                        --channels channels, and --increments INCRs over
                                        --watch-secs, notice to refresh
                            dashboard   GET / at --channels inboxes (100 accounts), as the admin
                                        and as an account: first page, filters, searches, a
                                        later page, p50/p99 over --samples requests (min 50)
                          limits and baseline compare with the cycle when it ran before them
    --storm-reports N     reports in storm-one (default 100000; --quick: 2000)
    --storm-channels N    channels in storm-many (default 50000; --quick: 1000)
    --callers N           concurrent report callers in the storms (default 64)
    --samples N           latency samples per path and phase (default 200; --quick: 20)
    --workers LIST        worker process counts for scale (default 1,2,4; --quick: 1,2)
    --limit-ms N          duration of each limits measurement (default 3000; --quick: 300)
    --increments N        Chatwoot INCRs in watch (default 1000; --quick: 100)
    --watch-secs N        the time watch spreads them over (default 60; --quick: 5)
    --quick               small sizes, for a smoke test in CI
    --json                print only the JSON lines (no table)
    -h, --help            this text

Each workload runs on a fresh database fbtr_bench_<random>, Redis key prefix bench:<random>: and
simulator, all dropped at the end. The worker binary must sit next to this executable. Exit status 1
when anything was lost or a worker died, 2 on bad flags or a missing worker binary.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Cycle,
    CycleEncrypted,
    StormOne,
    StormMany,
    Latency,
    Scale,
    Limits,
    Baseline,
    Watch,
    Dashboard,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::Cycle,
        Workload::CycleEncrypted,
        Workload::StormOne,
        Workload::StormMany,
        Workload::Latency,
        Workload::Scale,
        Workload::Limits,
        Workload::Baseline,
        Workload::Watch,
        Workload::Dashboard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Cycle => "cycle",
            Workload::CycleEncrypted => "cycle-encrypted",
            Workload::StormOne => "storm-one",
            Workload::StormMany => "storm-many",
            Workload::Latency => "latency",
            Workload::Scale => "scale",
            Workload::Limits => "limits",
            Workload::Baseline => "baseline",
            Workload::Watch => "watch",
            Workload::Dashboard => "dashboard",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub channels: usize,
    pub latency: Duration,
    pub concurrency: usize,
    pub workloads: Vec<Workload>,
    pub storm_reports: usize,
    pub storm_channels: usize,
    pub callers: usize,
    /// Latency samples per path (report, front) and phase (idle, during a cycle).
    pub samples: usize,
    /// Worker process counts for `scale`.
    pub worker_counts: Vec<usize>,
    /// How long each `limits` measurement runs.
    pub limit_time: Duration,
    /// Chatwoot increments in `watch`, and the time they are spread over.
    pub increments: usize,
    pub watch_time: Duration,
    pub quick: bool,
    pub json_only: bool,
}

pub enum Parsed {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name. `--flag value` and `--flag=value` both work.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut channels = None;
    let mut storm_reports = None;
    let mut storm_channels = None;
    let mut latency_ms = 5u64;
    let mut concurrency = 32usize;
    let mut callers = 64usize;
    let mut samples = None;
    let mut worker_counts = None;
    let mut limit_ms = None;
    let mut increments = None;
    let mut watch_secs = None;
    let mut workloads = Workload::ALL.to_vec();
    let (mut quick, mut json_only) = (false, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--quick" => quick = true,
            "--json" => json_only = true,
            "--channels" => channels = Some(number(&flag, &value(&flag)?, 1)?),
            "--storm-reports" => storm_reports = Some(number(&flag, &value(&flag)?, 1)?),
            "--storm-channels" => storm_channels = Some(number(&flag, &value(&flag)?, 1)?),
            "--latency-ms" => latency_ms = number(&flag, &value(&flag)?, 0)? as u64,
            "--concurrency" => {
                concurrency = number(&flag, &value(&flag)?, 1)?;
                if concurrency > 10_000 {
                    return Err("--concurrency must be 1..=10000 (WORKER_CONCURRENCY)".into());
                }
            }
            "--callers" => callers = number(&flag, &value(&flag)?, 1)?,
            "--samples" => samples = Some(number(&flag, &value(&flag)?, 1)?),
            "--limit-ms" => limit_ms = Some(number(&flag, &value(&flag)?, 10)? as u64),
            "--increments" => increments = Some(number(&flag, &value(&flag)?, 1)?),
            "--watch-secs" => watch_secs = Some(number(&flag, &value(&flag)?, 1)? as u64),
            "--workers" => {
                let raw = value(&flag)?;
                let mut counts = Vec::new();
                for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let n = number(&flag, part, 1)?;
                    if n > 16 {
                        return Err("--workers: at most 16 worker processes".into());
                    }
                    if !counts.contains(&n) {
                        counts.push(n);
                    }
                }
                if counts.is_empty() {
                    return Err("--workers names no count".into());
                }
                worker_counts = Some(counts);
            }
            "--workloads" => {
                let raw = value(&flag)?;
                workloads = Vec::new();
                for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let w = Workload::parse(name)
                        .ok_or_else(|| format!("unknown workload {name:?} (expected one of {})", names()))?;
                    if !workloads.contains(&w) {
                        workloads.push(w);
                    }
                }
                if workloads.is_empty() {
                    return Err("--workloads names no workload".into());
                }
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let (d_channels, d_reports, d_storm_channels) =
        if quick { (2_000, 2_000, 1_000) } else { (100_000, 100_000, 50_000) };
    Ok(Parsed::Run(Options {
        channels: channels.unwrap_or(d_channels),
        latency: Duration::from_millis(latency_ms),
        concurrency,
        workloads,
        storm_reports: storm_reports.unwrap_or(d_reports),
        storm_channels: storm_channels.unwrap_or(d_storm_channels),
        callers,
        samples: samples.unwrap_or(if quick { 20 } else { 200 }),
        worker_counts: worker_counts.unwrap_or_else(|| if quick { vec![1, 2] } else { vec![1, 2, 4] }),
        limit_time: Duration::from_millis(limit_ms.unwrap_or(if quick { 300 } else { 3_000 })),
        increments: increments.unwrap_or(if quick { 100 } else { 1_000 }),
        watch_time: Duration::from_secs(watch_secs.unwrap_or(if quick { 5 } else { 60 })),
        quick,
        json_only,
    }))
}

fn names() -> String {
    Workload::ALL.map(Workload::name).join(", ")
}

fn number(flag: &str, raw: &str, min: usize) -> Result<usize, String> {
    let n: usize = raw.trim().replace('_', "").parse().map_err(|_| format!("{flag}: {raw:?} is not a number"))?;
    if n < min {
        return Err(format!("{flag} must be at least {min}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().map(|s| s.to_string())) {
            Ok(Parsed::Run(o)) => o,
            Ok(Parsed::Help) => panic!("help"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_quick_and_overrides() {
        let d = run(&[]);
        assert_eq!((d.channels, d.storm_reports, d.storm_channels, d.concurrency), (100_000, 100_000, 50_000, 32));
        assert_eq!(d.workloads, Workload::ALL.to_vec());
        let q = run(&["--quick", "--json"]);
        assert_eq!((q.channels, q.storm_reports, q.storm_channels), (2_000, 2_000, 1_000));
        assert!(q.json_only);
        assert_eq!((q.samples, q.worker_counts.clone(), q.limit_time), (20, vec![1, 2], Duration::from_millis(300)));
        assert_eq!((d.samples, d.worker_counts.clone()), (200, vec![1, 2, 4]));
        let w = run(&["--workloads=latency,scale,limits,baseline", "--workers", "4,1,4", "--samples=5"]);
        assert_eq!(w.workloads, vec![Workload::Latency, Workload::Scale, Workload::Limits, Workload::Baseline]);
        assert_eq!((w.worker_counts, w.samples), (vec![4, 1], 5));
        assert!(parse(["--workers".to_string(), "0".to_string()]).is_err());
        let o = run(&["--channels=500", "--latency-ms", "0", "--workloads", "storm-many,cycle"]);
        assert_eq!(o.channels, 500);
        assert_eq!(o.latency, Duration::ZERO);
        assert_eq!(o.workloads, vec![Workload::StormMany, Workload::Cycle]);
        assert!(parse(["--workloads".to_string(), "nope".to_string()]).is_err());
        assert!(parse(["--channels".to_string()]).is_err());
        assert_eq!(
            (d.increments, d.watch_time, q.increments, q.watch_time),
            (1_000, Duration::from_secs(60), 100, Duration::from_secs(5))
        );
        let w = run(&["--workloads=watch", "--increments=10", "--watch-secs", "2"]);
        assert_eq!((w.workloads, w.increments, w.watch_time), (vec![Workload::Watch], 10, Duration::from_secs(2)));
    }
}
