//! The retry policy for transient failures: a typed value with a pure `delay`, so the schedule can be
//! tested without a queue. Delays come from `backon`'s exponential builder; the worker re-schedules
//! the job in Redis for that long instead of sleeping (apalis-redis 1.0 ignores `max_attempts` and
//! `RetryAfter`, so the queue's own retry cannot be used).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub factor: f64,
    pub max: Duration,
    /// Attempts in all, the first one included; after the last, the job is dead-lettered.
    pub max_attempts: u32,
    /// Spread re-tries so a burst of failures does not come back as one burst.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), factor: 2.0, max: Duration::from_secs(60), max_attempts: 10, jitter: true }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. `None` when no
    /// attempt is left. A server-announced wait (`hint`) is honoured even past `max`: calling
    /// earlier only extends a rate limit.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let step = self.backoff(attempt);
        Some(hint.map_or(step, |h| h.max(step)))
    }

    /// The `n`th delay (1-based) with no attempt limit: for waits that are nobody's fault, such as
    /// a store outage, which must not use up a job's attempts.
    pub fn backoff(&self, n: u32) -> Duration {
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.base)
            .with_factor(self.factor as f32)
            .with_max_delay(self.max);
        if self.jitter {
            builder = builder.with_jitter();
        }
        // `without_max_times` makes the iterator endless, so `nth` always answers.
        let step = builder.without_max_times().build().nth(n.saturating_sub(1).min(64) as usize).unwrap_or(self.max);
        // backon's jitter adds up to one more `step`; keep the cap a cap.
        step.min(self.max)
    }
}

/// `now + delay`, saturating at chrono's last date instead of panicking past it (~262,000 years):
/// a panic here would stop the worker, and the same job would stop the next one.
pub fn at_after(delay: Duration) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::TimeDelta::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_never_overflows() {
        let hour = at_after(Duration::from_secs(3_600)) - chrono::Utc::now();
        assert!((3_595..=3_600).contains(&hour.num_seconds()), "{hour}");
        for huge in [Duration::from_secs(200_000_000_000 * 60), Duration::from_secs(u64::MAX), Duration::MAX] {
            assert_eq!(at_after(huge), chrono::DateTime::<chrono::Utc>::MAX_UTC);
        }
    }

    fn plain() -> RetryPolicy {
        RetryPolicy { jitter: false, ..RetryPolicy::default() }
    }

    #[test]
    fn grows_by_factor_up_to_the_cap() {
        let p = plain();
        let got: Vec<u64> = (1..10).map(|a| p.delay(a, None).expect("attempt left").as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn stops_after_max_attempts() {
        let p = plain();
        assert!(p.delay(9, None).is_some());
        assert_eq!(p.delay(10, None), None);
        assert_eq!(p.delay(11, None), None);
    }

    #[test]
    fn backoff_has_no_attempt_limit() {
        let p = plain();
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(50), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn hint_wins_when_longer() {
        let p = plain();
        assert_eq!(p.delay(1, Some(Duration::from_secs(300))), Some(Duration::from_secs(300)));
        assert_eq!(p.delay(5, Some(Duration::from_millis(10))), Some(Duration::from_secs(16)));
    }

    #[test]
    fn jitter_stays_within_step_and_cap() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            for _ in 0..50 {
                let d = p.delay(attempt, None).expect("attempt left");
                let step = plain().delay(attempt, None).expect("attempt left");
                assert!(d >= step && d <= p.max, "attempt {attempt}: {d:?} vs {step:?}");
            }
        }
    }
}
