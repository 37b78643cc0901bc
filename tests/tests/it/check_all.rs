//! `producer check-all`: validates every page token, read-only, one row per inbox.

use std::time::Duration;

use producer::check_all::{EXIT_ERROR, EXIT_INVALID, EXIT_OK, check_all};
use serde_json::{Value, json};
use shared::{flags::FlagState, keys::RedisKeys, pauses};
use simulator::{Fault, FaultKind, Matcher};
use tests::TestEnv;

async fn run_json(env: &TestEnv) -> (i32, Vec<Value>) {
    let (code, text) = check_all(&env.config, true).await;
    let rows: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let rows = rows.as_array().unwrap_or_else(|| panic!("not an array: {text}")).clone();
    (code, rows)
}

/// The row of this inbox.
fn row(rows: &[Value], inbox_id: i64) -> &Value {
    rows.iter().find(|r| r["inbox_id"] == json!(inbox_id)).unwrap_or_else(|| panic!("no row for inbox {inbox_id}"))
}

/// The inbox ids of a channel, in id order.
async fn inbox_ids(env: &TestEnv, channel_id: i64) -> Vec<i64> {
    let ids: Vec<i32> = sqlx::query_scalar(
        "SELECT id FROM inboxes WHERE channel_id = $1 AND channel_type = 'Channel::FacebookPage' ORDER BY id",
    )
    .bind(i32::try_from(channel_id).expect("id"))
    .fetch_all(&env.db)
    .await
    .expect("inboxes");
    ids.into_iter().map(i64::from).collect()
}

async fn add_inbox(env: &TestEnv, channel_id: i64, channel_type: &str) -> i64 {
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at)
         VALUES (1, $1, $2, 'another inbox', timezone('utc', now()), timezone('utc', now())) RETURNING id",
    )
    .bind(i32::try_from(channel_id).expect("id"))
    .bind(channel_type)
    .fetch_one(&env.db)
    .await
    .expect("insert inbox");
    i64::from(id)
}

async fn count_rows(env: &TestEnv, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn check_all_valid_tokens_exit_0_with_one_row_per_inbox() {
    let env = TestEnv::new().await;
    let (ch1, _, _) = env.healthy_channel("61001").await;
    let (ch2, _, _) = env.healthy_channel("61002").await;
    // A second Facebook inbox on the first page, and an inbox of another kind that must not show.
    let extra = add_inbox(&env, ch1, "Channel::FacebookPage").await;
    add_inbox(&env, ch2, "Channel::Api").await;
    let (code, rows) = run_json(&env).await;
    assert_eq!(code, EXIT_OK, "{rows:?}");
    let first = inbox_ids(&env, ch1).await;
    let second = inbox_ids(&env, ch2).await;
    assert_eq!(first.len(), 2);
    assert!(first.contains(&extra));
    let expected: Vec<Value> = first
        .iter()
        .map(|&i| (ch1, i, "61001"))
        .chain(second.iter().map(|&i| (ch2, i, "61002")))
        .map(|(c, i, p)| json!({"channel_id": c, "inbox_id": i, "page_id": p, "token_valid": true, "error": null}))
        .collect();
    assert_eq!(rows, expected);
    // One validation per channel, however many inboxes share it.
    let calls = env.sim.requests();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(env.sim.count_where(|r| r.path == "/61001"), 1);
    assert_eq!(env.sim.count_where(|r| r.path == "/61002"), 1);
}

#[tokio::test]
async fn check_all_killed_page_token_exits_1_with_code_190() {
    let env = TestEnv::new().await;
    let (ok1, _, _) = env.healthy_channel("62001").await;
    let (dead, user, _) = env.healthy_channel("62002").await;
    let (ok2, _, _) = env.healthy_channel("62003").await;
    env.sim.kill_page_token("62002", &user, 190, Some(463), "Error validating access token: Session has expired");
    let (code, rows) = run_json(&env).await;
    assert_eq!(code, EXIT_INVALID, "{rows:?}");
    assert_eq!(rows.len(), 3);
    let ids: Vec<i64> = rows.iter().map(|r| r["channel_id"].as_i64().expect("int")).collect();
    assert_eq!(ids, vec![ok1, dead, ok2], "channel order");
    let bad = row(&rows, inbox_ids(&env, dead).await[0]);
    assert_eq!(bad["token_valid"], json!(false), "{bad}");
    assert_eq!(bad["page_id"], json!("62002"));
    assert_eq!(bad["error"]["kind"], json!("auth"), "{bad}");
    assert_eq!(bad["error"]["code"], json!(190), "{bad}");
    assert_eq!(bad["error"]["subcode"], json!(463), "{bad}");
    assert!(bad["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{bad}");
    for ch in [ok1, ok2] {
        let good = row(&rows, inbox_ids(&env, ch).await[0]);
        assert_eq!(good["token_valid"], json!(true), "{good}");
        assert_eq!(good["error"], Value::Null, "{good}");
    }
}

#[tokio::test]
async fn check_all_graph_fault_is_undecided_and_exits_0() {
    let env = TestEnv::new().await;
    let (ok, _, _) = env.healthy_channel("63001").await;
    let (faulty, _, _) = env.healthy_channel("63002").await;
    let (limited, _, _) = env.healthy_channel("63003").await;
    env.sim.inject(Fault::new(FaultKind::ServerError, Matcher::Page("63002".into())));
    env.sim.rate_limit_page("63003", 32, Some(1));
    let (code, rows) = run_json(&env).await;
    assert_eq!(code, EXIT_OK, "undecided alone does not fail: {rows:?}");
    let good = row(&rows, inbox_ids(&env, ok).await[0]);
    assert_eq!(good["token_valid"], json!(true), "{good}");
    let down = row(&rows, inbox_ids(&env, faulty).await[0]);
    assert_eq!(down["token_valid"], Value::Null, "{down}");
    assert_eq!(down["error"]["kind"], json!("transient"), "{down}");
    assert_eq!(down["error"]["code"], json!(1), "{down}");
    let slow = row(&rows, inbox_ids(&env, limited).await[0]);
    assert_eq!(slow["token_valid"], Value::Null, "{slow}");
    assert_eq!(slow["error"]["kind"], json!("rate_limited"), "{slow}");
    assert_eq!(slow["error"]["code"], json!(32), "{slow}");
}

#[tokio::test]
async fn check_all_does_not_call_a_paused_page() {
    let env = TestEnv::new().await;
    let (paused, _, _) = env.healthy_channel("64001").await;
    let (ok, _, _) = env.healthy_channel("64002").await;
    let keys = RedisKeys::of(&env.config);
    pauses::pause(&mut env.redis.clone(), &keys, "64001", false, Duration::from_secs(120)).await.expect("pause");
    let (code, rows) = run_json(&env).await;
    assert_eq!(code, EXIT_OK, "{rows:?}");
    let held = row(&rows, inbox_ids(&env, paused).await[0]);
    assert_eq!(held["token_valid"], Value::Null, "{held}");
    assert_eq!(held["error"]["kind"], json!("rate_limited"), "{held}");
    assert_eq!(row(&rows, inbox_ids(&env, ok).await[0])["token_valid"], json!(true));
    assert_eq!(env.sim.count_where(|r| r.path.contains("64001")), 0, "a paused page was called");
}

#[tokio::test]
async fn check_all_is_read_only() {
    let env = TestEnv::new().await;
    let (ok, _, _) = env.healthy_channel("65001").await;
    let (dead, user, _) = env.healthy_channel("65002").await;
    let (faulty, _, _) = env.healthy_channel("65003").await;
    env.sim.kill_page_token("65002", &user, 190, Some(460), "password changed");
    env.sim.inject(Fault::new(FaultKind::ServerError, Matcher::Page("65003".into())));
    let before =
        [env.stored_page_token(ok).await, env.stored_page_token(dead).await, env.stored_page_token(faulty).await];
    let (code, _) = check_all(&env.config, true).await;
    assert_eq!(code, EXIT_INVALID);
    let (code, _) = check_all(&env.config, false).await;
    assert_eq!(code, EXIT_INVALID);
    // No refresh: the dead token is still the stored one, and only page validations were made.
    let after =
        [env.stored_page_token(ok).await, env.stored_page_token(dead).await, env.stored_page_token(faulty).await];
    assert_eq!(before, after);
    let calls = env.sim.requests();
    assert_eq!(calls.len(), 6, "two runs, one call per channel each: {calls:?}");
    for call in &calls {
        assert_eq!(call.method, "GET", "{call:?}");
        assert!(["/65001", "/65002", "/65003"].contains(&call.path.as_str()), "{call:?}");
    }
    assert_eq!(env.sim.count_where(|r| r.path.contains("/me")), 0, "no /me/accounts");
    // No state, no event, no flag, nothing at all in Redis.
    assert_eq!(count_rows(&env, "fb_token_states").await, 0);
    assert_eq!(count_rows(&env, "fb_token_events").await, 0);
    for ch in [ok, dead, faulty] {
        assert_eq!(env.flags(ch).await, FlagState::default(), "channel {ch}");
    }
    assert_eq!(env.redis_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn check_all_table_has_a_summary_and_no_token() {
    let env = TestEnv::new().await;
    let (ok, _, ok_user_token) = env.healthy_channel("66001").await;
    let (dead, user, dead_user_token) = env.healthy_channel("66002").await;
    let (faulty, _, faulty_user_token) = env.healthy_channel("66003").await;
    add_inbox(&env, ok, "Channel::FacebookPage").await;
    env.sim.kill_page_token("66002", &user, 190, Some(463), "Session has expired");
    env.sim.inject(Fault::new(FaultKind::ServerError, Matcher::Page("66003".into())));
    let (code, table) = check_all(&env.config, false).await;
    assert_eq!(code, EXIT_INVALID, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["channel", "inbox", "page", "valid", "error"], "{table}");
    assert_eq!(lines.last().copied(), Some("4 checked: 2 valid, 1 invalid, 1 undecided"), "{table}");
    let valid_of = |page: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.split_whitespace().nth(2) == Some(page))
            .map(|l| l.split_whitespace().nth(3).unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(valid_of("66001"), ["yes", "yes"], "{table}");
    assert_eq!(valid_of("66002"), ["NO"], "{table}");
    assert_eq!(valid_of("66003"), ["?"], "{table}");
    assert!(lines.iter().any(|l| l.contains("66002") && l.contains("190")), "{table}");
    let (_, json) = check_all(&env.config, true).await;
    let mut secrets = vec![ok_user_token, dead_user_token, faulty_user_token];
    for ch in [ok, dead, faulty] {
        secrets.push(env.stored_page_token(ch).await);
    }
    secrets.extend(env.sim.options().app_secret.clone());
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(!table.contains(secret.as_str()), "a secret in the table:\n{table}");
        assert!(!json.contains(secret.as_str()), "a secret in the JSON:\n{json}");
    }
}

#[tokio::test]
async fn check_all_without_channels_prints_an_empty_result() {
    let env = TestEnv::new().await;
    let (code, rows) = run_json(&env).await;
    assert_eq!((code, rows), (EXIT_OK, vec![]));
    let (code, table) = check_all(&env.config, false).await;
    assert_eq!(code, EXIT_OK);
    assert!(table.ends_with("0 checked: 0 valid, 0 invalid, 0 undecided"), "{table}");
    assert_eq!(env.sim.request_count(), 0);
}

#[tokio::test]
async fn check_all_database_error_exits_2_without_the_password() {
    let env = TestEnv::new().await;
    let mut config = env.config.clone();
    config.database_url = shared::secret::Secret::new("postgres://postgres:hunter2secret@127.0.0.1:1/nowhere");
    let (code, text) = check_all(&config, true).await;
    assert_eq!(code, EXIT_ERROR, "{text}");
    assert!(text.starts_with("error: "), "{text}");
    assert!(!text.contains("hunter2secret"), "{text}");
    assert_eq!(env.sim.request_count(), 0);
}
