//! The history rows of one channel's run, held until the run settles, so they commit in the same
//! transaction as the state (and token) they explain: one commit per job, not one per row. On this
//! system's Postgres a commit waits for the WAL flush, which is most of a job's time in Postgres.

use std::time::Duration;

use crate::{
    graph::GraphError,
    job::RefreshJob,
    store::{Event, Step},
};

pub struct Journal {
    job: RefreshJob,
    rows: Vec<Row>,
}

struct Row {
    step: Step,
    outcome: String,
    latency_ms: i64,
    error: Option<GraphError>,
}

impl Journal {
    pub fn new(job: &RefreshJob) -> Self {
        Self { job: job.clone(), rows: Vec::new() }
    }

    pub fn push(&mut self, step: Step, outcome: &str, latency: Duration, error: Option<&GraphError>) {
        let latency_ms = i64::try_from(latency.as_millis()).unwrap_or(i64::MAX);
        self.rows.push(Row { step, outcome: outcome.to_owned(), latency_ms, error: error.cloned() });
    }

    pub fn job(&self) -> &RefreshJob {
        &self.job
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows as the store writes them; `clear` once they are committed.
    pub fn events(&self) -> Vec<Event<'_>> {
        let v = self.job.v1();
        self.rows
            .iter()
            .map(|r| Event {
                channel_id: v.channel_id,
                job_id: v.job_id,
                reason: v.reason,
                step: r.step,
                outcome: &r.outcome,
                graph_latency_ms: Some(r.latency_ms),
                error: r.error.as_ref(),
            })
            .collect()
    }

    pub fn clear(&mut self) {
        self.rows.clear();
    }
}
