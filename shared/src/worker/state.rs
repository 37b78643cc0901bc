//! What a worker holds while it runs: the pipeline, the queue storage, the stores, and whether its
//! apalis loop is serving (for `/readyz`).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

use crate::{
    config::Config,
    graph::GraphError,
    pipeline::Pipeline,
    queue::{self, JobStorage, Timings},
    store::{self, StoreError, installation::InstallationError},
};

/// After a failure, how long a restarted loop must keep running before the worker counts as ready
/// again: a loop that fails at every fetch (a corrupt queue key) restarts within milliseconds, and
/// must not look ready in between.
pub const READY_AFTER_RESTART: Duration = Duration::from_secs(5);

/// Why a worker (or a producer serving the API) could not start. The store errors already say
/// which store and what failed, so they are shown as they are.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Installation(#[from] InstallationError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("cannot listen on WORKER_METRICS_BIND={addr}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

#[derive(Clone)]
pub struct WorkerState {
    pub config: Arc<Config>,
    pub timings: Timings,
    pub pipeline: Pipeline,
    pub storage: JobStorage,
    pub redis: ConnectionManager,
    /// Whether the apalis loop serves the queue, for `/readyz`.
    pub loop_state: LoopState,
}

/// Postgres connections of a worker unless `DATABASE_POOL_SIZE` says otherwise. Not
/// `WORKER_CONCURRENCY`: a job spends nearly all its time waiting on Graph and holds a connection
/// only for a few millisecond queries, so 10 serve 32 jobs in flight, and the database is
/// Chatwoot's (max_connections 100 by default, shared with its puma and sidekiq).
pub const WORKER_POOL_SIZE: u32 = 10;

impl WorkerState {
    pub async fn connect(config: Arc<Config>, timings: Timings) -> Result<Self, StartError> {
        Self::connect_with_pool(config, timings, WORKER_POOL_SIZE).await
    }

    /// Like `connect`, for a process whose own pool default is `default_pool_size` (the producer).
    pub async fn connect_with_pool(
        config: Arc<Config>,
        timings: Timings,
        default_pool_size: u32,
    ) -> Result<Self, StartError> {
        let db = store::connect_and_migrate(
            &config.database_url,
            &config.database_schema,
            config.database_pool_size(default_pool_size),
        )
        .await?;
        // Every Graph client and every redaction of this process must see the same app, so the
        // credentials completed from the database go into the one config the state hands out.
        let config = Arc::new(store::installation::with_app_credentials(&db, &config).await?);
        let redis = queue::connect(&config).await?;
        let pipeline = Pipeline::new(db, redis.clone(), config.clone())?;
        let storage = queue::job_storage(redis.clone(), &config, &timings);
        Ok(Self { config, timings, pipeline, storage, redis, loop_state: Default::default() })
    }
}

/// Whether the apalis loop serves the queue (`/readyz`), shared by the supervisor and the endpoint.
#[derive(Clone, Default)]
pub struct LoopState(Arc<Mutex<LoopInner>>);

#[derive(Default)]
struct LoopInner {
    running_since: Option<Instant>,
    failures: u64,
}

impl LoopState {
    fn with<T>(&self, f: impl FnOnce(&mut LoopInner) -> T) -> T {
        let mut inner = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner)
    }

    pub(super) fn started(&self) {
        self.with(|s| s.running_since = Some(Instant::now()));
    }

    pub(super) fn stopped(&self, failed: bool) {
        self.with(|s| {
            s.running_since = None;
            s.failures += u64::from(failed);
        });
    }

    /// Ok when serving; Err says why not, with the number of failed runs so far.
    pub fn ready(&self) -> Result<(), String> {
        self.with(|s| match s.running_since {
            Some(_) if s.failures == 0 => Ok(()),
            Some(since) if since.elapsed() >= READY_AFTER_RESTART => Ok(()),
            Some(_) => Err(format!("the worker loop restarted after {} failed runs and is not yet stable", s.failures)),
            None if s.failures == 0 => Err("the worker loop has not started".to_owned()),
            None => Err(format!("the worker loop failed {} times and is backing off", s.failures)),
        })
    }
}
