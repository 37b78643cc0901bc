//! Refresh outcomes per hour, for the dashboard's chart (webhook re-subscriptions are not refreshes
//! and stay out of it).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyOutcome {
    pub hour: DateTime<Utc>,
    /// `healthy`, `refreshed`, `failed` (confirmed) or `retrying` (transient, rate limit).
    pub outcome: String,
    pub count: i64,
}

/// Outcomes of the last `hours` hours, by hour, oldest first; with `accounts`, of those accounts'
/// Facebook channels only (an account's dashboard must not show other tenants' activity).
pub async fn hourly_outcomes(
    db: &PgPool,
    hours: i32,
    accounts: Option<&[i64]>,
) -> Result<Vec<HourlyOutcome>, sqlx::Error> {
    // `hour` and `outcome` are not null: `WHERE outcome IS NOT NULL`, and `created_at` never is.
    let rows = sqlx::query!(
        r#"SELECT hour AS "hour!", outcome AS "outcome!", sum(n)::int8 AS "count!" FROM (
           SELECT date_trunc('hour', created_at) AS hour, 1 AS n,
                  CASE WHEN step = 'validate' AND outcome = 'ok' THEN 'healthy'
                       WHEN outcome = 'refreshed' THEN 'refreshed'
                       WHEN step = 'refresh' AND outcome IN ('auth', 'permission', 'not_found') THEN 'failed'
                       WHEN step <> 'subscribe' AND outcome IN ('transient', 'rate_limited', 'invalid') THEN 'retrying'
                  END AS outcome
           FROM fb_token_events
           WHERE created_at > now() - make_interval(hours => $1)
             AND ($2::int8[] IS NULL OR channel_id IN (
                   SELECT channel_id FROM inboxes
                   WHERE account_id = ANY($2) AND channel_type = 'Channel::FacebookPage'))
           UNION ALL
           -- A batch's channels that stayed healthy, or were checked for the first time, have no
           -- event row, only their batch's counts.
           SELECT date_trunc('hour', created_at), unchanged + first_checks, 'healthy'
           FROM fb_validation_batches
           WHERE created_at > now() - make_interval(hours => $1) AND unchanged + first_checks > 0
             AND ($2::int8[] IS NULL OR account_id = ANY($2))) e
         WHERE outcome IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1, 2"#,
        hours,
        accounts,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| HourlyOutcome { hour: r.hour, outcome: r.outcome, count: r.count }).collect())
}
