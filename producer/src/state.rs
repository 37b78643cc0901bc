//! What every request handler of `producer serve` shares: the stores, the queue, the pipeline (for
//! status reads), the report waiter and the one config of the process.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use shared::{
    config::Config, intake::Intake, metrics::Metrics, pipeline::Pipeline, queue::JobStorage, reports::ReportWaiter,
};
use sqlx::PgPool;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub storage: JobStorage,
    pub pipeline: Pipeline,
    pub intake: Intake,
    pub config: Arc<Config>,
    pub metrics: Metrics,
    /// Every waiting request of the process shares its one subscription.
    pub reports: ReportWaiter,
    /// The database is Chatwoot's (`access_tokens`, `account_users`), so its users' access tokens
    /// are callers too. Checked once at start: Chatwoot's tables come before us, not after.
    pub chatwoot_users: bool,
}

/// Postgres connections of `producer serve` unless `DATABASE_POOL_SIZE` says otherwise: fewer than
/// a worker's, since it runs no jobs of its own (API lookups, the cron trigger and the drainer hold
/// one briefly each), on a database that is Chatwoot's.
pub const PRODUCER_POOL_SIZE: u32 = 5;

impl AppState {
    /// Connects everything the API needs (and migrates, as every command does).
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let w = shared::worker::WorkerState::connect_with_pool(
            Arc::new(config),
            shared::queue::Timings::default(),
            PRODUCER_POOL_SIZE,
        )
        .await?;
        // Completed from the database (the app credentials): the one config of this process.
        let config = w.config.clone();
        let intake = Intake {
            db: w.pipeline.db.clone(),
            redis: w.redis.clone(),
            storage: w.storage.clone(),
            config: config.clone(),
        };
        let chatwoot_users = shared::store::chatwoot_users::has_chatwoot_users(&w.pipeline.db).await?;
        Ok(Self {
            chatwoot_users,
            db: w.pipeline.db.clone(),
            redis: w.redis.clone(),
            storage: w.storage.clone(),
            metrics: w.pipeline.metrics.clone(),
            reports: ReportWaiter::start(w.redis.clone(), config.clone()),
            pipeline: w.pipeline,
            intake,
            config,
        })
    }
}
