//! `producer check-all`: validate every channel's page token now, read-only. No refresh, no flag,
//! no state, no event, no pause is written: the command only asks Graph (`GET /{page_id}` with the
//! page token, once per channel however many inboxes share it) and prints one row per inbox, as a
//! table or (`--json`) as an array of `{channel_id, inbox_id, page_id, token_valid, error}`.
//!
//! A page under a rate-limit pause (set by a worker from Graph's announcement) is not called: its
//! row is undecided, as the contract forbids calling it before the pause ends. Reading the pause is
//! the only thing this command does with Redis.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use futures::{StreamExt as _, stream};
use redis::aio::ConnectionManager;
use serde::Serialize;
use shared::{
    config::Config,
    graph::{ErrorKind, GraphClient, GraphError},
    keys::RedisKeys,
    pauses, queue,
    secret::Secret,
    store::{self, FacebookInbox},
};

/// Every token valid, or some undecided but none invalid.
pub const EXIT_OK: i32 = 0;
/// At least one token rejected by Graph, or stored encrypted so that this process cannot decrypt
/// it (a person must act either way: reconnect the page, or set the keys).
pub const EXIT_INVALID: i32 = 1;
/// Configuration, database or Redis error: nothing was checked.
pub const EXIT_ERROR: i32 = 2;

/// Graph calls in flight at once.
const CONCURRENCY: usize = 32;
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What Graph said about one channel's page token.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Valid,
    /// Graph rejected the token: auth (190, 102), permission (10, 200-299) or not found (100/33).
    Invalid(GraphError),
    /// Could not be decided now: rate limited (or paused), transient, or a request Graph refused
    /// for a reason that says nothing about the token.
    Undecided(GraphError),
    /// The stored token is a Rails envelope this process cannot decrypt: not sent to Graph.
    Undecryptable(GraphError),
}

impl Verdict {
    fn from_error(error: GraphError) -> Self {
        if error.kind.is_confirmed_failure() { Self::Invalid(error) } else { Self::Undecided(error) }
    }

    /// `true` valid, `false` rejected, `None` undecided.
    pub fn token_valid(&self) -> Option<bool> {
        match self {
            Self::Valid => Some(true),
            Self::Invalid(_) => Some(false),
            Self::Undecided(_) | Self::Undecryptable(_) => None,
        }
    }

    pub fn error(&self) -> Option<&GraphError> {
        match self {
            Self::Valid => None,
            Self::Invalid(e) | Self::Undecided(e) | Self::Undecryptable(e) => Some(e),
        }
    }
}

/// The binary's entry point: prints the result (stdout, or stderr on an error) and returns the
/// exit code.
pub async fn command(config: &Config, json: bool) -> i32 {
    let (code, text) = check_all(config, json).await;
    if code == EXIT_ERROR {
    } else {
        println!("{text}");
    }
    code
}

/// Returns the exit code and the text to print: 0 when no token is invalid, 1 when at least one
/// is, 2 (with the error text) when the check could not run.
pub async fn check_all(config: &Config, json: bool) -> (i32, String) {
    match run(config).await {
        Ok(rows) => {
            // Only a token Graph rejected makes the exit code 1: an undecided one (rate limit,
            // outage) is not evidence against the token, and a cron job alerting on the exit code
            // must not page anyone for a Graph hiccup.
            let needs_a_person = |v: &Verdict| v.token_valid() == Some(false) || matches!(v, Verdict::Undecryptable(_));
            let code = if rows.iter().any(|(_, v)| needs_a_person(v)) { EXIT_INVALID } else { EXIT_OK };
            let text = if json { render_json(&rows) } else { render_table(&rows) };
            (code, text)
        }
        Err(e) => (EXIT_ERROR, redact(&format!("error: {e:#}"), config)),
    }
}

async fn run(config: &Config) -> anyhow::Result<Vec<(FacebookInbox, Verdict)>> {
    let db =
        store::connect_and_migrate(&config.database_url, &config.database_schema, config.database_pool_size(2)).await?;
    let inboxes = store::facebook_inboxes(&db, &config.codec()).await.context("cannot list Facebook inboxes")?;
    let config = &store::installation::with_app_credentials(&db, config).await?;
    db.close().await;
    let unreadable = inboxes.iter().filter(|i| i.page_token.is_err()).count();
    if unreadable > 0 {
        tracing::error!(inboxes = unreadable, "{}", store::UNDECRYPTABLE_LOG);
    }
    let graph = GraphClient::from_config(config).context("cannot build the Graph client")?;
    let redis = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, queue::connect(config))
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to Redis within {}s", REDIS_CONNECT_TIMEOUT.as_secs()))?
        .context("cannot connect to Redis")?;
    let pauses = RedisKeys::of(config);
    let verdicts = validate_channels(&graph, &redis, &pauses, &inboxes).await;
    let rows = inboxes
        .into_iter()
        .map(|inbox| {
            let verdict = verdicts.get(&inbox.channel_id).cloned().unwrap_or_else(|| {
                Verdict::Undecided(GraphError::transport("not checked (internal error: no result for the channel)"))
            });
            (inbox, verdict)
        })
        .collect();
    Ok(rows)
}

/// One validation per channel, `CONCURRENCY` at once; the verdicts by channel id.
async fn validate_channels(
    graph: &GraphClient,
    redis: &ConnectionManager,
    pauses: &RedisKeys,
    inboxes: &[FacebookInbox],
) -> HashMap<i64, Verdict> {
    // `inboxes` is ordered by channel, so the inboxes of one channel are adjacent.
    let mut channels: Vec<&FacebookInbox> = Vec::new();
    for inbox in inboxes {
        if channels.last().is_none_or(|c| c.channel_id != inbox.channel_id) {
            channels.push(inbox);
        }
    }
    // Once Graph says the whole app is limited, calling on only makes it worse.
    let app_limited = AtomicBool::new(false);
    let app_limited = &app_limited;
    stream::iter(channels)
        .map(|channel| {
            let mut redis = redis.clone();
            async move {
                let verdict = validate_one(graph, &mut redis, pauses, app_limited, channel).await;
                (channel.channel_id, verdict)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

async fn validate_one(
    graph: &GraphClient,
    redis: &mut ConnectionManager,
    pauses: &RedisKeys,
    app_limited: &AtomicBool,
    channel: &FacebookInbox,
) -> Verdict {
    let token = match &channel.page_token {
        Ok(token) => token,
        Err(cause) => {
            let message = format!("page_access_token cannot be decrypted: {cause}");
            return Verdict::Undecryptable(GraphError { kind: ErrorKind::Invalid, ..GraphError::transport(message) });
        }
    };
    if app_limited.load(Ordering::Relaxed) {
        return Verdict::Undecided(rate_limited(
            "not called: Graph announced an app-wide rate limit during this check",
        ));
    }
    match pauses::remaining(redis, pauses, &channel.page_id).await {
        Ok(Some(wait)) => {
            return Verdict::Undecided(rate_limited(&format!(
                "not called: rate-limit pause in force for {}s more",
                wait.as_secs().max(1)
            )));
        }
        Ok(None) => {}
        Err(e) => {
            return Verdict::Undecided(GraphError::transport(format!("not called: cannot read rate-limit pause: {e}")));
        }
    }
    match graph.validate_page(&channel.page_id, token).await {
        Ok(_) => Verdict::Valid,
        Err(mut error) => {
            if error.kind == ErrorKind::RateLimited && error.app_level {
                app_limited.store(true, Ordering::Relaxed);
            }
            // Our errors never carry a token; Graph's messages should not either, but make sure.
            error.message = scrub(&error.message, token);
            Verdict::from_error(error)
        }
    }
}

fn rate_limited(message: &str) -> GraphError {
    GraphError { kind: ErrorKind::RateLimited, ..GraphError::transport(message) }
}

fn scrub(text: &str, token: &Secret) -> String {
    if token.is_empty() { text.to_owned() } else { text.replace(token.expose(), "[redacted]") }
}

/// Removes the configured secrets from an error text (a driver might echo a URL with its password).
fn redact(text: &str, config: &Config) -> String {
    let mut text = text.to_owned();
    let secrets = [Some(&config.database_url), Some(&config.redis_url), config.fb_app_secret.as_ref()];
    for secret in secrets.into_iter().flatten() {
        text = scrub(&text, secret);
    }
    text
}

#[derive(Serialize)]
struct JsonRow<'a> {
    channel_id: i64,
    inbox_id: i64,
    page_id: &'a str,
    token_valid: Option<bool>,
    error: Option<JsonError<'a>>,
}

#[derive(Serialize)]
struct JsonError<'a> {
    kind: &'static str,
    code: Option<i64>,
    subcode: Option<i64>,
    message: &'a str,
}

fn render_json(rows: &[(FacebookInbox, Verdict)]) -> String {
    let rows: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|(inbox, verdict)| JsonRow {
            channel_id: inbox.channel_id,
            inbox_id: inbox.inbox_id,
            page_id: &inbox.page_id,
            token_valid: verdict.token_valid(),
            error: verdict.error().map(|e| JsonError {
                kind: e.kind.as_str(),
                code: e.code,
                subcode: e.subcode,
                message: &e.message,
            }),
        })
        .collect();
    // Serializing strings, integers and booleans cannot fail.
    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_owned())
}

/// Columns channel, inbox, page, valid (`yes`, `NO`, `?`), error; then
/// `N checked: V valid, I invalid, U undecided`, counting rows (inboxes).
fn render_table(rows: &[(FacebookInbox, Verdict)]) -> String {
    let mut table = crate::table::new(&["channel", "inbox", "page", "valid", "error"], &[]);
    let (mut valid, mut invalid, mut undecided) = (0usize, 0usize, 0usize);
    for (inbox, verdict) in rows {
        let word = match verdict.token_valid() {
            Some(true) => {
                valid += 1;
                "yes"
            }
            Some(false) => {
                invalid += 1;
                "NO"
            }
            None => {
                undecided += 1;
                "?"
            }
        };
        let error = verdict.error().map(|e| format!("{}: {}", e.kind.as_str(), one_line(&e.to_string())));
        table.add_row(vec![
            inbox.channel_id.to_string(),
            inbox.inbox_id.to_string(),
            one_line(&inbox.page_id),
            word.to_owned(),
            error.unwrap_or_default(),
        ]);
    }
    format!(
        "{}\n\n{} checked: {valid} valid, {invalid} invalid, {undecided} undecided",
        crate::table::render(&table),
        rows.len()
    )
}

/// Control characters (a newline in a Graph message, a tab in a page id) would break the table.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox(channel_id: i64, inbox_id: i64, page_id: &str) -> FacebookInbox {
        FacebookInbox {
            inbox_id,
            account_id: 1,
            channel_id,
            page_id: page_id.into(),
            page_token: Ok(Secret::new("EAAtoken")),
            inbox_name: "x".into(),
        }
    }

    fn error(kind: ErrorKind, code: Option<i64>, subcode: Option<i64>, message: &str) -> GraphError {
        GraphError { kind, code, subcode, ..GraphError::transport(message) }
    }

    #[test]
    fn verdicts_follow_the_error_kind() {
        for kind in [ErrorKind::Auth, ErrorKind::Permission, ErrorKind::NotFound] {
            assert_eq!(Verdict::from_error(error(kind, None, None, "x")).token_valid(), Some(false), "{kind:?}");
        }
        for kind in [ErrorKind::RateLimited, ErrorKind::Transient, ErrorKind::Invalid] {
            assert_eq!(Verdict::from_error(error(kind, None, None, "x")).token_valid(), None, "{kind:?}");
        }
        assert_eq!(Verdict::Valid.token_valid(), Some(true));
    }

    #[test]
    fn table_has_header_rows_and_summary() {
        let rows = vec![
            (inbox(1, 10, "111"), Verdict::Valid),
            (inbox(2, 20, "222"), Verdict::Invalid(error(ErrorKind::Auth, Some(190), Some(463), "expired\nnow"))),
            (inbox(3, 30, "333"), Verdict::Undecided(error(ErrorKind::Transient, Some(1), None, "unknown"))),
        ];
        let text = render_table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "channel  inbox  page  valid  error");
        assert!(lines[1].starts_with("-------- ------ "), "a rule under the header:\n{text}");
        assert_eq!(lines[2], "1        10     111   yes");
        assert_eq!(lines[3], "2        20     222   NO     auth: expired now (code 190, subcode 463)");
        assert_eq!(lines[4], "3        30     333   ?      transient: unknown (code 1)");
        assert_eq!(lines[6], "3 checked: 1 valid, 1 invalid, 1 undecided");
    }

    #[test]
    fn json_rows_have_the_contract_fields() {
        let rows = vec![
            (inbox(1, 10, "111"), Verdict::Valid),
            (inbox(2, 20, "222"), Verdict::Invalid(error(ErrorKind::Auth, Some(190), None, "expired"))),
        ];
        let v: serde_json::Value = serde_json::from_str(&render_json(&rows)).expect("json");
        assert_eq!(
            v,
            serde_json::json!([
                {"channel_id": 1, "inbox_id": 10, "page_id": "111", "token_valid": true, "error": null},
                {"channel_id": 2, "inbox_id": 20, "page_id": "222", "token_valid": false,
                 "error": {"kind": "auth", "code": 190, "subcode": null, "message": "expired"}},
            ])
        );
    }

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(scrub("bad token EAAtoken here", &Secret::new("EAAtoken")), "bad token [redacted] here");
        assert_eq!(scrub("nothing", &Secret::new("")), "nothing");
    }
}
