//! Send-failure storms through `Intake::report`, with a worker process running:
//! - `storm-one`: many reports about one channel whose page token died; they must coalesce into
//!   one refresh, and every report must be recorded.
//! - `storm-many`: one report each for many channels with dead tokens; past `QUEUE_BACKLOG_MAX`
//!   the intake defers, and a drainer (as in `producer serve`) moves them into the queue.
//!
//! Every report is about a send that failed when the storm began (`failed_at`), before any
//! refresh: reports that arrive after the refresh are answered `already_replaced`.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use serde_json::json;
use tokio_util::task::AbortOnDropHandle;

use super::{
    args::Options,
    common::{BacklogSampler, Drainer, run_reports, say, secs, settle},
    env::BenchEnv,
    procfs::{self, Usage, round},
    report::{Outcome, Row},
    worker::{Watched, WorkerProc},
};

const KILL_MESSAGE: &str = "Error validating access token: Session has expired.";

fn refresh_calls(env: &BenchEnv) -> u64 {
    env.sim.count_where(|r| r.path == "/me/accounts") as u64
}

pub async fn storm_one(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let reports = opts.storm_reports;
    let seeded = env.seed(1, 3_000_000, 1).await?;
    let channel = seeded.ids.first().copied().ok_or_else(|| anyhow::anyhow!("seeding made no channel"))?;
    let (page, user) = seeded.pages.first().cloned().ok_or_else(|| anyhow::anyhow!("seeding made no page"))?;
    env.sim.kill_page_token(&page, &user, 190, Some(463), KILL_MESSAGE);
    let mut worker = WorkerProc::start(exe, env, opts.concurrency).await?;
    env.sim.reset_log();
    let sampler = BacklogSampler::start(env);
    let usage0 = Usage::take(&[worker.pid()]);
    say(format!("storm-one: {reports} reports about one channel from {} callers", opts.callers));

    let t0 = Instant::now();
    let failed_at = Utc::now();
    // When the channel's state first says `refreshed`.
    let mut refreshed_at = {
        let db = env.db.clone();
        AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                let status: Option<String> =
                    sqlx::query_scalar("SELECT status FROM fb_token_states WHERE channel_id = $1")
                        .bind(channel as i32)
                        .fetch_optional(&db)
                        .await
                        .unwrap_or(None);
                if status.as_deref() == Some("refreshed") {
                    return t0.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }))
    };
    let tally = run_reports(&env.intake(), Arc::new(vec![channel]), reports, opts.callers, failed_at).await;
    let accept_s = t0.elapsed();
    say(format!("storm-one: accepted in {:.2} s; waiting for the refresh", accept_s.as_secs_f64()));
    let (refreshed_s, mut problem) = match worker.watch(Duration::from_secs(120), &mut refreshed_at).await {
        Watched::Done(Ok(d)) => (Some(d), None),
        Watched::Done(Err(_)) => (None, Some("the refresh watcher failed")),
        Watched::TimedOut => (None, Some("the channel was not refreshed within 120 s of the last report")),
        Watched::WorkerDied => (None, Some("the worker died")),
    };
    if problem.is_none() && !settle(env, Some(channel), Duration::from_secs(30)).await? {
        problem = Some("the queue did not settle within 30 s");
    }
    let peak_backlog = sampler.stop().await;
    let usage = Usage::take(&[worker.pid()]).since(&usage0);
    let refresh_calls = refresh_calls(env);
    let requests = env.sim.request_count();
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_send_failures WHERE channel_id = $1")
        .bind(channel as i32)
        .fetch_one(&env.db)
        .await?;
    let (token, status): (String, Option<String>) = sqlx::query_as(
        "SELECT c.page_access_token, s.status FROM channel_facebook_pages c
         LEFT JOIN fb_token_states s ON s.channel_id = c.id WHERE c.id = $1",
    )
    .bind(channel as i32)
    .fetch_one(&env.db)
    .await?;
    let token_refreshed = status.as_deref() == Some("refreshed") && env.sim.is_token_valid_for_page(&page, &token);
    let worker_alive = worker.alive();
    let rss = worker.peak_rss_mib();
    let exit = worker.stop().await;

    let unrecorded = (reports as u64).saturating_sub(u64::try_from(recorded).unwrap_or(0));
    let lost = unrecorded + u64::from(!token_refreshed);
    let per_s = round(reports as f64 / accept_s.as_secs_f64(), 1);
    let ok = lost == 0 && worker_alive && problem.is_none() && tally.errors == 0;
    let json = json!({
        "workload": "storm-one",
        "channels": 1,
        "reports": reports,
        "callers": opts.callers,
        "latency_ms": opts.latency.as_millis() as u64,
        "concurrency": opts.concurrency,
        "accept_s": secs(accept_s),
        "reports_per_s": per_s,
        "refreshed_s": refreshed_s.map(secs),
        "refresh_calls": refresh_calls,
        "graph_requests": requests,
        "intake": tally.json(),
        "recorded": recorded,
        "token_refreshed": token_refreshed,
        "peak_backlog": peak_backlog,
        "lost": lost,
        "worker_alive": worker_alive,
        "worker_exit": exit.map(|s| s.to_string()),
        "worker_peak_rss_mib": rss,
        "bench_peak_rss_mib": procfs::peak_rss_mib("self"),
        "cpu": usage,
        "problem": problem,
        "ok": ok,
    });
    let row = Row {
        workload: "storm-one".into(),
        size: format!("{reports} rep"),
        first_s: Some(secs(accept_s)),
        done_s: refreshed_s.map(secs),
        per_s: Some(per_s),
        graph_per_channel: Some(requests as f64),
        refresh_calls: Some(refresh_calls),
        peak_backlog: Some(peak_backlog),
        worker_rss_mib: rss,
        lost,
        worker_ok: worker_alive,
        cpu: json["cpu"].clone(),
    };
    Ok(Outcome::single(json, row, ok))
}

/// Pages per user token in `storm-many`.
pub const STORM_PAGES_PER_USER: usize = 10;

pub async fn storm_many(env: &BenchEnv, opts: &Options, exe: &Path) -> anyhow::Result<Outcome> {
    let n = opts.storm_channels;
    say(format!("storm-many: seeding {n} channels with dead, refreshable page tokens"));
    // Ten pages per user (5,000 user tokens for 50,000 channels): the reports about one user's
    // pages should cost that user one `/me/accounts` sweep, not one per page.
    let seeded = env.seed(n, 4_000_000, STORM_PAGES_PER_USER).await?;
    for (page, user) in &seeded.pages {
        env.sim.kill_page_token(page, user, 190, Some(463), KILL_MESSAGE);
    }
    let mut worker = WorkerProc::start(exe, env, opts.concurrency).await?;
    env.sim.reset_log();
    let intake = env.intake();
    let drainer = Drainer::start(intake.clone());
    let sampler = BacklogSampler::start(env);
    let usage0 = Usage::take(&[worker.pid()]);
    say(format!("storm-many: one report each from {} callers", opts.callers));

    let t0 = Instant::now();
    let failed_at = Utc::now();
    let tally = run_reports(&intake, Arc::new(seeded.ids.clone()), n, opts.callers, failed_at).await;
    let accept_s = t0.elapsed();
    say(format!(
        "storm-many: accepted in {:.2} s ({} deferred); waiting until every channel is refreshed",
        accept_s.as_secs_f64(),
        tally.decisions.get("deferred").copied().unwrap_or(0)
    ));
    let limit = Duration::from_secs(120) + Duration::from_millis(10) * u32::try_from(n).unwrap_or(u32::MAX);
    let wait = async {
        let mut last = Instant::now();
        loop {
            let refreshed: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'refreshed'")
                .fetch_one(&env.db)
                .await?;
            if refreshed >= n as i64 {
                return anyhow::Ok(());
            }
            if last.elapsed() >= Duration::from_secs(10) {
                last = Instant::now();
                say(format!("  {refreshed}/{n} refreshed ({:.0} s)", t0.elapsed().as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (drain_s, mut problem) = match worker.watch(limit, wait).await {
        Watched::Done(r) => {
            r?;
            (Some(t0.elapsed()), None)
        }
        Watched::TimedOut => (None, Some("not every channel was refreshed in time")),
        Watched::WorkerDied => (None, Some("the worker died")),
    };
    if problem.is_none() && !settle(env, None, Duration::from_secs(30)).await? {
        problem = Some("the queue did not settle within 30 s");
    }
    let (moved, drain_errors, drain_error) = drainer.stop().await;
    let peak_backlog = sampler.stop().await;
    let usage = Usage::take(&[worker.pid()]).since(&usage0);
    let refresh_calls = refresh_calls(env);
    let requests = env.sim.request_count();
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT c.page_id, c.page_access_token, s.status FROM channel_facebook_pages c
         LEFT JOIN fb_token_states s ON s.channel_id = c.id",
    )
    .fetch_all(&env.db)
    .await?;
    let refreshed = rows
        .iter()
        .filter(|(page, token, status)| {
            status.as_deref() == Some("refreshed") && env.sim.is_token_valid_for_page(page, token)
        })
        .count();
    let worker_alive = worker.alive();
    let rss = worker.peak_rss_mib();
    let exit = worker.stop().await;

    let lost = n.saturating_sub(refreshed) as u64;
    let per_s = drain_s.map(|d| round(n as f64 / d.as_secs_f64(), 1));
    let per_channel = round(requests as f64 / n as f64, 3);
    let ok = lost == 0 && worker_alive && problem.is_none() && tally.errors == 0;
    let json = json!({
        "workload": "storm-many",
        "channels": n,
        "reports": n,
        "callers": opts.callers,
        "latency_ms": opts.latency.as_millis() as u64,
        "concurrency": opts.concurrency,
        "accept_s": secs(accept_s),
        "drain_s": drain_s.map(secs),
        "channels_per_s": per_s,
        "refresh_calls": refresh_calls,
        "refresh_calls_per_channel": round(refresh_calls as f64 / n as f64, 3),
        "user_tokens": n.div_ceil(STORM_PAGES_PER_USER),
        "refresh_calls_per_user_token": round(refresh_calls as f64 / n.div_ceil(STORM_PAGES_PER_USER) as f64, 3),
        "graph_requests": requests,
        "graph_requests_per_channel": per_channel,
        "intake": tally.json(),
        "drained": moved,
        "drain_errors": drain_errors,
        "drain_error": drain_error,
        "peak_backlog": peak_backlog,
        "backlog_max": env.config.queue_backlog_max,
        "backlog_over_max": peak_backlog > env.config.queue_backlog_max,
        "refreshed": refreshed,
        "lost": lost,
        "worker_alive": worker_alive,
        "worker_exit": exit.map(|s| s.to_string()),
        "worker_peak_rss_mib": rss,
        "bench_peak_rss_mib": procfs::peak_rss_mib("self"),
        "cpu": usage,
        "problem": problem,
        "ok": ok,
    });
    let row = Row {
        workload: "storm-many".into(),
        size: format!("{n} ch"),
        first_s: Some(secs(accept_s)),
        done_s: drain_s.map(secs),
        per_s,
        graph_per_channel: Some(per_channel),
        refresh_calls: Some(refresh_calls),
        peak_backlog: Some(peak_backlog),
        worker_rss_mib: rss,
        lost,
        worker_ok: worker_alive,
        cpu: json["cpu"].clone(),
    };
    Ok(Outcome::single(json, row, ok))
}
