use std::{sync::Arc, time::Duration};

use redis::{AsyncCommands, aio::ConnectionManager};
use shared::{
    config::{Config, FlagStyle},
    flags::{self, FlagState},
    keys::RedisKeys,
    pipeline::Pipeline,
    queue::{self, Timings},
    retry::RetryPolicy,
    secret::Secret,
    store,
};
use simulator::{GraphSim, SimOptions};
use sqlx::PgPool;
use uuid::Uuid;

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A fresh world: database, Redis prefix, simulator, and a config pointing at all three.
pub struct TestEnv {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub sim: GraphSim,
    db_name: String,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// Like `new`, with a chance to adjust the config before anything connects.
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::build(adjust, None).await
    }

    /// A database holding Chatwoot's real tables (upstream `db/schema.rb`, as
    /// `tests/fixtures/chatwoot_schema.sql`) before the system migrates it, as beside a real install.
    pub async fn chatwoot(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::build(adjust, Some(CHATWOOT_SCHEMA)).await
    }

    async fn build(adjust: impl FnOnce(&mut Config), before_migrate: Option<&str>) -> Self {
        let sim = GraphSim::start(SimOptions::default()).await.expect("simulator starts");
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("fbtr_test_{}", &id[..16]);
        let mut config = Config {
            database_url: Secret::new(format!("postgres://postgres@127.0.0.1:5432/{db_name}")),
            redis_url: Secret::new(REDIS_URL),
            redis_key_prefix: format!("test:{}:", &id[..16]),
            fb_app_id: Some(sim.options().app_id.clone()),
            fb_app_secret: sim.options().app_secret.clone().map(Secret::new),
            fb_graph_url: sim.base_url(),
            worker_metrics_bind: "127.0.0.1:0".parse().expect("addr"),
            api_bind: "127.0.0.1:0".parse().expect("addr"),
            fb_http_timeout: Duration::from_secs(2),
            fb_connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(4),
                max_attempts: 4,
                jitter: false,
            },
            ..Config::default()
        };
        adjust(&mut config);
        if let Some(sql) = before_migrate {
            create_database_with(&db_name, sql).await;
        }
        let db =
            store::connect_and_migrate(&config.database_url, &config.database_schema, 8).await.expect("fresh database");
        let redis = queue::connect(&config).await.expect("redis");
        Self { config, db, redis, sim, db_name }
    }

    pub fn flag_keys(&self) -> RedisKeys {
        RedisKeys::of(&self.config)
    }

    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.db.clone(), self.redis.clone(), Arc::new(self.config.clone())).expect("pipeline")
    }

    pub async fn worker_state(&self) -> shared::worker::WorkerState {
        shared::worker::WorkerState::connect(Arc::new(self.config.clone()), fast_timings()).await.expect("worker state")
    }

    pub async fn flags(&self, channel_id: i64) -> FlagState {
        flags::read(&mut self.redis.clone(), &self.flag_keys(), channel_id).await.expect("read flags")
    }

    /// Inserts a Facebook channel and its inbox; returns the channel id.
    pub async fn insert_channel(&self, account_id: i32, page_id: &str, page_token: &str, user_token: &str) -> i64 {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO channel_facebook_pages (account_id, page_id, page_access_token, user_access_token, created_at, updated_at)
             VALUES ($1, $2, $3, $4, timezone('utc', now()), timezone('utc', now())) RETURNING id",
        )
        .bind(account_id)
        .bind(page_id)
        .bind(page_token)
        .bind(user_token)
        .fetch_one(&self.db)
        .await
        .expect("insert channel");
        sqlx::query(
            "INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at)
             VALUES ($1, $2, 'Channel::FacebookPage', $3, timezone('utc', now()), timezone('utc', now()))",
        )
        .bind(account_id)
        .bind(id)
        .bind(format!("Inbox of page {page_id}"))
        .execute(&self.db)
        .await
        .expect("insert inbox");
        i64::from(id)
    }

    /// A user with one page in the simulator and the matching channel row; returns
    /// (channel id, user id, user token).
    pub async fn healthy_channel(&self, page_id: &str) -> (i64, String, String) {
        let user_id = format!("u{page_id}");
        let user_token = self.sim.add_user(&user_id);
        self.sim.add_page(page_id, &format!("Page {page_id}"));
        let page_token = self.sim.grant(&user_id, page_id);
        let channel = self.insert_channel(1, page_id, &page_token, &user_token).await;
        (channel, user_id, user_token)
    }

    pub async fn stored_page_token(&self, channel_id: i64) -> String {
        sqlx::query_scalar("SELECT page_access_token FROM channel_facebook_pages WHERE id = $1")
            .bind(i32::try_from(channel_id).expect("id"))
            .fetch_one(&self.db)
            .await
            .expect("channel row")
    }

    pub async fn stored_user_token(&self, channel_id: i64) -> String {
        sqlx::query_scalar("SELECT user_access_token FROM channel_facebook_pages WHERE id = $1")
            .bind(i32::try_from(channel_id).expect("id"))
            .fetch_one(&self.db)
            .await
            .expect("channel row")
    }

    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis.clone();
        let mut iter = conn.scan_match::<_, String>(format!("{}*", self.config.redis_key_prefix)).await.expect("scan");
        let mut keys = Vec::new();
        while let Some(k) = futures::StreamExt::next(&mut iter).await {
            keys.push(k.expect("scan"));
        }
        keys.sort();
        keys
    }

    pub fn with_flag_style(style: FlagStyle) -> impl FnOnce(&mut Config) {
        move |c| c.flag_style = style
    }
}

pub const CHATWOOT_SCHEMA: &str = include_str!("../fixtures/chatwoot_schema.sql");

/// Creates `name` and runs `sql` in it, as Chatwoot's own `db:schema:load` would have.
pub async fn create_database_with(name: &str, sql: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(ADMIN_URL).await.expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create db");
    let mut conn =
        sqlx::PgConnection::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}")).await.expect("db");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.expect("load schema");
}

/// Quick polling and heartbeats for tests (orphans recovered in ~3 s).
pub fn fast_timings() -> Timings {
    Timings {
        poll_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 3,
        batch_size: 50,
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Drop runs outside async; clean up on a thread of its own so a failed test cleans up too.
        let name = self.db_name.clone();
        let prefix = self.config.redis_key_prefix.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN_URL).await {
                    // `producer demo` run from a test uses `<name>_demo`.
                    for db in [name.clone(), format!("{name}_demo")] {
                        let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    }
                }
                if let Ok(client) = redis::Client::open(REDIS_URL)
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let keys: Vec<String> =
                        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap_or_default();
                    for chunk in keys.chunks(500) {
                        let _: Result<(), _> = conn.del(chunk).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A worker running in this process until stopped or dropped.
pub struct RunningWorker {
    pub shutdown: tokio_util::sync::CancellationToken,
    pub join: Option<tokio::task::JoinHandle<Result<(), shared::worker::StartError>>>,
}

impl RunningWorker {
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.join.take() {
            Some(j) => Ok(j.await??),
            None => Ok(()),
        }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestEnv {
    pub fn spawn_worker(&self) -> RunningWorker {
        self.spawn_worker_with(fast_timings())
    }

    pub fn spawn_worker_with(&self, timings: Timings) -> RunningWorker {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let join = tokio::spawn(shared::worker::run_with(self.config.clone(), timings, shutdown.clone()));
        RunningWorker { shutdown, join: Some(join) }
    }
}

impl TestEnv {
    /// Seeds `n` healthy channels fast (one user per 100 pages); returns their channel ids.
    pub async fn seed_healthy(&self, n: usize, first_page: u64) -> Vec<i64> {
        let (mut pages, mut page_tokens, mut user_tokens) = (vec![], vec![], vec![]);
        let mut user_token = String::new();
        for i in 0..n {
            let user = format!("bulk-{}", i / 100);
            if i % 100 == 0 {
                user_token = self.sim.add_user(&user);
            }
            let page = (first_page + i as u64).to_string();
            self.sim.add_page(&page, "bulk");
            page_tokens.push(self.sim.grant(&user, &page));
            user_tokens.push(user_token.clone());
            pages.push(page);
        }
        let ids: Vec<i32> = sqlx::query_scalar(
            "WITH c AS (
               INSERT INTO channel_facebook_pages (account_id, page_id, page_access_token, user_access_token, created_at, updated_at)
               SELECT 1, p, pt, ut, timezone('utc', now()), timezone('utc', now())
               FROM unnest($1::text[], $2::text[], $3::text[]) AS t(p, pt, ut) RETURNING id)
             INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at)
             SELECT 1, id, 'Channel::FacebookPage', 'bulk', timezone('utc', now()), timezone('utc', now()) FROM c
             RETURNING channel_id",
        )
        .bind(&pages)
        .bind(&page_tokens)
        .bind(&user_tokens)
        .fetch_all(&self.db)
        .await
        .expect("bulk insert");
        ids.into_iter().map(i64::from).collect()
    }

    pub fn intake(&self) -> shared::intake::Intake {
        shared::intake::Intake {
            db: self.db.clone(),
            redis: self.redis.clone(),
            storage: queue::job_storage(self.redis.clone(), &self.config, &fast_timings()),
            config: Arc::new(self.config.clone()),
        }
    }

    pub fn storage(&self) -> queue::JobStorage {
        queue::job_storage(self.redis.clone(), &self.config, &fast_timings())
    }

    /// Jobs stored in the queue (any state), by the data hash apalis keeps.
    pub async fn queued_jobs(&self) -> u64 {
        self.redis
            .clone()
            .hlen(format!("{}:data", shared::keys::RedisKeys::of(&self.config).queue()))
            .await
            .expect("hlen")
    }
}

/// `producer serve` on port 0 (cron, API, dashboard, drainer) until stopped.
pub struct ApiServer {
    pub base: String,
    pub stop: tokio_util::sync::CancellationToken,
    pub join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl ApiServer {
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.join.await?
    }
}

impl TestEnv {
    pub async fn serve_api(&self) -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = tokio_util::sync::CancellationToken::new();
        let schedule = producer::cron::parse_schedule(&self.config.refresh_cron).expect("cron");
        let join = tokio::spawn(producer::serve::serve(self.config.clone(), schedule, listener, stop.clone()));
        ApiServer { base, stop, join }
    }

    /// The inbox id of a channel's (first) inbox.
    pub async fn inbox_of(&self, channel_id: i64) -> i64 {
        let id: i32 = sqlx::query_scalar("SELECT id FROM inboxes WHERE channel_id = $1 ORDER BY id LIMIT 1")
            .bind(i32::try_from(channel_id).expect("id"))
            .fetch_one(&self.db)
            .await
            .expect("inbox");
        i64::from(id)
    }
}

impl TestEnv {
    /// A command for one of our binaries with a clean environment pointing at this test's world
    /// (the contract's variables), so the binary is tested as an operator would run it.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let c = &self.config;
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("DATABASE_URL", c.database_url.expose())
            .env("REDIS_URL", c.redis_url.expose())
            .env("REDIS_KEY_PREFIX", &c.redis_key_prefix)
            .env("FB_GRAPH_URL", &c.fb_graph_url)
            .env("FB_APP_ID", c.fb_app_id.clone().unwrap_or_default())
            .env("FB_APP_SECRET", c.fb_app_secret.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default())
            .env("WORKER_METRICS_BIND", "127.0.0.1:0")
            .env("DATABASE_SCHEMA", &c.database_schema)
            .kill_on_drop(true);
        if let Some(k) = &c.encryption {
            cmd.env("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", k.primary_key.expose())
                .env("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", k.deterministic_key.expose())
                .env("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", k.key_derivation_salt.expose());
        }
        cmd
    }
}

impl TestEnv {
    /// Channels whose stored state has this status (0 while Postgres is unreachable).
    pub async fn status_count(&self, status: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = $1")
            .bind(status)
            .fetch_one(&self.db)
            .await
            .unwrap_or(0)
    }
}
