//! Waiting for job reports with one pub/sub connection per process.
//!
//! Each wait used to open a client, a pub/sub connection and a connection for reads of its own, so
//! any account token holding N requests open held 2N Redis connections, on Chatwoot's own Redis in
//! chatwoot mode. Here one background task holds a pattern subscription to `{q}:report:*` and wakes
//! the waiters of the job a message names; reads go through the process's `ConnectionManager`.
//! Reports of jobs nobody here waits on are dropped on arrival (a map lookup).
//!
//! Waiters are bounded (`API_MAX_WAITERS`): above the bound `wait` answers `Busy` at once, and the
//! caller says where to look later instead of holding the request open.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    config::Config,
    queue::{self, Waited},
};

/// Why a wait did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("too many requests are waiting on job reports already")]
    Busy,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Shared by every request of the process; cheap to clone. The subscription ends with the last
/// clone.
#[derive(Clone)]
pub struct ReportWaiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: ConnectionManager,
    config: Arc<Config>,
    slots: Arc<Slots>,
    permits: Arc<Semaphore>,
    _stop: DropGuard,
}

impl ReportWaiter {
    /// Starts the subscription task; `redis` serves the reads. Needs a Tokio runtime.
    pub fn start(redis: ConnectionManager, config: Arc<Config>) -> Self {
        let stop = CancellationToken::new();
        let slots = Arc::new(Slots::default());
        tokio::spawn(listen(config.clone(), slots.clone(), stop.clone()));
        Self {
            inner: Arc::new(Inner {
                redis,
                permits: Arc::new(Semaphore::new(config.api_max_waiters)),
                config,
                slots,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Waits up to `timeout` for a settled report of `job_id`. It registers before it reads, so a
    /// report published in between wakes it.
    pub async fn wait(&self, job_id: Uuid, timeout: Duration) -> Result<Waited, WaitError> {
        let _permit = self.inner.permits.clone().try_acquire_owned().map_err(|_| WaitError::Busy)?;
        let mut woken = self.inner.slots.join(job_id);
        // Bounded so an absurd timeout cannot overflow the clock.
        let deadline = tokio::time::Instant::now() + timeout.min(Duration::from_secs(86_400));
        let mut redis = self.inner.redis.clone();
        let mut last = None;
        loop {
            match queue::latest_report(&mut redis, &self.inner.config, job_id).await? {
                Some(report) if report.settled => return Ok(Waited::Settled(report)),
                Some(report) => last = Some(report),
                None => {}
            }
            match tokio::time::timeout_at(deadline, woken.rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(match last {
            Some(r) => Waited::RetryScheduled(r),
            None => Waited::NoWorker,
        })
    }

    /// Requests waiting right now.
    pub fn waiting(&self) -> usize {
        self.inner.config.api_max_waiters.saturating_sub(self.inner.permits.available_permits())
    }
}

/// One wake-up channel per job somebody waits on.
#[derive(Default)]
struct Slots {
    map: Mutex<HashMap<Uuid, Slot>>,
}

struct Slot {
    tx: watch::Sender<u64>,
    waiters: usize,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Slot>> {
        // A waiter that panicked mid-update leaves counts that are at worst off by one.
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn join(self: &Arc<Self>, job_id: Uuid) -> Registration {
        let mut map = self.lock();
        let slot = map.entry(job_id).or_insert_with(|| Slot { tx: watch::channel(0).0, waiters: 0 });
        slot.waiters += 1;
        Registration { slots: self.clone(), job_id, rx: slot.tx.subscribe() }
    }

    fn wake(&self, job_id: Uuid) {
        if let Some(slot) = self.lock().get(&job_id) {
            slot.tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn wake_all(&self) {
        for slot in self.lock().values() {
            slot.tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

struct Registration {
    slots: Arc<Slots>,
    job_id: Uuid,
    rx: watch::Receiver<u64>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.slots.lock();
        if let Some(slot) = map.get_mut(&self.job_id) {
            slot.waiters = slot.waiters.saturating_sub(1);
            if slot.waiters == 0 {
                map.remove(&self.job_id);
            }
        }
    }
}

/// Holds the subscription, reconnecting with backoff, until `stop`.
async fn listen(config: Arc<Config>, slots: Arc<Slots>, stop: CancellationToken) {
    let prefix = crate::keys::RedisKeys::of(&config).report_prefix();
    let pattern = format!("{}*", crate::redis_ops::glob_escape(&prefix));
    let mut backoff = crate::redis_ops::reconnect_backoff();
    loop {
        let subscribe = async {
            let client = crate::queue::client(&config)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let subscribed = tokio::select! {
            () = stop.cancelled() => return,
            r = subscribe => r,
        };
        match subscribed {
            Ok(pubsub) => {
                backoff = crate::redis_ops::reconnect_backoff();
                // Reports published while nothing was subscribed were not heard: everyone re-reads.
                slots.wake_all();
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else { break };
                    if let Some(id) = message.get_channel_name().strip_prefix(&prefix).and_then(|s| s.parse().ok()) {
                        slots.wake(id);
                    }
                }
                warn!("job report subscription lost; reconnecting");
            }
            Err(e) => warn!(error = %e, "cannot subscribe to job reports; retrying"),
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => info!(after_ms = delay.as_millis() as u64, "resubscribing to job reports"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_go_when_their_last_waiter_does() {
        let slots = Arc::new(Slots::default());
        let id = Uuid::new_v4();
        let (a, mut b) = (slots.join(id), slots.join(id));
        slots.wake(id);
        assert!(b.rx.has_changed().unwrap_or(false));
        b.rx.mark_unchanged();
        drop(a);
        assert_eq!(slots.lock().get(&id).map(|s| s.waiters), Some(1));
        drop(b);
        assert!(slots.lock().is_empty());
    }
}
