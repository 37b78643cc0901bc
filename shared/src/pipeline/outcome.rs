//! What one run of a job settled, and the report a waiting caller reads about it.

use std::time::Duration;

use crate::{
    flags::Counted,
    graph::GraphError,
    job::{JobOutcome, RefreshJob},
    queue::{JobReport, ReportError},
};

/// What one run of a job settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The stored page token works.
    Healthy,
    /// The page token was dead; a new one was found, checked and written.
    Refreshed,
    /// Graph confirmed the token cannot be renewed without a person. Counted once for this job;
    /// below the threshold a re-check is due after `recheck_after`.
    ConfirmedFailure { counted: Counted, error: GraphError, recheck_after: Option<Duration> },
    /// Not settled: run this job again after `after` (transient failure, rate limit, pause, a
    /// store outage), as attempt `next_attempt`.
    Retry { error: GraphError, after: Duration, next_attempt: u32 },
    /// Transient failures used every attempt: the job is dead-lettered.
    GaveUp { error: GraphError },
    /// A newer token was written while we refreshed; ours was dropped. The channel is re-checked.
    Superseded,
    /// The channel no longer exists; nothing to do.
    ChannelMissing,
    /// Its token columns hold envelopes this process cannot decrypt (Chatwoot's keys unset or
    /// different here): nothing was sent, counted or flagged; `error` (and the status) says why.
    Undecryptable { error: GraphError },
}

impl Outcome {
    pub fn job_outcome(&self) -> JobOutcome {
        match self {
            Self::Healthy => JobOutcome::Healthy,
            Self::Refreshed => JobOutcome::Refreshed,
            Self::ConfirmedFailure { counted, .. } if counted.flagged => JobOutcome::ReauthorizationRequired,
            Self::ConfirmedFailure { .. } => JobOutcome::ConfirmedFailure,
            Self::Retry { .. } => JobOutcome::Retrying,
            Self::GaveUp { .. } => JobOutcome::Dead,
            Self::Superseded => JobOutcome::Superseded,
            Self::ChannelMissing => JobOutcome::ChannelMissing,
            Self::Undecryptable { .. } => JobOutcome::Undecryptable,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        self.job_outcome().as_str()
    }

    /// Whether a waiting caller has its answer.
    pub fn is_settled(&self) -> bool {
        !matches!(self, Self::Retry { .. } | Self::Superseded)
    }

    /// The report a caller waiting on `job` reads about this outcome.
    pub fn report(&self, job: &RefreshJob) -> JobReport {
        let outcome = self;
        let v = job.v1();
        let (token_valid, count, next, error) = match outcome {
            Outcome::Healthy | Outcome::Refreshed => (Some(true), Some(0), None, None),
            Outcome::ConfirmedFailure { counted, error, recheck_after } => (
                Some(false),
                Some(counted.count),
                recheck_after.map(crate::retry::at_after),
                Some(ReportError::from(error)),
            ),
            Outcome::Retry { error, after, .. } => {
                (None, None, Some(crate::retry::at_after(*after)), Some(ReportError::from(error)))
            }
            Outcome::GaveUp { error } | Outcome::Undecryptable { error } => {
                (None, None, None, Some(ReportError::from(error)))
            }
            Outcome::Superseded | Outcome::ChannelMissing => (None, None, None, None),
        };
        JobReport {
            job_id: v.job_id,
            channel_id: v.channel_id,
            attempt: v.attempt,
            outcome: outcome.job_outcome(),
            settled: outcome.is_settled(),
            token_valid,
            authorization_error_count: count,
            next_attempt_at: next,
            error,
        }
    }
}
