//! The `bench` binary's modules (kept out of the `tests` library).

mod args;
mod baseline;
mod common;
mod cycle;
mod dashboard;
mod env;
mod latency;
mod limits;
mod procfs;
mod report;
mod scale;
mod stats;
mod storm;
mod watch;
mod worker;

use std::{path::Path, process::ExitCode};

use serde_json::json;

use self::{
    args::{Options, Parsed, USAGE, Workload},
    common::say,
    env::BenchEnv,
    report::Outcome,
};

pub fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let exe = match worker::worker_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(opts, &exe))
}

async fn run(opts: Options, exe: &Path) -> ExitCode {
    if cfg!(debug_assertions) {
        say("note: this is a debug build; figures are only meaningful with --release");
    }
    say(format!("worker binary: {}", exe.display()));
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failed = false;
    for &workload in &opts.workloads {
        let name = workload.name();
        let env = match BenchEnv::new(opts.latency).await {
            Ok(env) if workload == Workload::CycleEncrypted => env.encrypted(),
            Ok(env) => env,
            Err(e) => {
                say(format!("{name}: cannot set up: {e:#}"));
                println!("{}", report::json_line(&json!({"workload": name, "error": format!("{e:#}"), "ok": false})));
                failed = true;
                break;
            }
        };
        say(format!("{name}: database {}, Redis prefix {}", env.db_name, env.config.redis_key_prefix));
        let earlier: Vec<serde_json::Value> = outcomes.iter().map(|o| o.json.clone()).collect();
        let result = tokio::select! {
            r = run_one(workload, &env, &opts, exe, &earlier) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        // The workload's worker process is stopped (or killed, on error) by now.
        if let Err(e) = env.cleanup().await {
            say(format!("{name}: cleanup failed: {e:#}"));
            failed = true;
        }
        match result {
            None => {
                say("interrupted; the bench database and Redis keys were removed");
                return ExitCode::from(130);
            }
            Some(Ok(outcome)) => {
                println!("{}", report::json_line(&outcome.json));
                if !outcome.ok {
                    say(format!("{name}: FAILED (lost, a dead worker, or a problem: see its JSON line)"));
                    failed = true;
                }
                outcomes.push(outcome);
            }
            Some(Err(e)) => {
                say(format!("{name}: error: {e:#}"));
                println!("{}", report::json_line(&json!({"workload": name, "error": format!("{e:#}"), "ok": false})));
                failed = true;
            }
        }
    }
    if !opts.json_only && !outcomes.is_empty() {
        let mut rows: Vec<report::Row> = Vec::new();
        let mut tables: Vec<(String, String)> = Vec::new();
        for o in outcomes {
            rows.extend(o.rows);
            tables.extend(o.tables);
        }
        if !rows.is_empty() {
            println!();
            print!("{}", report::table(&rows));
        }
        for (title, table) in tables {
            println!("\n{title}");
            print!("{table}");
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// `earlier`: the JSON lines of the workloads already run (`limits` and `baseline` compare with
/// the cycle's).
async fn run_one(
    workload: Workload,
    env: &BenchEnv,
    opts: &Options,
    exe: &Path,
    earlier: &[serde_json::Value],
) -> anyhow::Result<Outcome> {
    match workload {
        Workload::Cycle | Workload::CycleEncrypted => cycle::run(env, opts, exe, workload.name()).await,
        Workload::StormOne => storm::storm_one(env, opts, exe).await,
        Workload::StormMany => storm::storm_many(env, opts, exe).await,
        Workload::Latency => latency::run(env, opts, exe).await,
        Workload::Scale => scale::run(env, opts, exe).await,
        Workload::Limits => limits::run(env, opts, earlier).await,
        Workload::Baseline => baseline::run(env, opts, earlier).await,
        Workload::Watch => watch::run(env, opts, exe).await,
        Workload::Dashboard => dashboard::run(env, opts).await,
    }
}
