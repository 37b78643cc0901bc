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
