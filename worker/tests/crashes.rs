//! The real worker binary under crashes: kill -9 mid-cycle, and Redis dying under it.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use shared::job::Reason;
use tests::{TestEnv, outage::ThrowawayRedis, wait::eventually};
use tokio::io::AsyncReadExt;

async fn cycle(env: &TestEnv) -> u64 {
    producer::cycle::enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle").enqueued
}

/// kill -9 of one of two workers in the middle of a cycle: the other finishes every channel, the
/// killed one's in-flight jobs coming back as orphans within 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_cycle_loses_nothing() {
    let env = TestEnv::new().await;
    let n = 600;
    env.seed_healthy(n, 140_000).await;
    env.sim.set_latency(Duration::from_millis(100));
    let spawn = || {
        env.command(env!("CARGO_BIN_EXE_worker"))
            .env("WORKER_CONCURRENCY", "8")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts")
    };
    let (mut doomed, mut survivor) = (spawn(), spawn());
    assert_eq!(cycle(&env).await, n as u64);
    eventually(Duration::from_secs(60), "100 channels healthy before the kill", || async {
        (env.status_count("healthy").await >= 100).then_some(())
    })
    .await;
    let pid = doomed.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-9", &pid]).status().expect("kill").success());
    let _ = doomed.wait().await;
    let killed = Instant::now();
    eventually(Duration::from_secs(90), "every channel healthy after kill -9", || async {
        (env.status_count("healthy").await >= n as i64).then_some(())
    })
    .await;
    let recovered = killed.elapsed();
    assert!(survivor.try_wait().expect("status").is_none(), "survivor still running");
    let flags = env.redis_keys().await.into_iter().filter(|k| k.contains("authorization")).count();
    assert_eq!(flags, 0);
    println!(
        "kill -9 mid-cycle: {n} channels processed, 0 lost, 0 false flags, all healthy {recovered:?} after the kill"
    );
    let _ = survivor.kill().await;
}

/// Redis gone for a while: the worker's loop fails, says why, backs off and restarts instead of
/// exiting; once Redis is back it takes jobs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_loop_restarts_when_redis_goes_away() {
    let mut redis = ThrowawayRedis::start().await;
    let url = redis.url();
    let env = TestEnv::with(|c| c.redis_url = shared::secret::Secret::new(url)).await;
    let (ch, _, _) = env.healthy_channel("150001").await;
    let mut worker = env
        .command(env!("CARGO_BIN_EXE_worker"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts");
    // Wait until the worker has registered (it polls from then on), then take Redis away.
    let key = format!("{}:workers", shared::keys::RedisKeys::of(&env.config).queue());
    let conn = env.redis.clone();
    eventually(Duration::from_secs(30), "the worker registered", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { (redis::AsyncCommands::zcard::<_, u64>(&mut conn, &key).await.unwrap_or(0) > 0).then_some(()) }
    })
    .await;
    redis.restart(Duration::from_secs(3)).await;
    // The worker is still up, and serves a job once Redis is back.
    let (code, line) =
        producer::refresh_channel::refresh_channel(&env.config, &ch.to_string(), Duration::from_secs(30), false).await;
    assert_eq!(code, 0, "{line}");
    assert!(worker.try_wait().expect("status").is_none(), "worker did not exit");
    let _ = std::process::Command::new("kill").args(["-TERM", &worker.id().expect("pid").to_string()]).status();
    let mut stderr = String::new();
    worker.stderr.take().expect("stderr").read_to_string(&mut stderr).await.expect("read");
    let _ = worker.wait().await;
    assert!(stderr.contains("worker loop failed; restarting"), "{stderr}");
}
