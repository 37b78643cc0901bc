//! Every Redis key this system reads or writes, named in one place: ours under
//! `{REDIS_KEY_PREFIX}fb_token_refresh`, apalis' beside them under the queue's name, and the flags
//! the inbox reads, in our style or in Chatwoot's own (`alfred:`) style.

use uuid::Uuid;

use crate::config::{Config, FlagStyle};

#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
    style: FlagStyle,
}

impl RedisKeys {
    pub fn new(prefix: impl Into<String>, style: FlagStyle) -> Self {
        Self { prefix: prefix.into(), style }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn reauthorization_required(&self, channel_id: i64) -> String {
        match self.style {
            FlagStyle::Seed => format!("{}reauthorization_required:channel_facebook_page:{channel_id}", self.prefix),
            FlagStyle::Chatwoot => {
                format!("{}alfred:REAUTHORIZATION_REQUIRED:channel_facebook_page:{channel_id}", self.prefix)
            }
        }
    }

    pub fn authorization_error_count(&self, channel_id: i64) -> String {
        format!("{}{channel_id}", self.authorization_error_count_prefix())
    }

    pub fn counted(&self, job_id: Uuid) -> String {
        format!("{}fb_token_refresh:counted:{job_id}", self.prefix)
    }

    /// Chatwoot's `idb-cache-key-account-ID-inbox` (`CacheKeysHelper#get_prefixed_cache_key`, in
    /// the `alfred` namespace); `None` in our own key style, which no Chatwoot reads.
    pub fn inbox_cache_key(&self, account_id: i64) -> Option<String> {
        match self.style {
            FlagStyle::Seed => None,
            FlagStyle::Chatwoot => Some(format!("{}alfred:idb-cache-key-account-{account_id}-inbox", self.prefix)),
        }
    }

    /// The counter watcher's record of each channel's count as last accounted for (by the watcher
    /// or by our own counting): a count above it is an increment someone else made.
    pub fn counter_seen(&self) -> String {
        format!("{}fb_token_refresh:counter_seen", self.prefix)
    }

    /// Observations claimed by a watcher and not yet reported, scored by when the claim lapses (a
    /// replica that died between claim and report leaves one for another to take).
    pub fn counter_inflight(&self) -> String {
        format!("{}fb_token_refresh:counter_inflight", self.prefix)
    }

    /// The count key of every channel, as a glob (keyspace notifications are subscribed by it).
    pub fn authorization_error_count_pattern(&self) -> String {
        format!("{}*", crate::redis_ops::glob_escape(&self.authorization_error_count_prefix()))
    }

    /// What precedes the channel id in a count key.
    pub fn authorization_error_count_prefix(&self) -> String {
        match self.style {
            FlagStyle::Seed => format!("{}authorization_error_count:channel_facebook_page:", self.prefix),
            FlagStyle::Chatwoot => format!("{}alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:", self.prefix),
        }
    }

    /// Our keys and the config's flag style: the way every process names them.
    pub fn of(config: &Config) -> Self {
        Self::new(config.redis_key_prefix.clone(), config.flag_style)
    }

    pub fn style(&self) -> FlagStyle {
        self.style
    }

    /// Every key of ours (not Chatwoot's) starts with this.
    fn ours(&self) -> String {
        format!("{}fb_token_refresh", self.prefix)
    }

    /// A channel's lock while a job works on it (the `locks` module).
    pub fn lock(&self, channel_id: i64) -> String {
        format!("{}:lock:channel:{channel_id}", self.ours())
    }

    /// A channel's pending marker: the job queued or running for it (the `pending` module).
    pub fn pending(&self, channel_id: i64) -> String {
        format!("{}:pending:{channel_id}", self.ours())
    }

    /// Set while an operator has paused the cron schedule (the `schedule` module): every
    /// producer replica reads it before claiming a tick.
    pub fn schedule_paused(&self) -> String {
        format!("{}:schedule:paused", self.ours())
    }

    /// A page's rate-limit pause (the `pauses` module).
    pub fn pause_page(&self, page_id: &str) -> String {
        format!("{}:pause:page:{page_id}", self.ours())
    }

    /// The whole app's rate-limit pause.
    pub fn pause_app(&self) -> String {
        format!("{}:pause:app", self.ours())
    }

    /// An account's front-of-queue refreshes this minute (the `quota` module).
    pub fn front_refresh_quota(&self, account_id: i64) -> String {
        format!("{}:quota:front_refresh:{account_id}", self.ours())
    }

    /// When a channel's proactive exchange was last tried.
    pub fn proactive(&self, channel_id: i64) -> String {
        format!("{}:proactive:{channel_id}", self.ours())
    }

    /// Present while a channel's daily subscription check is less than a day old.
    pub fn subscription_checked(&self, channel_id: i64) -> String {
        format!("{}:subscription_checked:{channel_id}", self.ours())
    }

    /// Present while a user token's expiry check is recent (`digest`: its hex digest).
    pub fn expiry_checked(&self, digest: &str) -> String {
        format!("{}:expiry_checked:{}", self.ours(), &digest[..digest.len().min(32)])
    }

    /// A dashboard session, by the hash of its cookie.
    pub fn session(&self, cookie_hash: &str) -> String {
        format!("{}:session:{cookie_hash}", self.ours())
    }

    /// The apalis queue's name; apalis-redis hangs its own keys off it (`{queue}:active`, ...).
    pub fn queue(&self) -> String {
        self.ours()
    }

    fn queue_key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.queue())
    }

    /// apalis-redis' own keys of the queue, as its `Config` names them.
    pub fn active(&self) -> String {
        self.queue_key("active")
    }

    pub fn scheduled(&self) -> String {
        self.queue_key("scheduled")
    }

    pub fn data(&self) -> String {
        self.queue_key("data")
    }

    pub fn done(&self) -> String {
        self.queue_key("done")
    }

    pub fn dead(&self) -> String {
        self.queue_key("dead")
    }

    pub fn workers(&self) -> String {
        self.queue_key("workers")
    }

    pub fn inflight(&self, worker: &str) -> String {
        self.queue_key(&format!("inflight:{worker}"))
    }

    pub fn meta(&self, task_id: &str) -> String {
        self.queue_key(&format!("meta:{task_id}"))
    }

    /// Send-failure refreshes waiting for room in the queue.
    pub fn deferred(&self) -> String {
        self.queue_key("deferred")
    }

    /// Where a job's latest report is kept and announced.
    pub fn report(&self, job_id: Uuid) -> String {
        format!("{}{job_id}", self.report_prefix())
    }

    pub fn report_prefix(&self) -> String {
        self.queue_key("report:")
    }

    /// Published on when a job is put at the head of the queue, to wake idle workers.
    pub fn wake(&self) -> String {
        self.queue_key("wake")
    }

    /// A cron tick's claim (one replica enqueues each tick), and its cycle's progress.
    pub fn cron_tick(&self, unix_secs: i64) -> String {
        self.queue_key(&format!("cron:{unix_secs}"))
    }

    pub fn cron_progress(&self, unix_secs: i64) -> String {
        self.queue_key(&format!("cron:{unix_secs}:progress"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operators' dashboards and earlier replicas read these names: moving them into one type
    /// must not have renamed any.
    #[test]
    fn our_keys_keep_their_names() {
        let k = RedisKeys::new("p:", FlagStyle::Seed);
        let job = Uuid::nil();
        let expected = [
            (k.queue(), "p:fb_token_refresh"),
            (k.active(), "p:fb_token_refresh:active"),
            (k.scheduled(), "p:fb_token_refresh:scheduled"),
            (k.data(), "p:fb_token_refresh:data"),
            (k.done(), "p:fb_token_refresh:done"),
            (k.dead(), "p:fb_token_refresh:dead"),
            (k.workers(), "p:fb_token_refresh:workers"),
            (k.inflight("w1"), "p:fb_token_refresh:inflight:w1"),
            (k.meta("t1"), "p:fb_token_refresh:meta:t1"),
            (k.deferred(), "p:fb_token_refresh:deferred"),
            (k.wake(), "p:fb_token_refresh:wake"),
            (k.report(job), "p:fb_token_refresh:report:00000000-0000-0000-0000-000000000000"),
            (k.cron_tick(60), "p:fb_token_refresh:cron:60"),
            (k.cron_progress(60), "p:fb_token_refresh:cron:60:progress"),
            (k.lock(7), "p:fb_token_refresh:lock:channel:7"),
            (k.pending(7), "p:fb_token_refresh:pending:7"),
            (k.pause_page("42"), "p:fb_token_refresh:pause:page:42"),
            (k.pause_app(), "p:fb_token_refresh:pause:app"),
            (k.schedule_paused(), "p:fb_token_refresh:schedule:paused"),
            (k.counted(job), "p:fb_token_refresh:counted:00000000-0000-0000-0000-000000000000"),
            (k.front_refresh_quota(3), "p:fb_token_refresh:quota:front_refresh:3"),
            (k.proactive(7), "p:fb_token_refresh:proactive:7"),
            (k.subscription_checked(7), "p:fb_token_refresh:subscription_checked:7"),
            (k.expiry_checked(&"ab".repeat(32)), "p:fb_token_refresh:expiry_checked:abababababababababababababababab"),
            (k.session("h"), "p:fb_token_refresh:session:h"),
        ];
        for (got, want) in expected {
            assert_eq!(got, want);
        }
    }
}
