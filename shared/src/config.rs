//! Configuration: defaults, then the environment (names as in CONTRACT.md), validated once at start.
//! Every error names the variable, so an operator knows what to fix. Nothing else reads `env::var`.

mod connection;

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use crate::{retry::RetryPolicy, secret::Secret};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/fb_token_refresh";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com/v24.0";
pub const DEFAULT_REFRESH_CRON: &str = "0 0 */6 * * *";
/// An `ADMIN_API_TOKEN` shorter than this is warned about at start (refusing it would stop an
/// existing install on upgrade).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("invalid {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

/// Which Redis key names carry the flags: ours, or the ones Chatwoot itself reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagStyle {
    Seed,
    Chatwoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Secret,
    pub redis_url: Secret,
    /// Prepended to every Redis key this system writes (queue, flags, locks). Empty in production;
    /// tests give each run its own prefix so they can share one Redis.
    pub redis_key_prefix: String,
    pub fb_app_id: Option<String>,
    pub fb_app_secret: Option<Secret>,
    pub fb_verify_token: Option<Secret>,
    pub fb_graph_url: String,
    pub refresh_cron: String,
    pub api_bind: SocketAddr,
    pub worker_metrics_bind: SocketAddr,
    pub worker_concurrency: usize,
    pub authorization_error_threshold: u32,
    pub flag_style: FlagStyle,
    pub admin_api_token: Option<Secret>,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    pub fb_http_timeout: Duration,
    pub fb_connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Jobs due or waiting in the queue at most; producers wait (or defer) above it. apalis-redis
    /// 1.0 workers fail every fetch at ~8,000 due jobs.
    pub queue_backlog_max: u64,
    /// Where the dashboard's "Reconnect manually" goes; `{account_id}` and `{inbox_id}` are
    /// filled in.
    pub reconnect_url_template: String,
    /// Usage percentage (`X-App-Usage`, `X-Business-Use-Case-Usage`) at which calls pause before
    /// Graph starts refusing them.
    pub rate_limit_usage_threshold: u64,
    /// Endpoints that receive a signed JSON POST on every token status change (`WEBHOOK_URLS`,
    /// comma separated, http(s) only, duplicates dropped). Empty: no webhooks.
    pub webhook_urls: Vec<String>,
    /// Key of the `X-Signature-256` and Standard Webhooks `webhook-signature` headers
    /// (`WEBHOOK_SECRET`; `whsec_<base64>` is decoded for the latter). Without it webhooks are
    /// sent unsigned.
    pub webhook_secret: Option<Secret>,
    /// A user token expiring within this many days is exchanged for a fresh one while it works.
    pub proactive_refresh_days: u32,
    /// The longest wait Graph may impose on us through `estimated_time_to_regain_access`,
    /// `Retry-After` or usage headers (`RATE_LIMIT_MAX_WAIT_SECS`): a broken or hostile answer must
    /// not pause a page, or the app, for years.
    pub rate_limit_max_wait: Duration,
    /// Postgres connections per process (`DATABASE_POOL_SIZE`); `None`: the process kind's default
    /// (see `database_pool_size`). Kept apart from `WORKER_CONCURRENCY` because the database is
    /// Chatwoot's, shared with its puma and sidekiq.
    pub database_pool_size: Option<u32>,
    /// History older than this many days is deleted (`HISTORY_RETENTION_DAYS`).
    pub history_retention_days: u32,
    /// Refreshes per account per minute that the API and the dashboard put at the head of the
    /// queue (`API_REFRESH_PER_MINUTE`); above it they answer 429. One tenant must not keep the head
    /// busy and starve everyone's cron backlog.
    pub api_refresh_per_minute: u32,
    /// Requests (API `?wait`, dashboard refresh) waiting on a job report at once, per producer
    /// (`API_MAX_WAITERS`); above it a refresh answers 202 with its status URL at once.
    pub api_max_waiters: usize,
    /// Addition: a PEM CA bundle that alone verifies a `rediss://` server (`REDIS_TLS_CA_FILE`).
    /// `SSL_CERT_FILE` would do for Redis too, but it replaces the trust roots of the whole
    /// process, Graph calls included.
    pub redis_tls_ca_file: Option<PathBuf>,
    /// Chatwoot's three Active Record Encryption values (`ACTIVE_RECORD_ENCRYPTION_*`, same names
    /// as in its `.env`): all three set, or none. With them, token columns are read and written as
    /// Rails envelopes.
    pub encryption: Option<EncryptionKeys>,
    /// Addition: the Postgres schema that holds the system's own tables and its migration
    /// bookkeeping (`DATABASE_SCHEMA`), so nothing of ours lands in Chatwoot's `public`.
    pub database_schema: String,
    /// Addition: with Chatwoot's key style, whether `producer serve` watches Chatwoot's own
    /// failure counter (`COUNTER_WATCH`, `on` or `off`).
    pub counter_watch: bool,
    /// Addition: how often the watcher reads every channel's count when Redis sends no keyspace
    /// notifications (`COUNTER_WATCH_INTERVAL_MS`, 100..=4000, so an increment is noticed within
    /// the contract's 5 s).
    pub counter_watch_interval: Duration,
}

/// The inputs of Rails' key derivation, as Chatwoot's `.env` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionKeys {
    pub primary_key: Secret,
    /// Chatwoot sets it, but non-deterministic columns (the token columns) never use it.
    pub deterministic_key: Secret,
    pub key_derivation_salt: Secret,
}

pub const DEFAULT_DATABASE_SCHEMA: &str = "fb_token_refresh";

const ENCRYPTION_VARS: [&str; 3] = [
    "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
    "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
];

/// Chatwoot encrypts only when all three are set (`Chatwoot.encryption_configured?`); one or two
/// of them is a half-copied `.env`, which would make us write plaintext where Chatwoot reads
/// envelopes or the other way round, so it is refused.
fn encryption_keys(get: &impl Fn(&str) -> Option<String>) -> Result<Option<EncryptionKeys>, ConfigError> {
    let [p, d, s] = ENCRYPTION_VARS.map(|v| get(v).filter(|x| !x.trim().is_empty()));
    match (p, d, s) {
        (None, None, None) => Ok(None),
        (Some(p), Some(d), Some(s)) => Ok(Some(EncryptionKeys {
            primary_key: Secret::new(p),
            deterministic_key: Secret::new(d),
            key_derivation_salt: Secret::new(s),
        })),
        (p, d, s) => {
            let missing = ENCRYPTION_VARS
                .iter()
                .zip([p.is_none(), d.is_none(), s.is_none()])
                .filter(|(_, m)| *m)
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", ");
            Err(ConfigError {
                var: "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
                value: "[redacted]".into(),
                reason: format!(
                    "set all three ACTIVE_RECORD_ENCRYPTION_* values (as in Chatwoot's .env) or none; missing: {missing}"
                ),
            })
        }
    }
}

fn valid_schema_name(v: &str) -> bool {
    v != "public"
        && v.len() <= 63
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && v.bytes().next().is_some_and(|b| !b.is_ascii_digit())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: Secret::new(DEFAULT_DATABASE_URL),
            redis_url: Secret::new(DEFAULT_REDIS_URL),
            redis_key_prefix: String::new(),
            fb_app_id: None,
            fb_app_secret: None,
            fb_verify_token: None,
            fb_graph_url: DEFAULT_GRAPH_URL.to_owned(),
            refresh_cron: DEFAULT_REFRESH_CRON.to_owned(),
            api_bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            worker_metrics_bind: SocketAddr::from(([127, 0, 0, 1], 9091)),
            worker_concurrency: 32,
            authorization_error_threshold: 2,
            flag_style: FlagStyle::Seed,
            admin_api_token: None,
            log_format: LogFormat::Text,
            shutdown_grace: Duration::from_secs(30),
            fb_http_timeout: Duration::from_secs(20),
            fb_connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            queue_backlog_max: 5_000,
            reconnect_url_template: "/app/accounts/{account_id}/settings/inboxes/{inbox_id}".into(),
            rate_limit_usage_threshold: 90,
            webhook_urls: Vec::new(),
            webhook_secret: None,
            proactive_refresh_days: 10,
            counter_watch: true,
            counter_watch_interval: Duration::from_secs(1),
            rate_limit_max_wait: Duration::from_secs(3_600),
            database_pool_size: None,
            history_retention_days: 30,
            api_refresh_per_minute: 30,
            api_max_waiters: 1_000,
            redis_tls_ca_file: None,
            encryption: None,
            database_schema: DEFAULT_DATABASE_SCHEMA.to_owned(),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any name -> value lookup, so tests need not touch the
    /// process environment.
    pub fn from_lookup(raw: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| raw(name).filter(|v| !v.trim().is_empty());
        let d = Config::default();
        let retry = RetryPolicy {
            base: secs_f64(&get, "RETRY_BASE_SECS", d.retry.base)?,
            factor: parse(&get, "RETRY_FACTOR", d.retry.factor, |f: &f64| *f >= 1.0, "must be >= 1")?,
            max: secs_f64(&get, "RETRY_MAX_SECS", d.retry.max)?,
            max_attempts: parse(&get, "RETRY_MAX_ATTEMPTS", d.retry.max_attempts, |n: &u32| *n >= 1, "must be >= 1")?,
            jitter: d.retry.jitter,
        };
        if retry.max < retry.base {
            return Err(ConfigError {
                var: "RETRY_MAX_SECS",
                value: format!("{}", retry.max.as_secs_f64()),
                reason: "must not be below RETRY_BASE_SECS".into(),
            });
        }
        let fb_graph_url = match get("FB_GRAPH_URL") {
            None => d.fb_graph_url,
            Some(v) => {
                let url = url::Url::parse(&v).map_err(|e| err("FB_GRAPH_URL", &v, e))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(err("FB_GRAPH_URL", &v, "scheme must be http or https"));
                }
                v.trim_end_matches('/').to_owned()
            }
        };
        // `DATABASE_URL` wins; Chatwoot's `POSTGRES_*` stand in for it, so its `.env` works as is.
        let database_url = match get("DATABASE_URL") {
            Some(url) => url,
            None => connection::database_url(&get, &raw)?.unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
        };
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(err("DATABASE_URL", "[redacted]", "must be a postgres:// URL"));
        }
        let redis_url = get("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.into());
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            return Err(err("REDIS_URL", "[redacted]", "must be a redis:// URL"));
        }
        let redis_url = connection::redis_url_with_password(&redis_url, get("REDIS_PASSWORD").as_deref())?;
        let redis_tls_ca_file = get("REDIS_TLS_CA_FILE").map(PathBuf::from);
        if redis_tls_ca_file.is_some() && !redis_url.starts_with("rediss://") {
            return Err(err("REDIS_TLS_CA_FILE", "", "applies only to a rediss:// REDIS_URL"));
        }
        let reconnect_url_template = get("RECONNECT_URL_TEMPLATE").unwrap_or(d.reconnect_url_template);
        if !reconnect_url_template.starts_with('/')
            && !reconnect_url_template.starts_with("https://")
            && !reconnect_url_template.starts_with("http://")
        {
            return Err(err("RECONNECT_URL_TEMPLATE", &reconnect_url_template, "must be a path or an http(s) URL"));
        }
        Ok(Self {
            rate_limit_usage_threshold: parse(
                &get,
                "RATE_LIMIT_USAGE_THRESHOLD",
                d.rate_limit_usage_threshold,
                |n| (1..=100).contains(n),
                "must be a percentage 1..=100",
            )?,
            reconnect_url_template,
            database_url: Secret::new(database_url),
            redis_url: Secret::new(redis_url),
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_default(),
            fb_app_id: get("FB_APP_ID"),
            fb_app_secret: get("FB_APP_SECRET").map(Secret::new),
            fb_verify_token: get("FB_VERIFY_TOKEN").map(Secret::new),
            fb_graph_url,
            refresh_cron: get("REFRESH_CRON").unwrap_or(d.refresh_cron),
            api_bind: parse(&get, "API_BIND", d.api_bind, |_| true, "")?,
            worker_metrics_bind: parse(&get, "WORKER_METRICS_BIND", d.worker_metrics_bind, |_| true, "")?,
            worker_concurrency: parse(
                &get,
                "WORKER_CONCURRENCY",
                d.worker_concurrency,
                |n| (1..=10_000).contains(n),
                "must be 1..=10000",
            )?,
            authorization_error_threshold: parse(
                &get,
                "AUTHORIZATION_ERROR_THRESHOLD",
                d.authorization_error_threshold,
                |n| *n >= 1,
                "must be >= 1",
            )?,
            flag_style: match get("REDIS_FLAG_KEYS").as_deref() {
                None | Some("seed") => FlagStyle::Seed,
                Some("chatwoot") => FlagStyle::Chatwoot,
                Some(v) => return Err(err("REDIS_FLAG_KEYS", v, "must be seed or chatwoot")),
            },
            admin_api_token: get("ADMIN_API_TOKEN").map(Secret::new),
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(v) => return Err(err("LOG_FORMAT", v, "must be text or json")),
            },
            shutdown_grace: Duration::from_secs(parse(&get, "SHUTDOWN_GRACE_SECS", 30u64, |_| true, "")?),
            fb_http_timeout: Duration::from_secs(parse(
                &get,
                "FB_HTTP_TIMEOUT_SECS",
                20u64,
                |n| *n >= 1,
                "must be >= 1",
            )?),
            fb_connect_timeout: d.fb_connect_timeout,
            retry,
            queue_backlog_max: parse(
                &get,
                "QUEUE_BACKLOG_MAX",
                d.queue_backlog_max,
                |n| (1..=7_000).contains(n),
                "must be 1..=7000 (apalis-redis 1.0 fails at ~8000 due jobs)",
            )?,
            webhook_urls: match get("WEBHOOK_URLS") {
                None => d.webhook_urls,
                Some(v) => webhook_urls(&v)?,
            },
            webhook_secret: match get("WEBHOOK_SECRET").map(Secret::new) {
                Some(s) if crate::signing::standard_key(&s).is_err() => {
                    return Err(err("WEBHOOK_SECRET", "[redacted]", "starts with whsec_ but the rest is not base64"));
                }
                s => s,
            },
            proactive_refresh_days: parse(
                &get,
                "PROACTIVE_REFRESH_DAYS",
                d.proactive_refresh_days,
                |n| (1..=59).contains(n),
                "must be 1..=59 days (long-lived user tokens last about 60)",
            )?,
            rate_limit_max_wait: Duration::from_secs(parse(
                &get,
                "RATE_LIMIT_MAX_WAIT_SECS",
                d.rate_limit_max_wait.as_secs(),
                |n| (1..=7 * 86_400).contains(n),
                "must be 1..=604800 seconds",
            )?),
            database_pool_size: match get("DATABASE_POOL_SIZE") {
                None => None,
                Some(_) => {
                    Some(parse(&get, "DATABASE_POOL_SIZE", 0u32, |n| (1..=1_000).contains(n), "must be 1..=1000")?)
                }
            },
            counter_watch: match get("COUNTER_WATCH").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(v) => return Err(err("COUNTER_WATCH", v, "must be on or off")),
            },
            counter_watch_interval: Duration::from_millis(parse(
                &get,
                "COUNTER_WATCH_INTERVAL_MS",
                u64::try_from(d.counter_watch_interval.as_millis()).unwrap_or(1000),
                |n| (100..=4_000).contains(n),
                "must be 100..=4000 milliseconds (an increment must be noticed within 5 s)",
            )?),
            history_retention_days: parse(
                &get,
                "HISTORY_RETENTION_DAYS",
                d.history_retention_days,
                |n| (1..=36_500).contains(n),
                "must be 1..=36500 days",
            )?,
            api_refresh_per_minute: parse(
                &get,
                "API_REFRESH_PER_MINUTE",
                d.api_refresh_per_minute,
                |n| (1..=100_000).contains(n),
                "must be 1..=100000",
            )?,
            api_max_waiters: parse(
                &get,
                "API_MAX_WAITERS",
                d.api_max_waiters,
                |n| (1..=100_000).contains(n),
                "must be 1..=100000",
            )?,
            redis_tls_ca_file,
            encryption: encryption_keys(&get)?,
            database_schema: match get("DATABASE_SCHEMA") {
                None => d.database_schema,
                Some(v) if valid_schema_name(&v) => v,
                Some(v) => {
                    return Err(err(
                        "DATABASE_SCHEMA",
                        &v,
                        "must be a lowercase identifier (a-z, 0-9, _; not starting with a digit; at most 63 bytes) other than public",
                    ));
                }
            },
        })
    }

    /// Postgres connections for a process whose own default is `default` (workers need more than
    /// the producer), unless `DATABASE_POOL_SIZE` says otherwise.
    pub fn database_pool_size(&self, default: u32) -> u32 {
        self.database_pool_size.unwrap_or(default)
    }

    /// The admin token opens every account through an API anyone can reach: a short one can be
    /// guessed.
    pub fn weak_admin_token(&self) -> bool {
        self.admin_api_token.as_ref().is_some_and(|t| t.expose().trim().chars().count() < MIN_ADMIN_TOKEN_CHARS)
    }

    /// The token columns' codec: Chatwoot's Rails envelopes with its keys, plaintext without.
    /// Derived once per process and key set (65,536 PBKDF2 rounds).
    pub fn codec(&self) -> crate::encryption::Codec {
        match &self.encryption {
            None => crate::encryption::Codec::plaintext(),
            Some(k) => crate::encryption::Codec::for_keys(&k.primary_key, &k.key_derivation_salt),
        }
    }

    /// Caps a wait Graph announced at `RATE_LIMIT_MAX_WAIT_SECS`.
    pub fn cap_wait(&self, wait: Duration) -> Duration {
        wait.min(self.rate_limit_max_wait)
    }
}

/// `WEBHOOK_URLS`: comma separated http(s) URLs. An error never echoes the value: a webhook URL may
/// carry credentials (user info, a token in the query); it names the entry by position instead.
fn webhook_urls(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut urls: Vec<String> = Vec::new();
    for (i, entry) in raw.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let url = url::Url::parse(entry)
            .map_err(|e| err("WEBHOOK_URLS", "[redacted]", format!("entry {} is not a URL: {e}", i + 1)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(err("WEBHOOK_URLS", "[redacted]", format!("entry {} must be an http(s) URL", i + 1)));
        }
        if !urls.iter().any(|u| u == entry) {
            urls.push(entry.to_owned());
        }
    }
    Ok(urls)
}

fn err(var: &'static str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError { var, value: value.to_owned(), reason: reason.to_string() }
}

fn parse<T, G>(get: &G, var: &'static str, default: T, ok: impl Fn(&T) -> bool, why: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
    G: Fn(&str) -> Option<String>,
{
    match get(var) {
        None => Ok(default),
        Some(raw) => {
            let v = raw.trim().parse::<T>().map_err(|e| err(var, &raw, e))?;
            if ok(&v) { Ok(v) } else { Err(err(var, &raw, why)) }
        }
    }
}

fn secs_f64<G: Fn(&str) -> Option<String>>(
    get: &G,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let secs = parse(
        get,
        var,
        default.as_secs_f64(),
        |s| s.is_finite() && *s >= 0.0 && *s < 1e9,
        "must be a number of seconds >= 0",
    )?;
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn chatwoots_encryption_keys_come_as_three_or_none() {
        assert_eq!(with(&[]).expect("none").encryption, None);
        let all = with(&[
            ("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", "p-key"),
            ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", "d-key"),
            ("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "salt"),
        ])
        .expect("all three");
        assert_eq!(all.encryption.map(|k| k.key_derivation_salt.expose().to_owned()).as_deref(), Some("salt"));
        let half = with(&[("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", "p-key")]).expect_err("one of three");
        let message = half.to_string();
        assert!(message.contains("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"), "{message}");
        assert!(!message.contains("p-key"), "never the key itself: {message}");
    }

    #[test]
    fn the_counter_watcher_is_on_and_sweeps_every_second_unless_told() {
        let c = with(&[]).expect("default");
        assert!(c.counter_watch);
        assert_eq!(c.counter_watch_interval, Duration::from_secs(1));
        let c = with(&[("COUNTER_WATCH", "off"), ("COUNTER_WATCH_INTERVAL_MS", "250")]).expect("valid");
        assert!(!c.counter_watch);
        assert_eq!(c.counter_watch_interval, Duration::from_millis(250));
    }

    #[test]
    fn database_schema_is_a_plain_identifier_other_than_public() {
        assert_eq!(with(&[]).expect("default").database_schema, "fb_token_refresh");
        assert_eq!(with(&[("DATABASE_SCHEMA", "fbtr_2")]).expect("valid").database_schema, "fbtr_2");
        for bad in ["public", "Upper", "1abc", "a-b", "x\"; DROP TABLE inboxes; --"] {
            assert!(with(&[("DATABASE_SCHEMA", bad)]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = with(&[]).expect("defaults are valid");
        assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.redis_url.expose(), DEFAULT_REDIS_URL);
        assert_eq!(c.fb_graph_url, "https://graph.facebook.com/v24.0");
        assert_eq!(c.refresh_cron, "0 0 */6 * * *");
        assert_eq!(c.api_bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.worker_metrics_bind.to_string(), "127.0.0.1:9091");
        assert_eq!(c.worker_concurrency, 32);
        assert_eq!(c.authorization_error_threshold, 2);
        assert_eq!(c.flag_style, FlagStyle::Seed);
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.fb_http_timeout, Duration::from_secs(20));
        assert_eq!(c.retry.base, Duration::from_secs(1));
        assert_eq!(c.retry.max, Duration::from_secs(60));
        assert_eq!(c.retry.max_attempts, 10);
        assert_eq!(c.redis_key_prefix, "", "so the queue is named fb_token_refresh (keys::RedisKeys::queue)");
        assert_eq!(c.rate_limit_max_wait, Duration::from_secs(3_600));
        assert_eq!(c.database_pool_size(7), 7);
        assert_eq!(c.history_retention_days, 30);
        assert_eq!((c.api_refresh_per_minute, c.api_max_waiters), (30, 1_000));
        let c = with(&[("API_REFRESH_PER_MINUTE", "5"), ("API_MAX_WAITERS", "20")]).expect("valid");
        assert_eq!((c.api_refresh_per_minute, c.api_max_waiters), (5, 20));
        let c = with(&[("DATABASE_POOL_SIZE", "3")]).expect("valid");
        assert_eq!(c.database_pool_size(7), 3);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("WORKER_CONCURRENCY", "0"),
            ("WORKER_CONCURRENCY", "lots"),
            ("AUTHORIZATION_ERROR_THRESHOLD", "-1"),
            ("REDIS_FLAG_KEYS", "alfred"),
            ("COUNTER_WATCH", "yes"),
            ("COUNTER_WATCH_INTERVAL_MS", "5000"),
            ("COUNTER_WATCH_INTERVAL_MS", "50"),
            ("LOG_FORMAT", "xml"),
            ("API_BIND", "localhost"),
            ("FB_GRAPH_URL", "not a url"),
            ("FB_HTTP_TIMEOUT_SECS", "0"),
            ("RETRY_FACTOR", "0.5"),
            ("RETRY_BASE_SECS", "NaN"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("QUEUE_BACKLOG_MAX", "9000"),
            ("RATE_LIMIT_MAX_WAIT_SECS", "0"),
            ("RATE_LIMIT_MAX_WAIT_SECS", "99999999999999999999"),
            ("DATABASE_POOL_SIZE", "0"),
            ("DATABASE_POOL_SIZE", "many"),
            ("HISTORY_RETENTION_DAYS", "0"),
            ("API_REFRESH_PER_MINUTE", "0"),
            ("API_REFRESH_PER_MINUTE", "often"),
            ("API_MAX_WAITERS", "0"),
            ("API_MAX_WAITERS", "1000001"),
            ("REDIS_TLS_CA_FILE", "/etc/redis-ca.pem"),
        ] {
            let e = with(&[(var, value)]).expect_err(var);
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().contains(var), "{e}");
        }
    }

    #[test]
    fn chatwoot_keys_and_trailing_slash() {
        let c = with(&[("REDIS_FLAG_KEYS", "chatwoot"), ("FB_GRAPH_URL", "http://127.0.0.1:9/v24.0/")]).expect("valid");
        assert_eq!(c.flag_style, FlagStyle::Chatwoot);
        assert_eq!(c.fb_graph_url, "http://127.0.0.1:9/v24.0");
    }

    #[test]
    fn webhook_urls_and_secret() {
        let c = with(&[]).expect("defaults are valid");
        assert!(c.webhook_urls.is_empty());
        assert!(c.webhook_secret.is_none());
        let c = with(&[
            ("WEBHOOK_URLS", " https://hooks.example.com/a , http://127.0.0.1:9000/b,,https://hooks.example.com/a "),
            ("WEBHOOK_SECRET", "s3cret"),
        ])
        .expect("valid");
        assert_eq!(c.webhook_urls, vec!["https://hooks.example.com/a", "http://127.0.0.1:9000/b"]);
        assert_eq!(c.webhook_secret.as_ref().map(Secret::expose), Some("s3cret"));
        let e = with(&[("WEBHOOK_SECRET", "whsec_not base64!")]).expect_err("bad whsec_");
        assert_eq!(e.var, "WEBHOOK_SECRET", "{e}");
        assert!(!e.to_string().contains("not base64!"), "the secret is not echoed: {e}");
        assert!(with(&[("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).is_ok());
        for bad in ["not a url", "https://ok.example.com/x,ftp://files.example.com/x", "mailto:ops@example.com"] {
            let e = with(&[("WEBHOOK_URLS", bad)]).expect_err(bad);
            assert_eq!(e.var, "WEBHOOK_URLS", "{e}");
            assert!(e.to_string().contains("WEBHOOK_URLS"), "{e}");
        }
        let e = with(&[("WEBHOOK_URLS", "https://ok.example.com,ftp://user:hunter2@files.example.com/?key=abc")])
            .expect_err("rejected");
        assert!(e.to_string().contains("entry 2"), "{e}");
        assert!(!e.to_string().contains("hunter2") && !e.to_string().contains("abc"), "{e}");
    }

    #[test]
    fn a_short_admin_token_is_called_weak() {
        assert!(with(&[("ADMIN_API_TOKEN", "hunter2")]).expect("valid").weak_admin_token());
        assert!(!with(&[("ADMIN_API_TOKEN", "0123456789abcdef")]).expect("valid").weak_admin_token());
        assert!(!with(&[]).expect("valid").weak_admin_token());
    }

    #[test]
    fn chatwoot_postgres_variables_build_the_database_url() {
        let c = with(&[
            ("POSTGRES_HOST", "db.internal"),
            ("POSTGRES_PORT", "6432"),
            ("POSTGRES_USERNAME", "chatwoot"),
            ("POSTGRES_PASSWORD", "s3cret"),
            ("POSTGRES_DATABASE", "chatwoot_production"),
        ])
        .expect("valid");
        assert_eq!(c.database_url.expose(), "postgres://chatwoot:s3cret@db.internal:6432/chatwoot_production");
        // Chatwoot's production defaults (config/database.yml) fill what the .env leaves out.
        let c = with(&[("POSTGRES_HOST", "postgres")]).expect("valid");
        assert_eq!(c.database_url.expose(), "postgres://chatwoot_prod:chatwoot_prod@postgres:5432/chatwoot_production");
        // As in Chatwoot's .env.example: an empty password is no password, not the default one.
        let c = with(&[("POSTGRES_HOST", "postgres"), ("POSTGRES_USERNAME", "postgres"), ("POSTGRES_PASSWORD", "")])
            .expect("valid");
        assert_eq!(c.database_url.expose(), "postgres://postgres@postgres:5432/chatwoot_production");
    }

    #[test]
    fn postgres_variables_are_percent_encoded() {
        let c = with(&[
            ("POSTGRES_USERNAME", "chat woot"),
            ("POSTGRES_PASSWORD", "p@ss:w/rd?#%41 é"),
            ("POSTGRES_DATABASE", "chat/woot"),
        ])
        .expect("valid");
        let url = c.database_url.expose();
        assert_eq!(url, "postgres://chat%20woot:p%40ss%3Aw%2Frd%3F%23%2541%20%C3%A9@localhost:5432/chat%2Fwoot");
        // What sqlx connects with is exactly what was configured.
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("sqlx parses it");
        assert_eq!(options.get_username(), "chat woot");
        assert_eq!(options.get_host(), "localhost");
        assert_eq!(options.get_database(), Some("chat/woot"));
    }

    #[test]
    fn postgres_host_forms() {
        let url = |host: &str| with(&[("POSTGRES_HOST", host)]).map(|c| c.database_url.expose().to_owned());
        assert_eq!(
            url("10.0.0.5").expect("ipv4"),
            "postgres://chatwoot_prod:chatwoot_prod@10.0.0.5:5432/chatwoot_production"
        );
        assert_eq!(url("::1").expect("ipv6"), "postgres://chatwoot_prod:chatwoot_prod@[::1]:5432/chatwoot_production");
        let socket = url("/var/run/postgresql").expect("socket");
        let options: sqlx::postgres::PgConnectOptions = socket.parse().expect("sqlx parses it");
        assert_eq!(options.get_socket().and_then(|p| p.to_str()), Some("/var/run/postgresql"));
        for bad in ["db:5432", "user@db", "db/x", "bad host"] {
            let e = url(bad).expect_err(bad);
            assert_eq!(e.var, "POSTGRES_HOST", "{e}");
        }
    }

    #[test]
    fn a_bad_postgres_port_names_the_variable() {
        for bad in ["0", "65536", "pg", "-1"] {
            let e = with(&[("POSTGRES_PORT", bad)]).expect_err(bad);
            assert_eq!(e.var, "POSTGRES_PORT", "{e}");
            assert!(e.to_string().contains("POSTGRES_PORT"), "{e}");
        }
    }

    #[test]
    fn database_url_wins_and_unset_postgres_variables_keep_our_default() {
        let c = with(&[("DATABASE_URL", "postgres://a@b/c"), ("POSTGRES_HOST", "x"), ("POSTGRES_PORT", "nope")])
            .expect("DATABASE_URL wins; POSTGRES_* are not even read");
        assert_eq!(c.database_url.expose(), "postgres://a@b/c");
        assert_eq!(with(&[("POSTGRES_HOST", "")]).expect("valid").database_url.expose(), DEFAULT_DATABASE_URL);
    }

    #[test]
    fn redis_password_goes_into_a_url_without_one() {
        let c = with(&[("REDIS_PASSWORD", "p@ss:w/rd%41")]).expect("valid");
        assert_eq!(c.redis_url.expose(), "redis://:p%40ss%3Aw%2Frd%2541@127.0.0.1:6379");
        let info = redis::IntoConnectionInfo::into_connection_info(c.redis_url.expose()).expect("redis parses it");
        assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd%41"));
        let c = with(&[("REDIS_URL", "rediss://default@cache:6380/2"), ("REDIS_PASSWORD", "pw")]).expect("valid");
        assert_eq!(c.redis_url.expose(), "rediss://default:pw@cache:6380/2");
        // The URL's own password wins.
        let c = with(&[("REDIS_URL", "redis://:inurl@cache:6379"), ("REDIS_PASSWORD", "other")]).expect("valid");
        assert_eq!(c.redis_url.expose(), "redis://:inurl@cache:6379");
        // Empty is unset, as `.presence` makes it for Chatwoot.
        assert_eq!(with(&[("REDIS_PASSWORD", "")]).expect("valid").redis_url.expose(), DEFAULT_REDIS_URL);
    }

    #[test]
    fn database_url_error_does_not_echo_credentials() {
        let e = with(&[("DATABASE_URL", "mysql://user:hunter2@db")]).expect_err("rejected");
        assert!(!e.to_string().contains("hunter2"));
    }
}
