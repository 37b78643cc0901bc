//! The worker runtime (the `worker` binary, and `producer demo` in process): consumes refresh jobs from Redis, runs each through the shared pipeline and
//! re-schedules what is not settled.

pub mod batch;
pub mod guard;
pub mod handler;
pub mod http;
pub mod proactive;
mod state;
pub mod supervise;
pub mod wake;

use std::{sync::Arc, time::Duration};

use crate::{config::Config, queue::Timings};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use state::{LoopState, StartError, WORKER_POOL_SIZE, WorkerState};

/// Runs a worker until `shutdown` is cancelled: connects, migrates, serves `/healthz` and
/// `/metrics`, and supervises the apalis worker loop.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    run_with(config, Timings::default(), shutdown).await
}

pub async fn run_with(config: Config, timings: Timings, shutdown: CancellationToken) -> Result<(), StartError> {
    let state = WorkerState::connect(Arc::new(config), timings).await?;
    // What the state holds is the config completed from the database (the app credentials).
    let config = state.config.clone();
    let listener = tokio::net::TcpListener::bind(config.worker_metrics_bind)
        .await
        .map_err(|source| StartError::Bind { addr: config.worker_metrics_bind, source })?;
    info!(bind = %config.worker_metrics_bind, "worker metrics and health endpoint listening");
    let http = tokio::spawn(http::serve(listener, state.clone(), shutdown.clone()));
    let janitor = tokio::spawn(supervise::sweep_done_jobs(state.clone(), shutdown.clone(), Duration::from_secs(10)));
    let webhooks = tokio::spawn(crate::webhooks::run_delivery(
        state.pipeline.db.clone(),
        config.clone(),
        Some(state.pipeline.metrics.clone()),
        shutdown.clone(),
    ));
    let retention = tokio::spawn(crate::store::retention::run_retention(
        state.pipeline.db.clone(),
        config.history_retention_days,
        Some(state.pipeline.metrics.clone()),
        shutdown.clone(),
    ));
    let intake = crate::intake::Intake {
        db: state.pipeline.db.clone(),
        redis: state.redis.clone(),
        storage: state.storage.clone(),
        config: config.clone(),
    };
    let drainer = tokio::spawn(intake.run_drainer(shutdown.clone()));
    let subscriptions = tokio::spawn(crate::subscriptions::run_retries(state.pipeline.clone(), shutdown.clone()));
    let result = supervise::run_worker_loop(state, shutdown.clone()).await;
    shutdown.cancel();
    let _ = drainer.await;
    let _ = subscriptions.await;
    let _ = http.await;
    let _ = janitor.await;
    let _ = webhooks.await;
    let _ = retention.await;
    result
}
