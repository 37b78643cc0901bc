//! Keeps the apalis worker running: `run()` returns Err on backend errors (a Redis restart, the
//! fetch script failing), and a worker that exits on those would leave the queue unserved.

use std::time::Duration;

use crate::queue;
use apalis::prelude::{BackendExt, WorkerBuilder, WorkerBuilderExt};
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{StartError, WorkerState, handler};
use crate::process::unique_worker_name;

pub async fn run_worker_loop(state: WorkerState, shutdown: CancellationToken) -> Result<(), StartError> {
    let mut backoff = restart_backoff();
    let loop_state = state.loop_state.clone();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        match queue::defuse_due(&mut state.redis.clone(), &state.config).await {
            Ok(0) => {}
            Ok(n) => warn!(moved = n, "moved due jobs to the active list in chunks before starting"),
            Err(e) => warn!(error = %e, "could not check the scheduled set before starting"),
        }
        // A fresh name each time: the old one may still look alive to apalis until its
        // heartbeat expires.
        let name = unique_worker_name();
        info!(worker = %name, concurrency = state.config.worker_concurrency, queue = %crate::keys::RedisKeys::of(&state.config).queue(), "worker starting");
        // A push to the head of the queue wakes the fetch at once; the poll finds the rest.
        let strategy = apalis::prelude::Strategy::new()
            .stream(super::wake::listen(&state.config))
            .interval(state.timings.poll_interval);
        let backend =
            queue::raw_storage(state.redis.clone(), &state.config, &state.timings).poll_with_strategy(strategy);
        let worker = WorkerBuilder::new(name.as_str())
            .backend(backend)
            .concurrency(state.config.worker_concurrency)
            .data(state.clone())
            .build(handler::handle);
        let stop = shutdown.clone();
        let grace = state.config.shutdown_grace;
        let run = worker.run_until(async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        loop_state.started();
        let result = tokio::select! {
            r = run => r,
            // In-flight jobs get `SHUTDOWN_GRACE_SECS` once asked to stop; what is cut off is
            // recovered as an orphan by another worker.
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                warn!(worker = %name, grace_secs = grace.as_secs(), "in-flight jobs did not finish within the grace period");
                return Ok(());
            }
        };
        loop_state.stopped(!shutdown.is_cancelled());
        match result {
            Ok(()) if shutdown.is_cancelled() => {
                info!(worker = %name, "worker stopped after finishing in-flight jobs");
                return Ok(());
            }
            Ok(()) => warn!(worker = %name, "worker loop ended by itself; restarting"),
            Err(e) => error!(worker = %name, error = %e, "worker loop failed; restarting"),
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        if delay >= Duration::from_secs(30) {
            backoff = restart_backoff();
        }
    }
}

fn restart_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Deletes completed jobs every `every`: apalis-redis keeps them forever otherwise.
pub async fn sweep_done_jobs(state: WorkerState, shutdown: CancellationToken, every: Duration) {
    let mut redis = state.redis.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        loop {
            match queue::sweep_done(&mut redis, &state.config, 1_000).await {
                Ok(1_000) => continue,
                Ok(_) => break,
                Err(e) => {
                    warn!(error = %e, "could not sweep completed jobs");
                    break;
                }
            }
        }
    }
}
