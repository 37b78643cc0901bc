//! `producer serve`: the cron trigger, the deferred-refresh drainer, the watcher of Chatwoot's own
//! failure counter (in Chatwoot's key style) and the HTTP API, until SIGTERM/SIGINT.

use anyhow::Context as _;
use shared::config::{Config, FlagStyle};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let schedule = crate::cron::parse_schedule(&config.refresh_cron)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shared::process::cancel_on_signal(shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(config.api_bind)
        .await
        .with_context(|| format!("cannot listen on API_BIND={}", config.api_bind))?;
    serve(config, schedule, listener, shutdown).await
}

/// Everything `serve` runs, on a listener the caller bound (tests bind port 0).
pub async fn serve(
    config: Config,
    schedule: croner::Cron,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = crate::state::AppState::connect(config).await?;
    let (db, redis, storage, intake, config) =
        (state.db.clone(), state.redis.clone(), state.storage.clone(), state.intake.clone(), state.config.clone());
    let replica = shared::process::unique_worker_name().replacen("worker-", "producer-", 1);
    if config.weak_admin_token() {
        tracing::warn!(
            "ADMIN_API_TOKEN is shorter than {} characters and opens every account; use a long random one (e.g. `openssl rand -hex 32`)",
            shared::config::MIN_ADMIN_TOKEN_CHARS
        );
    }
    info!(bind = %listener.local_addr()?, cron = %config.refresh_cron, replica = %replica, "producer serving");

    let trigger = crate::cron::Trigger {
        schedule,
        db: db.clone(),
        redis: redis.clone(),
        storage: storage.clone(),
        config: config.clone(),
        replica,
        fired: None,
        skipped: None,
    };
    let cron = tokio::spawn(crate::cron::run(trigger, shutdown.clone()));
    let drainer = tokio::spawn(intake.clone().run_drainer(shutdown.clone()));
    // Every replica watches: one atomic claim per increment keeps them from doubling the work.
    let watcher = (config.flag_style == FlagStyle::Chatwoot && config.counter_watch).then(|| {
        let watcher = shared::watcher::CounterWatcher::new(intake.clone(), state.metrics.clone());
        tokio::spawn(watcher.run(shutdown.clone()))
    });
    let app = crate::app::router(state);
    let stop = shutdown.clone();
    axum::serve(shared::listener::nodelay(listener), app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    shutdown.cancel();
    let _ = cron.await;
    let _ = drainer.await;
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    Ok(())
}
