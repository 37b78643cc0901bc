//! Where every run's results land. A single job settles one channel and a batch settles many, both
//! through [`settle`]: one transaction holds the guarded token writes, every state (one multi-row
//! upsert), the history (one multi-row insert), the dead letters, the webhook outbox rows of the
//! status changes and a batch's summary row. On this system's Postgres a commit waits for the WAL
//! flush, so the number of commits, not of rows, is what a cycle pays for.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{
    Channel, Event, FailureCount, StateUpdate, Step, TokenStatus, TokenWrite,
    channels::write_page_token,
    dead::record_dead_job,
    events::{clamp_i32, record_events},
    outbox,
    states::decode_status,
};
use crate::{
    config::Config,
    encryption::Codec,
    graph::GraphError,
    job::{Reason, RefreshJob},
    secret::Secret,
};

/// How much of a run's history its settlement keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Every row: a single job's run is read by its job id (a report, a check on demand).
    Always,
    /// A cycle's check that found the channel healthy: its rows only when the channel had another
    /// status before. The rest (healthy already, or checked for the first time) is counted in the
    /// batch's summary row, which says as much as 100,000 identical rows would.
    OnChange,
}

/// A refresh's new token: written only while the channel row is as the run read it (the
/// forward-only guard), with how long finding it took.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub read: &'a Channel,
    pub token: &'a Secret,
    pub latency: Duration,
}

/// What one run settled for one channel.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub job: &'a RefreshJob,
    pub account_id: i64,
    pub page_id: &'a str,
    pub update: StateUpdate<'a>,
    pub new_token: Option<NewToken<'a>>,
    /// The run's history rows so far (a refresh's own row is added here, once its write is known).
    pub events: Vec<Event<'a>>,
    pub history: History,
    /// The job used its last attempt: dead-letter it, with this reason.
    pub dead: Option<&'a GraphError>,
}

impl<'a> Settlement<'a> {
    /// A run that writes only the state, keeping its whole history; the rest is set by the caller.
    pub fn new(job: &'a RefreshJob, account_id: i64, page_id: &'a str, update: StateUpdate<'a>) -> Self {
        Self {
            job,
            account_id,
            page_id,
            update,
            new_token: None,
            events: Vec::new(),
            history: History::Always,
            dead: None,
        }
    }
}

/// The batch a cycle's settlements came from, for its summary row (one per batch and account).
#[derive(Debug, Clone, Copy)]
pub struct BatchSummary {
    pub batch_id: Uuid,
    pub reason: Reason,
    pub graph_latency_ms: i64,
}

/// What [`settle`] found for one channel, in the order of the settlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub channel_id: i64,
    /// `Superseded`: someone wrote a newer token meanwhile; only the history was written.
    pub token: TokenWrite,
    /// The status before this write; `None` when the channel had none (or nothing was written).
    pub before: Option<TokenStatus>,
}

impl Settled {
    /// The status changed, as the webhook names it: from `none` for a channel's first state.
    pub fn changed(&self, to: TokenStatus) -> bool {
        self.token == TokenWrite::Written && self.before != Some(to)
    }
}

/// Writes the settlements (and the summary, when given) in one transaction; a batch's channels are
/// distinct. Nothing is written when it fails.
pub async fn settle(
    db: &sqlx::PgPool,
    codec: &Codec,
    config: &Config,
    items: &[Settlement<'_>],
    summary: Option<&BatchSummary>,
) -> Result<Vec<Settled>, sqlx::Error> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let mut settled = Vec::with_capacity(items.len());
    for item in items {
        let token = match &item.new_token {
            Some(t) => write_page_token(&mut *tx, codec, t.read, t.token).await?,
            None => TokenWrite::Written,
        };
        settled.push(Settled { channel_id: item.job.channel_id(), token, before: None });
    }
    let states: Vec<&Settlement<'_>> =
        items.iter().zip(&settled).filter(|(_, s)| s.token == TokenWrite::Written).map(|(i, _)| i).collect();
    let before = save_states(&mut tx, &states).await?;
    for s in &mut settled {
        s.before = before.get(&s.channel_id).copied().flatten();
    }
    let mut events: Vec<Event<'_>> = Vec::new();
    for (item, s) in items.iter().zip(&settled) {
        let keep = match item.history {
            History::Always => true,
            History::OnChange => s.before.is_some() && s.changed(item.update.status),
        };
        if keep {
            events.extend(item.events.iter().cloned());
        }
        if let Some(t) = &item.new_token {
            let outcome = if s.token == TokenWrite::Written { "refreshed" } else { "superseded" };
            let v = item.job.v1();
            events.push(Event {
                channel_id: v.channel_id,
                job_id: v.job_id,
                reason: v.reason,
                step: Step::Refresh,
                outcome,
                graph_latency_ms: Some(i64::try_from(t.latency.as_millis()).unwrap_or(i64::MAX)),
                error: None,
            });
        }
    }
    record_events(&mut *tx, &events).await?;
    for item in items {
        if let Some(error) = item.dead {
            record_dead_job(&mut *tx, item.job, error).await?;
        }
    }
    if !config.webhook_urls.is_empty() {
        for (item, s) in items.iter().zip(&settled).filter(|(i, s)| s.changed(i.update.status)) {
            let change = outbox::StatusChange {
                channel_id: s.channel_id,
                page_id: item.page_id.to_owned(),
                from: s.before.map_or("none", TokenStatus::as_str).to_owned(),
                to: item.update.status.as_str().to_owned(),
                error: item.update.error.map(|e| (e.code, e.subcode, e.message.clone())),
                at: Utc::now(),
            };
            outbox::enqueue_in(&mut tx, config, &change).await?;
        }
    }
    if let Some(summary) = summary {
        save_summary(&mut tx, summary, items, &settled).await?;
    }
    tx.commit().await?;
    Ok(settled)
}

/// Every state in one upsert, in channel order (so two writers never wait on each other's rows in
/// turn); returns each channel's status before (`None`: it had no state).
async fn save_states(
    tx: &mut Transaction<'_, Postgres>,
    items: &[&Settlement<'_>],
) -> Result<HashMap<i64, Option<TokenStatus>>, sqlx::Error> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let mut items = items.to_vec();
    items.sort_by_key(|i| i.job.channel_id());
    let ids: Vec<i32> = items.iter().map(|i| clamp_i32(i.job.channel_id())).collect();
    let status: Vec<&str> = items.iter().map(|i| i.update.status.as_str()).collect();
    let valid: Vec<Option<bool>> = items.iter().map(|i| i.update.token_valid).collect();
    let checked: Vec<bool> = items.iter().map(|i| i.update.checked).collect();
    let refreshed: Vec<bool> = items.iter().map(|i| i.update.refreshed).collect();
    let kind: Vec<Option<&str>> = items.iter().map(|i| i.update.error.map(|e| e.kind.as_str())).collect();
    let code: Vec<Option<i32>> = items.iter().map(|i| i.update.error.and_then(|e| e.code).map(clamp_i32)).collect();
    let subcode: Vec<Option<i32>> =
        items.iter().map(|i| i.update.error.and_then(|e| e.subcode).map(clamp_i32)).collect();
    let message: Vec<Option<&str>> = items.iter().map(|i| i.update.error.map(|e| e.message.as_str())).collect();
    let failures: Vec<i32> = items
        .iter()
        .map(|i| match i.update.failures {
            FailureCount::Keep => 0,
            FailureCount::Reset => 1,
            FailureCount::Increment => 2,
        })
        .collect();
    let next: Vec<Option<DateTime<Utc>>> = items.iter().map(|i| i.update.next_attempt_at).collect();
    // `failures` is not a column, so the conflict branch reads it from `t`; the rest of what the
    // update decides is in the inserted row (`EXCLUDED`): a time is stamped only when it changes.
    // The arrays of `&str` and of nullable values are not among the macros' parameter types: their
    // casts name the type bound instead.
    let rows = sqlx::query!(
        r#"WITH t AS (
           SELECT * FROM unnest($1::int[], $2::text[], $3::bool[], $4::bool[], $5::bool[], $6::text[], $7::int[],
                                $8::int[], $9::text[], $10::int[], $11::timestamptz[])
             AS t(channel_id, status, token_valid, checked, refreshed, kind, code, subcode, message, failures, next_at)),
         old AS (SELECT s.channel_id, s.status FROM fb_token_states s JOIN t USING (channel_id)),
         up AS (
           INSERT INTO fb_token_states AS s
             (channel_id, status, token_valid, consecutive_failures, last_checked_at, last_refreshed_at,
              last_error_kind, last_error_code, last_error_subcode, last_error_message, next_attempt_at, updated_at)
           SELECT channel_id, status, token_valid, CASE WHEN failures = 2 THEN 1 ELSE 0 END,
                  CASE WHEN checked THEN now() END, CASE WHEN refreshed THEN now() END,
                  kind, code, subcode, message, next_at, now()
           FROM t ORDER BY channel_id
           ON CONFLICT (channel_id) DO UPDATE SET
             status = EXCLUDED.status,
             token_valid = coalesce(EXCLUDED.token_valid, s.token_valid),
             consecutive_failures = CASE (SELECT t.failures FROM t WHERE t.channel_id = s.channel_id)
               WHEN 1 THEN 0 WHEN 2 THEN s.consecutive_failures + 1 ELSE s.consecutive_failures END,
             last_checked_at = coalesce(EXCLUDED.last_checked_at, s.last_checked_at),
             last_refreshed_at = coalesce(EXCLUDED.last_refreshed_at, s.last_refreshed_at),
             last_error_kind = EXCLUDED.last_error_kind,
             last_error_code = EXCLUDED.last_error_code,
             last_error_subcode = EXCLUDED.last_error_subcode,
             last_error_message = EXCLUDED.last_error_message,
             next_attempt_at = EXCLUDED.next_attempt_at,
             updated_at = now()
           RETURNING s.channel_id)
         SELECT up.channel_id AS "channel_id!", old.status AS "status?" FROM up LEFT JOIN old USING (channel_id)"#,
        &ids,
        &status as &[&str],
        &valid as &[Option<bool>],
        &checked,
        &refreshed,
        &kind as &[Option<&str>],
        &code as &[Option<i32>],
        &subcode as &[Option<i32>],
        &message as &[Option<&str>],
        &failures,
        &next as &[Option<DateTime<Utc>>],
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(|r| Ok((i64::from(r.channel_id), decode_status(r.status)?))).collect()
}

/// Per account of the batch: the channels found healthy, how many of them were healthy before, and
/// how many had no state before (neither gets an event row).
async fn save_summary(
    tx: &mut Transaction<'_, Postgres>,
    summary: &BatchSummary,
    items: &[Settlement<'_>],
    settled: &[Settled],
) -> Result<(), sqlx::Error> {
    let mut per_account: std::collections::BTreeMap<i32, [i32; 3]> = std::collections::BTreeMap::new();
    for (item, s) in items.iter().zip(settled).filter(|(i, _)| i.history == History::OnChange) {
        let entry = per_account.entry(clamp_i32(item.account_id)).or_default();
        entry[0] += 1;
        entry[1] += i32::from(!s.changed(item.update.status));
        entry[2] += i32::from(s.token == TokenWrite::Written && s.before.is_none());
    }
    if per_account.is_empty() {
        return Ok(());
    }
    let accounts: Vec<i32> = per_account.keys().copied().collect();
    let column = |n: usize| per_account.values().map(|v| v[n]).collect::<Vec<i32>>();
    let (healthy, unchanged, first_checks) = (column(0), column(1), column(2));
    sqlx::query!(
        "INSERT INTO fb_validation_batches (job_id, account_id, reason, healthy, unchanged, first_checks, graph_latency_ms)
         SELECT $1, a, $2, h, u, f, $7 FROM unnest($3::int[], $4::int[], $5::int[], $6::int[]) AS t(a, h, u, f)
         ON CONFLICT (job_id, account_id) DO UPDATE SET
           healthy = fb_validation_batches.healthy + EXCLUDED.healthy,
           unchanged = fb_validation_batches.unchanged + EXCLUDED.unchanged,
           first_checks = fb_validation_batches.first_checks + EXCLUDED.first_checks",
        summary.batch_id,
        summary.reason.as_str(),
        &accounts,
        &healthy,
        &unchanged,
        &first_checks,
        clamp_i32(summary.graph_latency_ms),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
