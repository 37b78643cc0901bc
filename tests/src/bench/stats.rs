//! Server-side counters read before and after a workload, so its cost per channel can be set
//! against the machine's limits: Postgres `pg_stat_database` (this database) and `pg_stat_wal`
//! (the whole cluster), Redis `INFO stats` (the whole server).

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::procfs::round;

/// Postgres flushes a backend's statistics at most once a second, when it goes idle or exits:
/// wait this long before reading them.
pub const PG_STATS_FLUSH: Duration = Duration::from_millis(1_200);

#[derive(Debug, Clone, Copy, Default)]
pub struct PgStats {
    pub commits: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub wal_records: i64,
    pub wal_bytes: i64,
    pub wal_syncs: i64,
}

impl PgStats {
    pub async fn take(db: &PgPool) -> anyhow::Result<Self> {
        let (commits, inserted, updated, deleted): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted
             FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(db)
        .await?;
        let (wal_records, wal_bytes, wal_syncs): (i64, i64, i64) =
            sqlx::query_as("SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal").fetch_one(db).await?;
        Ok(Self { commits, inserted, updated, deleted, wal_records, wal_bytes, wal_syncs })
    }

    /// What happened between `earlier` and `self`, in total and per `per` (channels).
    pub fn delta_json(&self, earlier: &PgStats, per: u64) -> Value {
        let per = per.max(1) as f64;
        let d = |a: i64, b: i64| (a - b).max(0);
        let (commits, inserted, updated, deleted) = (
            d(self.commits, earlier.commits),
            d(self.inserted, earlier.inserted),
            d(self.updated, earlier.updated),
            d(self.deleted, earlier.deleted),
        );
        let (wal_records, wal_bytes, wal_syncs) = (
            d(self.wal_records, earlier.wal_records),
            d(self.wal_bytes, earlier.wal_bytes),
            d(self.wal_syncs, earlier.wal_syncs),
        );
        json!({
            "source": "pg_stat_database of the bench database (worker and bench connections); pg_stat_wal cluster-wide",
            "commits": commits,
            "rows_inserted": inserted,
            "rows_updated": updated,
            "rows_deleted": deleted,
            "wal_records": wal_records,
            "wal_bytes": wal_bytes,
            "wal_syncs": wal_syncs,
            "commits_per_channel": round(commits as f64 / per, 3),
            "rows_written_per_channel": round((inserted + updated + deleted) as f64 / per, 3),
            "wal_syncs_per_channel": round(wal_syncs as f64 / per, 4),
        })
    }
}

/// `total_commands_processed` of the Redis server (every client, not only this bench's).
pub async fn redis_commands(redis: &ConnectionManager) -> anyhow::Result<u64> {
    let mut conn = redis.clone();
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO stats has no total_commands_processed"))
}
