//! A cycle's batch of up to 50 channels: one Graph batch call validates them all; healthy ones are
//! settled together; failing ones are refreshed with one `/me/accounts` sweep per user token; what
//! cannot be decided now goes to single-channel jobs (their own retries, their own reports).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tracing::warn;
use uuid::Uuid;

use crate::{
    flags,
    graph::{ErrorKind, GraphError, PageLookup},
    job::{BatchJob, RefreshJob},
    locks,
    metrics::Metrics,
    pauses,
    pipeline::{CHANNEL_BUSY_WAIT, DEFAULT_RATE_LIMIT_WAIT, InfraError, Journal, LOCK_TTL, Outcome, Pipeline},
    store::{self, Channel, History, StateUpdate, Step},
};

/// What a batch settled, and what its caller must still do.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Validated: flags cleared, state written. Their markers can be released.
    pub healthy: Vec<i64>,
    /// The same channels as read for the batch (what follows a healthy check needs their tokens).
    pub healthy_channels: Vec<Channel>,
    /// Channels no longer there.
    pub missing: Vec<i64>,
    /// Refreshed or failed by a sweep: settle each like a single job's outcome.
    pub settled: Vec<(RefreshJob, Outcome)>,
    /// Handed to single-channel jobs, to run after the delay (a channel another job was working on,
    /// an item Graph did not answer cleanly).
    pub later: Vec<(RefreshJob, Duration)>,
    /// The whole batch runs again after this, as this attempt.
    pub retry_batch: Option<(Duration, u32)>,
}

impl Pipeline {
    /// [`Pipeline::run_batch`], then the webhook subscription check of the pages it wrote new
    /// tokens for (one Graph batch read for all), which cannot touch the outcome.
    pub async fn process_batch(&self, job: &BatchJob) -> Result<BatchOutcome, InfraError> {
        let result = self.run_batch(job).await;
        if let Ok(out) = &result {
            self.after_batch_refreshes(out).await;
        }
        result
    }

    /// The subscription check of the channels a batch refreshed (once their reports are out, for
    /// a caller of [`Pipeline::run_batch`]).
    pub async fn after_batch_refreshes(&self, out: &BatchOutcome) {
        let refreshed: Vec<&RefreshJob> =
            out.settled.iter().filter(|(_, o)| *o == Outcome::Refreshed).map(|(j, _)| j).collect();
        if !refreshed.is_empty() {
            self.after_refreshes(&refreshed).await;
        }
    }

    /// Runs the batch under the lock of each of its channels, as a single job would. A channel
    /// another job is working on is not touched: it goes on as a single job shortly after.
    pub async fn run_batch(&self, job: &BatchJob) -> Result<BatchOutcome, InfraError> {
        let mut redis = self.redis.clone();
        let keys = self.keys.clone();
        let claims: Vec<(i64, Uuid)> = job.v1().channel_ids.iter().map(|&c| (c, job.single(c).job_id())).collect();
        let taken = locks::acquire_many(&mut redis, &keys, &claims, LOCK_TTL).await?;
        let mut out = BatchOutcome::default();
        let mut held = Vec::with_capacity(claims.len());
        for (claim, taken) in claims.into_iter().zip(taken) {
            if taken {
                held.push(claim);
            } else {
                out.later.push((job.single(claim.0), CHANNEL_BUSY_WAIT));
            }
        }
        let renew = async {
            let mut redis = self.redis.clone();
            let mut still = held.clone();
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                match locks::renew_many(&mut redis, &keys, &still, LOCK_TTL).await {
                    Ok(renewed) => {
                        let lost: Vec<i64> =
                            still.iter().zip(&renewed).filter(|(_, r)| !**r).map(|(c, _)| c.0).collect();
                        if !lost.is_empty() {
                            // Their counts check the lock and will not land (those channels run
                            // again as single jobs); nothing else needs stopping.
                            warn!(channels = ?lost, "batch lost channel locks mid-run; it counts no failure for them");
                            still.retain(|(c, _)| !lost.contains(c));
                        }
                    }
                    Err(e) => warn!(error = %e, "could not renew the batch's channel locks"),
                }
            }
        };
        let ids: Vec<i64> = held.iter().map(|(c, _)| *c).collect();
        let result = tokio::select! {
            result = self.process_held(job, &ids, out) => result,
            () = renew => unreachable!("the renewal loop never ends"),
        };
        if let Err(e) = locks::release_many(&mut redis, &keys, &held).await {
            // They expire on their own.
            warn!(error = %e, "could not release the batch's channel locks");
        }
        result
    }

    async fn process_held(
        &self,
        job: &BatchJob,
        ids: &[i64],
        mut out: BatchOutcome,
    ) -> Result<BatchOutcome, InfraError> {
        if ids.is_empty() {
            return Ok(out);
        }
        let loaded = store::load_channels(&self.db, &self.codec, ids).await?;
        let id_of = |l: &store::Loaded| l.as_ref().map_or_else(|u| u.id, |c| c.id);
        out.missing = ids.iter().copied().filter(|id| !loaded.iter().any(|l| id_of(l) == *id)).collect();
        let mut channels = Vec::with_capacity(loaded.len());
        for l in loaded {
            match l {
                Ok(channel) => channels.push(channel),
                Err(unreadable) => {
                    let single = job.single(unreadable.id);
                    let outcome = self.undecryptable(&single, &unreadable).await?;
                    out.settled.push((single, outcome));
                }
            }
        }
        let pages: Vec<&str> = channels.iter().map(|c| c.page_id.as_str()).collect();
        let waits = pauses::remaining_many(&mut self.redis.clone(), &self.keys, &pages).await?;
        let mut to_check = Vec::with_capacity(channels.len());
        for (channel, wait) in channels.into_iter().zip(waits) {
            match wait {
                Some(wait) => {
                    // Waits like a single job would: state `retrying`, no attempt used.
                    let single = job.single(channel.id);
                    let error = GraphError {
                        kind: ErrorKind::RateLimited,
                        ..GraphError::transport("rate-limit pause in force")
                    };
                    let mut journal = Journal::new(&single);
                    let outcome = self.retry_later(&single, &mut journal, &channel, error, Some(wait)).await?;
                    out.settled.push((single, outcome));
                }
                None => to_check.push(channel),
            }
        }
        if to_check.is_empty() {
            return Ok(out);
        }
        let items: Vec<(String, crate::secret::Secret)> =
            to_check.iter().map(|c| (c.page_id.clone(), c.page_token.clone())).collect();
        let started = Instant::now();
        let answers = match self.graph.validate_batch(&items).await {
            Ok(answers) => answers,
            Err(error) => return self.batch_failed(job, to_check, error, out).await,
        };
        let latency = started.elapsed() / u32::try_from(items.len()).unwrap_or(1).max(1);
        self.metrics.observe("validate_batch", started.elapsed().as_secs_f64());
        // Keyed by the decrypted user token's digest: equal tokens are unequal ciphertexts.
        let mut failing: HashMap<Vec<u8>, Vec<(RefreshJob, Journal, Channel)>> = HashMap::new();
        let mut healthy = Vec::with_capacity(to_check.len());
        for (channel, answer) in to_check.into_iter().zip(answers) {
            let single = job.single(channel.id);
            match answer {
                Ok(usage) => {
                    Metrics::count(&self.metrics.validations, "ok");
                    // Cycles make most of the calls: their usage must pause like single calls'.
                    self.pause_if_near_limit(&channel, usage).await?;
                    healthy.push((single, channel));
                }
                Err(error) => {
                    let mut journal = Journal::new(&single);
                    self.record_validation(&mut journal, &channel, Some(&error), latency);
                    if error.kind.is_confirmed_failure() {
                        failing
                            .entry(store::user_token_digest(&channel.user_token))
                            .or_default()
                            .push((single, journal, channel));
                    } else {
                        // Not decided: the channel continues as a single job with its own retries
                        // (a rate limit pauses the page first); its state says `retrying`.
                        let outcome = self.not_settled(&single, &mut journal, &channel, error).await?;
                        out.settled.push((single, outcome));
                    }
                }
            }
        }
        self.settle_healthy(job, &healthy, latency).await?;
        out.healthy = healthy.iter().map(|(_, c)| c.id).collect();
        out.healthy_channels = healthy.into_iter().map(|(_, c)| c).collect();
        for (_, group) in failing {
            self.sweep(group, &mut out).await?;
        }
        Ok(out)
    }

    /// The healthy channels of a batch, settled together: one script clears their flags, one
    /// `store::settle` writes their states, the history and webhook rows of those that changed, and
    /// the batch's summary row.
    async fn settle_healthy(
        &self,
        job: &BatchJob,
        healthy: &[(RefreshJob, Channel)],
        latency: Duration,
    ) -> Result<(), InfraError> {
        if healthy.is_empty() {
            return Ok(());
        }
        let owners: Vec<_> = healthy.iter().map(|(_, c)| c.owner()).collect();
        flags::clear_many(&mut self.redis.clone(), &self.keys, &owners).await?;
        let latency_ms = i64::try_from(latency.as_millis()).unwrap_or(i64::MAX);
        let items: Vec<store::Settlement<'_>> = healthy
            .iter()
            .map(|(single, c)| {
                let v = single.v1();
                store::Settlement {
                    events: vec![store::Event {
                        channel_id: v.channel_id,
                        job_id: v.job_id,
                        reason: v.reason,
                        step: Step::Validate,
                        outcome: "ok",
                        graph_latency_ms: Some(latency_ms),
                        error: None,
                    }],
                    history: History::OnChange,
                    ..store::Settlement::new(single, c.account_id, &c.page_id, StateUpdate::healthy())
                }
            })
            .collect();
        let summary =
            store::BatchSummary { batch_id: job.v1().job_id, reason: job.v1().reason, graph_latency_ms: latency_ms };
        store::settle(&self.db, &self.codec, &self.config, &items, Some(&summary)).await?;
        Ok(())
    }

    /// One `/me/accounts` sweep for every failing page of one user token, then each page settles
    /// on its own (new token checked and written, or the failure counted).
    async fn sweep(
        &self,
        group: Vec<(RefreshJob, Journal, Channel)>,
        out: &mut BatchOutcome,
    ) -> Result<(), InfraError> {
        let Some((_, _, first)) = group.first() else { return Ok(()) };
        let user_token = first.user_token.clone();
        let pages: Vec<String> = group.iter().map(|(_, _, c)| c.page_id.clone()).collect();
        let started = Instant::now();
        let swept = self.graph.find_page_tokens(&user_token, &pages).await;
        self.metrics.observe("refresh_sweep", started.elapsed().as_secs_f64());
        let mut lookups = match swept {
            Ok(map) => map,
            Err(error) => {
                for (single, mut journal, channel) in group {
                    let found = Err(error.clone());
                    let outcome = self.refresh_found(&single, &mut journal, &channel, found, started.elapsed()).await?;
                    self.flush(&mut journal).await?;
                    out.settled.push((single, outcome));
                }
                return Ok(());
            }
        };
        for (single, mut journal, channel) in group {
            let lookup = lookups.remove(&channel.page_id).unwrap_or(PageLookup::NotManaged);
            let checked = self.check_found(&channel, lookup).await;
            Metrics::count(&self.metrics.refreshes, checked.as_ref().map_or_else(|e| e.kind.as_str(), |_| "ok"));
            let outcome = self.refresh_found(&single, &mut journal, &channel, checked, started.elapsed()).await?;
            // A run that wrote no state (superseded, lock lost) still keeps its history.
            self.flush(&mut journal).await?;
            out.settled.push((single, outcome));
        }
        Ok(())
    }

    /// The batch call failed as a whole: it runs again (transient), or waits out a limit; past its
    /// attempts its channels go to single jobs, so nothing is dropped.
    async fn batch_failed(
        &self,
        job: &BatchJob,
        channels: Vec<Channel>,
        error: GraphError,
        mut out: BatchOutcome,
    ) -> Result<BatchOutcome, InfraError> {
        self.metrics.graph_error(error.code);
        let attempt = job.v1().attempt;
        warn!(error = %error, attempt, channels = channels.len(), "Graph batch call failed");
        if error.kind == ErrorKind::RateLimited {
            // An app-level limit announces no time: the app waits 60 s at a time.
            let wait = if error.app_level { DEFAULT_RATE_LIMIT_WAIT } else { self.announced(error.retry_after) };
            if error.app_level {
                pauses::pause(&mut self.redis.clone(), &self.keys, "", true, wait).await?;
            }
            out.retry_batch = Some((wait, attempt));
            return Ok(out);
        }
        match self.retry.delay(attempt, None) {
            Some(after) => out.retry_batch = Some((after, attempt + 1)),
            None => out.later.extend(channels.iter().map(|c| (job.single(c.id), Duration::ZERO))),
        }
        Ok(out)
    }
}
