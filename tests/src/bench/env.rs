//! A fresh world per workload, the way `tests::env::TestEnv` makes one: a database
//! `fbtr_bench_<random>`, a Redis key prefix `bench:<random>:`, a Graph simulator, and a config
//! pointing at the three. `cleanup` drops the database and deletes the prefix's keys.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use shared::{
    config::Config,
    intake::Intake,
    queue::{self, JobStorage, Timings},
    secret::Secret,
    store,
};
use simulator::{GraphSim, SimOptions};
use sqlx::{Connection as _, PgPool};
use tests::env::{ADMIN_URL, REDIS_URL};

/// Connections of the bench's own pool (the worker opens WORKER_CONCURRENCY more, at most 64;
/// Postgres allows 100 by default).
const DB_POOL: u32 = 24;
/// Channels per bulk insert.
const SEED_CHUNK: usize = 10_000;

pub struct BenchEnv {
    pub id: String,
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub sim: GraphSim,
    pub db_name: String,
}

impl BenchEnv {
    pub async fn new(latency: Duration) -> anyhow::Result<Self> {
        let sim =
            GraphSim::start(SimOptions { latency, ..SimOptions::default() }).await.context("start the simulator")?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let db_name = format!("fbtr_bench_{id}");
        let config = Config {
            database_url: Secret::new(format!("postgres://postgres@127.0.0.1:5432/{db_name}")),
            redis_url: Secret::new(REDIS_URL),
            redis_key_prefix: format!("bench:{id}:"),
            fb_app_id: Some(sim.options().app_id.clone()),
            fb_app_secret: sim.options().app_secret.clone().map(Secret::new),
            fb_graph_url: sim.base_url(),
            worker_metrics_bind: "127.0.0.1:0".parse()?,
            api_bind: "127.0.0.1:0".parse()?,
            ..Config::default()
        };
        let db = match store::connect_and_migrate(&config.database_url, &config.database_schema, DB_POOL).await {
            Ok(db) => db,
            Err(e) => {
                let _ = drop_database(&db_name).await;
                return Err(anyhow::Error::new(e).context(format!("create and migrate the bench database {db_name}")));
            }
        };
        let redis = match queue::connect(&config).await {
            Ok(r) => r,
            Err(e) => {
                db.close().await;
                let _ = drop_database(&db_name).await;
                return Err(anyhow::Error::new(e).context(format!("connect to Redis at {REDIS_URL}")));
            }
        };
        Ok(Self { id, config, db, redis, sim, db_name })
    }

    /// Chatwoot's encryption keys set (a fixed bench key set): seeded token columns are Rails
    /// envelopes and the workers decrypt and encrypt them.
    pub fn encrypted(mut self) -> Self {
        self.config.encryption = Some(shared::config::EncryptionKeys {
            primary_key: Secret::new("bench-primary-key-0123456789abcdef"),
            deterministic_key: Secret::new("bench-deterministic-key-0123456789"),
            key_derivation_salt: Secret::new("bench-key-derivation-salt-012345"),
        });
        self
    }

    pub fn storage(&self) -> JobStorage {
        queue::job_storage(self.redis.clone(), &self.config, &Timings::default())
    }

    pub fn intake(&self) -> Intake {
        Intake {
            db: self.db.clone(),
            redis: self.redis.clone(),
            storage: self.storage(),
            config: Arc::new(self.config.clone()),
        }
    }

    /// Seeds `n` healthy channels (pages `first_page..`), `pages_per_user` pages per simulator
    /// user, with bulk inserts. Returns the channel ids and each channel's (page id, user id).
    pub async fn seed(&self, n: usize, first_page: u64, pages_per_user: usize) -> anyhow::Result<Seeded> {
        let per_user = pages_per_user.max(1);
        let mut seeded = Seeded::default();
        let mut user_token = String::new();
        let (mut pages, mut page_tokens, mut user_tokens) = (vec![], vec![], vec![]);
        for i in 0..n {
            // Named after the seed's first page: a later seed must not add pages to an earlier
            // seed's users (the latency targets, one page per user, got 100 pages each).
            let user = format!("bench-user-{first_page}-{}", i / per_user);
            if i % per_user == 0 {
                user_token = self.sim.add_user(&user);
            }
            let page = (first_page + i as u64).to_string();
            self.sim.add_page(&page, "bench");
            page_tokens.push(self.sim.grant(&user, &page));
            user_tokens.push(user_token.clone());
            pages.push(page.clone());
            seeded.pages.push((page, user));
            if pages.len() == SEED_CHUNK || i + 1 == n {
                // As Chatwoot stores them: envelopes with the keys set, plaintext without.
                let codec = self.config.codec();
                let seal = |t: &[String]| -> Vec<String> {
                    t.iter().map(|t| codec.write(&Secret::new(t.as_str())).expose().to_owned()).collect()
                };
                let ids = insert_channels(&self.db, &pages, &seal(&page_tokens), &seal(&user_tokens)).await?;
                seeded.ids.extend(ids);
                pages.clear();
                page_tokens.clear();
                user_tokens.clear();
            }
        }
        // A Chatwoot database with this many channels has had its statistics gathered long ago;
        // freshly bulk-loaded tables have none, and the planner then joins them as if tiny (the
        // cycle's channel-id chunks took 13 ms instead of 0.4 ms).
        sqlx::query("ANALYZE channel_facebook_pages, inboxes").execute(&self.db).await?;
        Ok(seeded)
    }

    /// Drops the database (closing every connection to it) and deletes every key under the prefix.
    /// Call after the worker has stopped.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.db.close().await;
        self.sim.shutdown().await;
        drop(self.redis);
        let dropped = drop_database(&self.db_name).await;
        let deleted = delete_keys(&self.config.redis_key_prefix).await;
        dropped.with_context(|| format!("drop database {}", self.db_name))?;
        deleted.with_context(|| format!("delete Redis keys {}*", self.config.redis_key_prefix))?;
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Seeded {
    pub ids: Vec<i64>,
    /// (page id, user id) per channel, in seeding order.
    pub pages: Vec<(String, String)>,
}

async fn insert_channels(
    db: &PgPool,
    pages: &[String],
    page_tokens: &[String],
    user_tokens: &[String],
) -> anyhow::Result<Vec<i64>> {
    let ids: Vec<i32> = sqlx::query_scalar(
        "WITH c AS (
           INSERT INTO channel_facebook_pages (account_id, page_id, page_access_token, user_access_token, created_at, updated_at)
           SELECT 1, p, pt, ut, timezone('utc', now()), timezone('utc', now())
           FROM unnest($1::text[], $2::text[], $3::text[]) AS t(p, pt, ut) RETURNING id)
         INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at)
         SELECT 1, id, 'Channel::FacebookPage', 'bench', timezone('utc', now()), timezone('utc', now()) FROM c
         RETURNING channel_id",
    )
    .bind(pages)
    .bind(page_tokens)
    .bind(user_tokens)
    .fetch_all(db)
    .await
    .context("bulk insert of channels")?;
    Ok(ids.into_iter().map(i64::from).collect())
}

async fn drop_database(name: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(ADMIN_URL).await.context("connect to the postgres admin database")?;
    let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""));
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await?;
    let _ = admin.close().await;
    Ok(())
}

/// Deletes every key starting with `prefix`; returns how many.
async fn delete_keys(prefix: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(REDIS_URL)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut deleted = 0u64;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
