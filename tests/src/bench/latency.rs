//! `latency` (W3): from a report about a dead page token to the new token stored, through two
//! paths, alternately:
//! - `report`: `Intake::report` with an expired-token error (what the messaging service calls);
//!   the job is pushed ahead of the backlog, like the front path.
//! - `front`: `pending::enqueue_or_join(.., front = true)` (what `refresh-channel` and the
//!   API's refresh call do): the job goes ahead of the waiting backlog.
//!
//! A sample starts just before the call and ends when `queue::wait_for_report` returns the job's
//! settled report; the stored page token is then checked to have changed to one the simulator
//! accepts. Every sample uses its own channel with a dead, refreshable page token, seeded outside
//! any cycle, so each one is a real refresh (never `coalesced` into a cycle's batch).
//!
//! Phase `idle`: samples one after another, nothing else running. Phase `cycle`: a W1 cycle over
//! `--channels` channels runs on the same worker; once it is enqueued, samples start at a fixed
//! interval (open loop, each waits on its own) until every one is issued or the cycle is done.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::{StreamExt as _, stream::FuturesUnordered};
use serde_json::{Value, json};
use shared::{
    graph::GraphError,
    intake::{Decision, Intake},
    job::{JobOutcome, Reason, RefreshJob},
    pending::{self, Claimed},
    queue::{self, Waited},
};

use super::{
    args::Options,
    common::{Drainer, expired_token_report, percentile, say, secs},
    cycle::{CycleSignals, run_cycle, time_limit},
    env::BenchEnv,
    procfs::{self, round},
    report::{Outcome, Row, fixed, render_table},
    worker::Workers,
};

const KILL_MESSAGE: &str = "Error validating access token: Session has expired.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Report,
    Front,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Report => "report",
            Route::Front => "front",
        }
    }

    fn nth(i: usize) -> Self {
        if i.is_multiple_of(2) { Route::Report } else { Route::Front }
    }
}

#[derive(Debug, Clone)]
struct Target {
    channel: i64,
    page: String,
}

#[derive(Debug)]
struct Sample {
    path: Route,
    channel: i64,
    started_at: chrono::DateTime<Utc>,
    latency: Duration,
    /// What the call answered: `enqueued`, `coalesced`, `deferred`, `joined`, ...
    decision: &'static str,
    outcome: Option<JobOutcome>,
    /// Settled as `refreshed` and the stored token changed to a live one.
    refreshed: bool,
    error: Option<String>,
}

/// Seeds `n` channels, one page per user, and kills each page token (refreshable through the
/// user token).
async fn seed_targets(env: &BenchEnv, n: usize, first_page: u64) -> anyhow::Result<Vec<Target>> {
    let seeded = env.seed(n, first_page, 1).await?;
    for (page, user) in &seeded.pages {
        env.sim.kill_page_token(page, user, 190, Some(463), KILL_MESSAGE);
    }
    Ok(seeded
        .ids
        .iter()
        .zip(&seeded.pages)
        .map(|(&channel, (page, _))| Target { channel, page: page.clone() })
        .collect())
}

async fn stored_token(env: &BenchEnv, channel: i64) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT page_access_token FROM channel_facebook_pages WHERE id = $1")
        .bind(i32::try_from(channel)?)
        .fetch_one(&env.db)
        .await?)
}

async fn take_sample(
    env: &BenchEnv,
    intake: &Intake,
    error: &GraphError,
    path: Route,
    target: &Target,
    timeout: Duration,
) -> Sample {
    let mut sample = Sample {
        path,
        channel: target.channel,
        started_at: Utc::now(),
        latency: Duration::ZERO,
        decision: "error",
        outcome: None,
        refreshed: false,
        error: None,
    };
    let old = match stored_token(env, target.channel).await {
        Ok(t) => t,
        Err(e) => {
            sample.error = Some(format!("read the token: {e:#}"));
            return sample;
        }
    };
    let t0 = Instant::now();
    let job_id = match path {
        Route::Report => match intake.report(target.channel, error, Some(Utc::now())).await {
            Ok(d) => {
                sample.decision = d.name();
                match d {
                    Decision::Enqueued { job_id } | Decision::Coalesced { job_id } | Decision::Deferred { job_id } => {
                        job_id
                    }
                    Decision::AlreadyReplaced | Decision::NotAuth => {
                        sample.error = Some("the report started no refresh".into());
                        return sample;
                    }
                }
            }
            Err(e) => {
                sample.error = Some(format!("report: {e}"));
                return sample;
            }
        },
        Route::Front => {
            let job = RefreshJob::new(target.channel, Reason::Manual);
            let (mut storage, mut redis) = (env.storage(), env.redis.clone());
            match pending::enqueue_or_join(&mut storage, &mut redis, &env.config, job, true).await {
                Ok(Claimed::Enqueued(id)) => {
                    sample.decision = "enqueued";
                    id
                }
                Ok(Claimed::Joined(id)) => {
                    sample.decision = "joined";
                    id
                }
                Err(e) => {
                    sample.error = Some(format!("enqueue: {e}"));
                    return sample;
                }
            }
        }
    };
    let waited = queue::wait_for_report(&env.config, job_id, timeout).await;
    sample.latency = t0.elapsed();
    match waited {
        Ok(Waited::Settled(report)) => sample.outcome = Some(report.outcome),
        Ok(Waited::RetryScheduled(report)) => {
            sample.outcome = Some(report.outcome);
            sample.error = Some("not settled in time (a retry was scheduled)".into());
        }
        Ok(Waited::NoWorker) => sample.error = Some("no report in time".into()),
        Err(e) => sample.error = Some(format!("wait_for_report: {e}")),
    }
    if sample.outcome == Some(JobOutcome::Refreshed) {
        match stored_token(env, target.channel).await {
            Ok(new) => {
                sample.refreshed = new != old && env.sim.is_token_valid_for_page(&target.page, &new);
                if !sample.refreshed {
                    sample
                        .error
                        .get_or_insert_with(|| "reported refreshed, but the stored token did not change".into());
                }
            }
            Err(e) => sample.error = Some(format!("read the new token: {e:#}")),
        }
    } else if sample.error.is_none() {
        sample.error = Some(format!("settled as {:?}, not refreshed", sample.outcome));
    }
    sample
}

/// step, outcome, Graph latency (ms), committed this long after the sample started (ms).
type HistoryRow = (String, String, Option<i32>, f64);

/// The history of the slowest sample, so that a slow tail can be told apart (a retry, a wait for
/// a worker, a slow write): each row's time after the sample started.
async fn explain(env: &BenchEnv, sample: &Sample) {
    let rows: Result<Vec<HistoryRow>, _> = sqlx::query_as(
        "SELECT step, outcome, graph_latency_ms, (extract(epoch FROM created_at - $2) * 1000)::float8
         FROM fb_token_events WHERE channel_id = $1 ORDER BY id",
    )
    .bind(i32::try_from(sample.channel).unwrap_or(i32::MAX))
    .bind(sample.started_at)
    .fetch_all(&env.db)
    .await;
    let rows = match rows {
        Ok(rows) => rows
            .iter()
            .map(|(step, outcome, graph, at)| format!("{step} {outcome} (graph {graph:?} ms) committed at +{at:.0} ms"))
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("history unreadable: {e}"),
    };
    say(format!(
        "latency: slowest sample during the cycle: {:?} {:.0} ms, channel {}: {rows}",
        sample.path,
        sample.latency.as_secs_f64() * 1e3,
        sample.channel
    ));
}

/// Figures of one (phase, path): milliseconds over the refreshed samples.
fn summarize(samples: &[&Sample]) -> Value {
    let mut ms: Vec<f64> = samples.iter().filter(|s| s.refreshed).map(|s| s.latency.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mut decisions: BTreeMap<&str, u64> = BTreeMap::new();
    for s in samples {
        *decisions.entry(s.decision).or_default() += 1;
    }
    let mean = if ms.is_empty() { None } else { Some(ms.iter().sum::<f64>() / ms.len() as f64) };
    let r = |v: Option<f64>| v.map(|x| round(x, 1));
    json!({
        "samples": samples.len(),
        "refreshed": ms.len(),
        "lost": samples.len() - ms.len(),
        "decisions": decisions,
        "p50_ms": r(percentile(&ms, 50.0)),
        "p90_ms": r(percentile(&ms, 90.0)),
        "p99_ms": r(percentile(&ms, 99.0)),
        "max_ms": r(ms.last().copied()),
        "mean_ms": r(mean),
        "first_error": samples.iter().find_map(|s| s.error.clone()),
    })
}

pub async fn run(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let (n, s) = (opts.channels, opts.samples);
    env.sim.set_logging(false);
    say(format!("latency: seeding {n} healthy channels for the background cycle and {s}+{s} idle samples"));
    env.seed(n, 6_000_000, 100).await?;
    let idle_targets = seed_targets(env, 2 * s, 7_000_000).await?;
    // Every channel seeded so far is in the background cycle; the cycle-phase samples come later.
    let upto = idle_targets.last().map(|t| t.channel);
    let mut workers = Workers::start(exe, env, opts.concurrency, 1).await?;
    let intake = env.intake();
    let error = expired_token_report();
    let sample_timeout = Duration::from_secs(60);

    say(format!("latency: idle, {s} samples per path, one at a time"));
    let mut idle = Vec::with_capacity(2 * s);
    for (i, target) in idle_targets.iter().enumerate() {
        idle.push(take_sample(env, &intake, &error, Route::nth(i), target, sample_timeout).await);
        if !workers.all_alive() {
            break;
        }
    }

    // Open loop: one sample per interval, so that all of them fit in the cycle.
    let interval = Duration::from_millis(if opts.quick { 15 } else { 100 });
    say(format!(
        "latency: during a cycle of {} channels, up to {s} samples per path, one every {} ms",
        n + 2 * s,
        interval.as_millis()
    ));
    let signals = CycleSignals::default();
    let cycle = run_cycle(env, &mut workers, (n + 2 * s) as u64, upto, Some(&signals), "latency cycle");
    let sampling = async {
        signals.enqueued.cancelled().await;
        if signals.finished.is_cancelled() {
            return anyhow::Ok((Vec::new(), (0, 0, None)));
        }
        let targets = seed_targets(env, 2 * s, 8_000_000).await?;
        let drainer = Drainer::start(intake.clone());
        let timeout = time_limit((n + 2 * s) as u64);
        let mut pending = FuturesUnordered::new();
        let mut done = Vec::with_capacity(targets.len());
        let mut tick = tokio::time::interval(interval);
        let mut issued = 0;
        while issued < targets.len() && !signals.finished.is_cancelled() {
            tokio::select! {
                _ = tick.tick() => {
                    if !signals.finished.is_cancelled() {
                        let target = &targets[issued];
                        pending.push(take_sample(env, &intake, &error, Route::nth(issued), target, timeout));
                        issued += 1;
                    }
                }
                Some(sample) = pending.next(), if !pending.is_empty() => done.push(sample),
                () = signals.finished.cancelled() => {}
            }
        }
        while let Some(sample) = pending.next().await {
            done.push(sample);
        }
        Ok((done, drainer.stop().await))
    };
    let (cycle, sampled) = tokio::join!(cycle, sampling);
    let cycle = cycle?;
    let (loaded, (drained, drain_errors, drain_error)) = sampled?;
    if let Some(slowest) = loaded.iter().max_by_key(|x| x.latency) {
        explain(env, slowest).await;
    }
    let alive = workers.all_alive();
    let rss = workers.peak_rss_mib();
    let (_, exits) = workers.stop().await;

    let pick = |samples: &[Sample], path: Route| -> Value {
        let chosen: Vec<&Sample> = samples.iter().filter(|x| x.path == path).collect();
        summarize(&chosen)
    };
    let phases = json!({
        "idle": {"report": pick(&idle, Route::Report), "front": pick(&idle, Route::Front)},
        "cycle": {"report": pick(&loaded, Route::Report), "front": pick(&loaded, Route::Front)},
    });
    let lost = idle.iter().chain(&loaded).filter(|x| !x.refreshed).count() as u64;
    let loaded_short = loaded.len() < 2 * s;
    let cycle_rate = cycle.channels_per_s((n + 2 * s) as u64);
    let ok = lost == 0 && alive && cycle.problem.is_none() && !idle.is_empty() && !loaded.is_empty();
    let json = json!({
        "workload": "latency",
        "channels": n,
        "samples_per_path": s,
        "latency_ms": opts.latency.as_millis() as u64,
        "concurrency": opts.concurrency,
        "paths": {
            "report": "Intake::report (expired-token error): the messaging service's path; ahead of the backlog too",
            "front": "pending::enqueue_or_join(front = true): refresh-channel / the API's path; ahead of the backlog",
        },
        "measured": "from the call until queue::wait_for_report returns the settled report; the stored page token is then checked to have changed to a live one",
        "sample_interval_ms_during_cycle": interval.as_millis() as u64,
        "phases": phases,
        "cycle_samples_issued": loaded.len(),
        "cycle_issue_cut_short": loaded_short,
        "background_cycle": {
            "channels": n + 2 * s,
            "enqueue_s": secs(cycle.enqueue_s),
            "done_s": cycle.done_s.map(secs),
            "channels_per_s": cycle_rate,
            "peak_backlog": cycle.peak_backlog,
            "problem": cycle.problem,
            "cpu": cycle.cpu,
        },
        "drained": drained,
        "drain_errors": drain_errors,
        "drain_error": drain_error,
        "lost": lost,
        "worker_alive": alive,
        "worker_exit": exits.first().cloned().flatten(),
        "worker_peak_rss_mib": rss,
        "bench_peak_rss_mib": procfs::peak_rss_mib("self"),
        "ok": ok,
    });
    let mut lines = Vec::new();
    for phase in ["idle", "cycle"] {
        for path in [Route::Report, Route::Front] {
            let v = &json["phases"][phase][path.name()];
            let f = |k: &str| v.get(k).and_then(Value::as_f64);
            let u = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            lines.push(vec![
                if phase == "idle" { "idle".to_owned() } else { format!("during cycle ({} ch)", n + 2 * s) },
                path.name().to_owned(),
                u("samples").to_string(),
                u("refreshed").to_string(),
                fixed(f("p50_ms"), 1),
                fixed(f("p90_ms"), 1),
                fixed(f("p99_ms"), 1),
                fixed(f("max_ms"), 1),
            ]);
        }
    }
    let table =
        render_table(&["phase", "path", "samples", "refreshed", "p50 ms", "p90 ms", "p99 ms", "max ms"], &lines);
    let title = format!(
        "latency: report to new token stored (report = Intake::report, ahead of the backlog; front = \
         enqueue_or_join(front=true)); background cycle {} s",
        fixed(cycle.done_s.map(secs), 1)
    );
    let row = Row {
        workload: "latency cycle".into(),
        size: format!("{} ch", n + 2 * s),
        first_s: Some(secs(cycle.enqueue_s)),
        done_s: cycle.done_s.map(secs),
        per_s: cycle_rate,
        graph_per_channel: None,
        refresh_calls: None,
        peak_backlog: Some(cycle.peak_backlog),
        worker_rss_mib: rss,
        lost,
        worker_ok: alive,
        cpu: cycle.cpu.clone(),
    };
    Ok(Outcome { json, rows: vec![row], tables: vec![(title, table)], ok })
}
