//! The real `worker` binary: SIGTERM finishes the job in flight before the process exits.

use std::{process::Stdio, time::Duration};

use shared::{
    job::{Reason, RefreshJob},
    queue::{self, Waited},
};
use simulator::{Fault, FaultKind, Matcher};
use tests::{TestEnv, env::fast_timings, wait::eventually};

#[tokio::test]
async fn sigterm_finishes_in_flight_jobs_then_exits_0() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("81001").await;
    env.sim.inject(Fault::once(FaultKind::Latency(Duration::from_secs(2)), Matcher::Any));
    let c = &env.config;
    let mut child = env
        .command(env!("CARGO_BIN_EXE_worker"))
        .env("SHUTDOWN_GRACE_SECS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker binary starts");
    let job = RefreshJob::new(ch, Reason::Manual);
    queue::enqueue(&mut queue::job_storage(env.redis.clone(), c, &fast_timings()), job.clone(), None)
        .await
        .expect("enqueue");
    // The job is in flight once its (slow) Graph call has arrived.
    eventually(Duration::from_secs(10), "the job's Graph call under way", || async {
        (env.sim.request_count() > 0).then_some(())
    })
    .await;
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(25), child.wait())
        .await
        .expect("exits within the grace")
        .expect("wait");
    assert!(status.success(), "{status}");
    let waited = queue::wait_for_report(c, job.job_id(), Duration::from_millis(200)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
}

#[tokio::test]
async fn bad_configuration_exits_with_a_clear_error() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("WORKER_CONCURRENCY", "zero")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WORKER_CONCURRENCY"), "{err}");
}
