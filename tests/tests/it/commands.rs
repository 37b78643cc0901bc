//! The producer's commands, called as library functions (the binaries are thin wrappers).

use std::time::Duration;

use producer::refresh_channel::{
    EXIT_BAD_INPUT, EXIT_CONFIRMED_FAILURE, EXIT_NOT_SETTLED, EXIT_VALID, refresh_channel,
};
use tests::TestEnv;

#[tokio::test]
async fn refresh_channel_through_the_queue() {
    let env = TestEnv::new().await;
    let (ok, _, _) = env.healthy_channel("31001").await;
    let (expired, u2, _) = env.healthy_channel("31002").await;
    env.sim.kill_page_token("31002", &u2, 190, Some(463), "expired");
    let worker = env.spawn_worker();
    let (code, line) = refresh_channel(&env.config, &ok.to_string(), Duration::from_secs(15), false).await;
    assert_eq!(code, EXIT_VALID, "{line}");
    assert!(line.contains("healthy"), "{line}");
    let (code, line) = refresh_channel(&env.config, &expired.to_string(), Duration::from_secs(15), false).await;
    assert_eq!(code, EXIT_VALID, "{line}");
    assert!(line.contains("refreshed"), "{line}");
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn refresh_channel_confirmed_failure_exits_1() {
    let env = TestEnv::new().await;
    let (ch, u, ut) = env.healthy_channel("32001").await;
    env.sim.kill_page_token("32001", &u, 190, Some(460), "password changed");
    env.sim.kill_user_token(&ut, 190, Some(460), "password changed");
    let (code, line) = refresh_channel(&env.config, &ch.to_string(), Duration::from_secs(5), true).await;
    assert_eq!(code, EXIT_CONFIRMED_FAILURE, "{line}");
    assert!(line.contains("authorization error count 1"), "{line}");
}

#[tokio::test]
async fn refresh_channel_bad_input_exits_2() {
    let env = TestEnv::new().await;
    for bad in ["abc", "-3", "0", "99999999999", "777"] {
        let (code, line) = refresh_channel(&env.config, bad, Duration::from_secs(1), false).await;
        assert_eq!(code, EXIT_BAD_INPUT, "{bad}: {line}");
    }
}

#[tokio::test]
async fn refresh_channel_without_a_worker_exits_3_and_says_so() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("33001").await;
    let (code, line) = refresh_channel(&env.config, &ch.to_string(), Duration::from_secs(1), false).await;
    assert_eq!(code, EXIT_NOT_SETTLED, "{line}");
    assert!(line.contains("no worker took the job"), "{line}");
}

#[tokio::test]
async fn refresh_channel_inline_retry_exits_3_and_says_so() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("34001").await;
    env.sim.inject(simulator::Fault::new(simulator::FaultKind::ServerError, simulator::Matcher::Any));
    let (code, line) = refresh_channel(&env.config, &ch.to_string(), Duration::from_secs(1), true).await;
    assert_eq!(code, EXIT_NOT_SETTLED, "{line}");
    assert!(line.contains("retry scheduled"), "{line}");
}
