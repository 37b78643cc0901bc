//! The real `producer` binary: the contract's command lines, output and exit codes.

use std::process::Output;

use tests::TestEnv;

async fn producer(env: &TestEnv, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_producer"));
    cmd.args(args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().await.expect("producer runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn run_job_prints_the_contract_line() {
    let env = TestEnv::new().await;
    env.seed_healthy(7, 91_000).await;
    let out = producer(&env, &["run-job"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().next(), Some("enqueued 7 channels"));
    let again = producer(&env, &["run-job"], &[]).await;
    assert_eq!(text(&again.stdout), "enqueued 0 channels\nskipped 7 channels already queued or running\n");
}

#[tokio::test]
async fn refresh_channel_exit_codes() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("92001").await;
    let out = producer(&env, &["refresh-channel", "abc"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = producer(&env, &["refresh-channel", "424242"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = producer(&env, &["refresh-channel", &ch.to_string(), "--inline"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("healthy"));
    let out = producer(&env, &["refresh-channel", &ch.to_string(), "--wait", "1"], &[]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("no worker took the job"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn check_all_json_and_migrate() {
    let env = TestEnv::new().await;
    let (_, user, _) = env.healthy_channel("93001").await;
    env.sim.kill_page_token("93001", &user, 190, Some(460), "password changed");
    env.healthy_channel("93002").await;
    let out = producer(&env, &["check-all", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json array");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    assert_eq!(rows[0]["token_valid"], false);
    assert_eq!(rows[1]["token_valid"], true);
    let out = producer(&env, &["migrate"], &[]).await;
    assert!(out.status.success());
}

#[tokio::test]
async fn bad_cron_and_bad_config_are_refused_with_the_variable_name() {
    let env = TestEnv::new().await;
    let out = producer(&env, &["serve"], &[("REFRESH_CRON", "every six hours"), ("API_BIND", "127.0.0.1:0")]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("REFRESH_CRON"), "{}", text(&out.stderr));
    let out = producer(&env, &["run-job"], &[("AUTHORIZATION_ERROR_THRESHOLD", "-2")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("AUTHORIZATION_ERROR_THRESHOLD"));
}

#[tokio::test]
async fn api_token_create_prints_once_and_revoke_works() {
    let env = TestEnv::new().await;
    let out = producer(&env, &["api-token", "create", "--account", "3"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert!(token.starts_with("fbtr_") && token.len() > 40);
    assert_eq!(shared::store::account_of_token(&env.db, &token).await.expect("db"), Some(3));
    let out = producer(&env, &["api-token", "revoke", &token], &[]).await;
    assert!(out.status.success());
    assert_eq!(shared::store::account_of_token(&env.db, &token).await.expect("db"), None);
    let out = producer(&env, &["api-token", "revoke", &token], &[]).await;
    assert_eq!(out.status.code(), Some(1));
}

/// The database `producer demo` uses for this test's `DATABASE_URL` (`TestEnv` drops it).
fn demo_url(env: &TestEnv) -> shared::secret::Secret {
    shared::secret::Secret::new(format!("{}_demo", env.config.database_url.expose()))
}

async fn channel_count(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM channel_facebook_pages").fetch_one(db).await.expect("count")
}

#[tokio::test]
async fn demo_refuses_a_database_with_channels_it_did_not_seed() {
    let env = TestEnv::new().await;
    // Someone's real database that happens to carry the demo's name.
    let foreign = shared::store::connect_and_migrate(&demo_url(&env), shared::config::DEFAULT_DATABASE_SCHEMA, 2)
        .await
        .expect("demo-named database");
    sqlx::query(
        "INSERT INTO channel_facebook_pages (account_id, page_id, page_access_token, user_access_token, created_at, updated_at)
         VALUES (1, 'real-page', 'EAAreal', 'EAAuser', now(), now())",
    )
    .execute(&foreign)
    .await
    .expect("real channel");
    let out = producer(&env, &["demo", "--exit-after-cycle", "--channels", "10", "--latency-ms", "1"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("refusing to run the demo"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("EAA"), "{}", text(&out.stderr));
    assert_eq!(channel_count(&foreign).await, 1, "the real channel is untouched");
    let marker: bool = sqlx::query_scalar("SELECT to_regclass('fb_demo_marker') IS NOT NULL")
        .fetch_one(&foreign)
        .await
        .expect("marker check");
    assert!(!marker, "a refused database is not claimed");
}

#[tokio::test]
async fn demo_ignores_dbname_and_never_deletes_keys_outside_its_prefix() {
    use redis::AsyncCommands as _;
    let env = TestEnv::new().await;
    // The real channel lives in the database `?dbname=` names; the old rewrite changed only the
    // path, so sqlx connected to this database and the demo truncated it.
    let (channel, _, _) = env.healthy_channel("95001").await;
    let token = env.stored_page_token(channel).await;
    let url = env.config.database_url.expose();
    let name = url.rsplit('/').next().expect("database name");
    let with_dbname = format!("postgres://postgres@127.0.0.1:5432/?dbname={name}");
    // A production-style prefix (unique per test: Redis is shared); the old demo used it as its
    // own and DEL'd every key under it.
    let prod = format!("{}prod:", env.config.redis_key_prefix);
    let sentinel = format!("{prod}sentinel");
    let mut redis = env.redis.clone();
    let _: () = redis.set(&sentinel, "keep me").await.expect("set sentinel");
    let args = ["demo", "--exit-after-cycle", "--channels", "20", "--latency-ms", "1"];
    let vars = [("DATABASE_URL", with_dbname.as_str()), ("REDIS_KEY_PREFIX", prod.as_str())];
    for run in 1..=2 {
        // The second run finds the database marked as the demo's and reseeds it.
        let out = producer(&env, &args, &vars).await;
        assert_eq!(out.status.code(), Some(0), "run {run}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("database {name}_demo")), "{}", text(&out.stdout));
    }
    assert_eq!(channel_count(&env.db).await, 1);
    assert_eq!(env.stored_page_token(channel).await, token);
    let kept: Option<String> = redis.get(&sentinel).await.expect("get sentinel");
    assert_eq!(kept.as_deref(), Some("keep me"));
    let demo = shared::store::connect_and_migrate(&demo_url(&env), shared::config::DEFAULT_DATABASE_SCHEMA, 2)
        .await
        .expect("demo database");
    assert_eq!(channel_count(&demo).await, 20, "the demo seeded its own database");
    let demo_keys: Vec<String> =
        env.redis_keys().await.into_iter().filter(|k| k.starts_with(&format!("{prod}demo:"))).collect();
    assert!(!demo_keys.is_empty(), "the demo worked under {prod}demo:");
}

/// A `--wait` past any clock (L13) is bad input, exit 2 with a message, not an Instant overflow.
#[tokio::test]
async fn refresh_channel_rejects_an_endless_wait() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("92501").await;
    for wait in ["18446744073709551615", "86401"] {
        let out = producer(&env, &["refresh-channel", &ch.to_string(), "--wait", wait], &[]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--wait") && stderr.contains("0..=86400"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A Rails envelope of Chatwoot's (key set ks1 of tests/fixtures/rails_vectors.json).
const RAILS_ENVELOPE: &str = r#"{"p":"eXQvgxJNxf7Mqt3UZLRlHTBWKcSUkML3HeMgGA6r","h":{"iv":"X0SHnT4ShvojN/lH","at":"vcVfJIf8AwZALr8fVvp6yg==","i":"MDU5YQ=="}}"#;

#[tokio::test]
async fn undecryptable_rows_are_reported_once_and_never_sent() {
    let env = TestEnv::chatwoot(|_| {}).await;
    for page in ["94001", "94002"] {
        env.insert_channel(1, page, RAILS_ENVELOPE, RAILS_ENVELOPE).await;
    }
    let out = producer(&env, &["check-all", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "a person must set the keys: {}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json array");
    for row in rows.as_array().expect("rows") {
        assert_eq!(row["token_valid"], serde_json::Value::Null);
        assert!(row["error"].to_string().contains("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"), "{row}");
    }
    let logs = text(&out.stderr);
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line for the process: {logs}");
    assert!(errors[0].contains("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"), "{}", errors[0]);
    assert!(!logs.contains("eXQvgxJNxf7M") && !text(&out.stdout).contains("eXQvgxJNxf7M"), "no ciphertext shown");
    // The job path: settled at once as undecryptable, nothing sent to Graph.
    let ch: i32 =
        sqlx::query_scalar("SELECT min(id) FROM channel_facebook_pages").fetch_one(&env.db).await.expect("id");
    let out = producer(&env, &["refresh-channel", &ch.to_string(), "--inline"], &[]).await;
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "nothing decided: {said}");
    assert!(said.contains("not checked, undecryptable"), "{said}");
    assert_eq!(text(&out.stderr).lines().filter(|l| l.contains("ERROR")).count(), 1, "{}", text(&out.stderr));
    assert_eq!(env.sim.request_count(), 0, "nothing reached Graph");
}
