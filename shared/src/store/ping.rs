//! The cheapest round trip that proves a pooled session can run a statement, for readiness probes.

use sqlx::PgPool;

pub async fn ping(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT 1").fetch_one(db).await?;
    Ok(())
}
