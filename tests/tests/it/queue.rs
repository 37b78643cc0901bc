//! The queue and the worker process loop: each apalis-redis 1.0 hazard designed around, proven.

use std::time::Duration;

use apalis::prelude::TaskSink;
use redis::AsyncCommands;
use shared::{
    job::{Reason, RefreshJob},
    queue::{self, Timings, Waited},
};
use simulator::{Fault, FaultKind, Matcher};
use tests::{
    TestEnv,
    env::fast_timings,
    wait::{eventually, until},
};

async fn enqueue_and_wait(env: &TestEnv, channel: i64, wait: Duration) -> Waited {
    let mut storage = queue::job_storage(env.redis.clone(), &env.config, &fast_timings());
    let job = RefreshJob::new(channel, Reason::Manual);
    queue::enqueue(&mut storage, job.clone(), None).await.expect("enqueue");
    queue::wait_for_report(&env.config, job.job_id(), wait).await.expect("redis")
}

/// `RedisStorage::new` would name the queue after the Rust type path.
#[tokio::test]
async fn queue_is_namespaced_explicitly() {
    let env = TestEnv::new().await;
    let mut storage = queue::job_storage(env.redis.clone(), &env.config, &fast_timings());
    queue::enqueue(&mut storage, RefreshJob::new(1, Reason::Cron), None).await.expect("enqueue");
    let keys = env.redis_keys().await;
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    assert!(keys.iter().any(|k| *k == format!("{q}:data")), "{keys:?}");
    let mut conn = env.redis.clone();
    let stray: Vec<String> = redis::cmd("KEYS").arg("*RefreshJob*").query_async(&mut conn).await.expect("keys");
    assert!(stray.is_empty(), "{stray:?}");
}

/// Without `poll_with_interval` an idle worker would see a new job only at its 30 s heartbeat.
#[tokio::test]
async fn idle_worker_picks_up_a_new_job_long_before_its_heartbeat() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("21001").await;
    let timings = Timings { heartbeat: Duration::from_secs(30), missed_heartbeats: 3, ..fast_timings() };
    let worker = env.spawn_worker_with(timings);
    // Let the worker go idle first: its first fetch finds nothing.
    wait_for_workers(&env, 1).await;
    let started = std::time::Instant::now();
    let waited = enqueue_and_wait(&env, ch, Duration::from_secs(10)).await;
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    worker.stop().await.expect("clean stop");
}

/// Two workers in one process (or two pods on one host) register under distinct names.
#[tokio::test]
async fn every_worker_process_registers_under_its_own_name() {
    let env = TestEnv::new().await;
    let a = env.spawn_worker();
    let b = env.spawn_worker();
    let names = wait_for_workers(&env, 2).await;
    assert_eq!(names.len(), 2, "{names:?}");
    a.stop().await.expect("stop a");
    b.stop().await.expect("stop b");
}

async fn wait_for_workers(env: &TestEnv, n: usize) -> Vec<String> {
    let key = format!("{}:workers", shared::keys::RedisKeys::of(&env.config).queue());
    // The worker registers itself on its first poll; there is no event to await from outside.
    eventually(Duration::from_secs(10), &format!("{n} workers registered"), || {
        let (mut conn, key) = (env.redis.clone(), &key);
        async move {
            let names: Vec<String> = conn.zrange(key, 0, -1).await.expect("zrange");
            (names.len() >= n).then_some(names)
        }
    })
    .await
}

/// apalis ignores `RetryAfter`/`max_attempts`; our own re-scheduling (same job id, next attempt)
/// carries a transient failure to a settled result, and nothing lands in apalis's dead set.
#[tokio::test]
async fn transient_failure_is_rescheduled_and_settles() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("22001").await;
    env.sim.inject(Fault::once(FaultKind::ServerError, Matcher::Any));
    let worker = env.spawn_worker();
    let waited = enqueue_and_wait(&env, ch, Duration::from_secs(20)).await;
    let Waited::Settled(report) = waited else { panic!("{waited:?}") };
    assert_eq!((report.outcome.as_str(), report.attempt), ("healthy", 2));
    // Two validations; the once-a-day expiry (debug_token) and subscription checks may follow,
    // not counted.
    assert_eq!(env.sim.count_where(|r| r.path != "/debug_token" && !r.path.ends_with("/subscribed_apps")), 2);
    let dead: u64 = env
        .redis
        .clone()
        .scard(format!("{}:dead", shared::keys::RedisKeys::of(&env.config).queue()))
        .await
        .expect("scard");
    assert_eq!(dead, 0);
    worker.stop().await.expect("stop");
}

/// After the last attempt the job is dead: reported, state `unknown`, no flag.
#[tokio::test]
async fn attempts_are_capped() {
    let env = TestEnv::with(|c| c.retry.max_attempts = 2).await;
    let (ch, _, _) = env.healthy_channel("23001").await;
    env.sim.inject(Fault::new(FaultKind::ServerError, Matcher::Any));
    let worker = env.spawn_worker();
    let waited = enqueue_and_wait(&env, ch, Duration::from_secs(20)).await;
    let Waited::Settled(report) = waited else { panic!("{waited:?}") };
    assert_eq!((report.outcome.as_str(), report.attempt), ("dead", 2));
    assert_eq!(env.sim.request_count(), 2);
    assert_eq!(env.flags(ch).await, Default::default());
    let (kind, attempts): (String, i32) = sqlx::query_as(
        "SELECT error_kind, attempts FROM fb_token_states s, fb_dead_jobs d WHERE d.channel_id = s.channel_id",
    )
    .fetch_one(&env.db)
    .await
    .expect("dead-letter row");
    assert_eq!((kind.as_str(), attempts), ("transient", 2));
    // Re-driven after the outage: healthy, and the record is marked.
    env.sim.clear_faults();
    let redriven = producer::retry_dead::retry_dead(&env.config, Some(ch)).await.expect("retry-dead");
    assert_eq!(redriven.to_string(), "re-enqueued 1 channels from 1 dead jobs");
    // The job id comes from the command itself: a fast worker may settle it, and drop the
    // pending marker, before a second look could read it.
    let [job] = redriven.jobs[..] else { panic!("{redriven:?}") };
    let waited = queue::wait_for_report(&env.config, job, Duration::from_secs(15)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
    let open = shared::store::open_dead_count(&env.db).await.expect("db");
    assert_eq!(open, 0);
    worker.stop().await.expect("stop");
}

/// Undecodable payloads are dropped with a log line; the worker goes on with the next job.
#[tokio::test]
async fn poison_payloads_do_not_stop_the_worker() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("24001").await;
    let mut raw = queue::raw_storage(env.redis.clone(), &env.config, &fast_timings());
    for bad in [
        serde_json::json!({"garbage": true}),
        serde_json::json!("text"),
        serde_json::json!({"type": "refresh.v1", "channel_id": -5}),
    ] {
        raw.push(bad).await.expect("push");
    }
    let worker = env.spawn_worker();
    let waited = enqueue_and_wait(&env, ch, Duration::from_secs(10)).await;
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
    // The good job runs beside the poison ones (concurrency), so it may settle first; their rows
    // are the only sign they were handled, so wait for those, within a bound.
    let poison = eventually(Duration::from_secs(10), "each poison payload recorded as a dead job", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_dead_jobs WHERE error_kind = 'poison'")
            .fetch_one(&env.db)
            .await
            .expect("db");
        (n >= 3).then_some(n)
    })
    .await;
    assert_eq!(poison, 3, "each poison payload is recorded once");
    worker.stop().await.expect("stop");
}

/// apalis-redis keeps completed jobs forever; the sweep deletes them and nothing else.
#[tokio::test]
async fn completed_jobs_are_swept_but_scheduled_ones_kept() {
    // Without app credentials there is no proactive check, so no proactive job is scheduled.
    let env = TestEnv::with(|c| c.fb_app_id = None).await;
    let (ch, _, _) = env.healthy_channel("25001").await;
    let worker = env.spawn_worker();
    assert!(matches!(enqueue_and_wait(&env, ch, Duration::from_secs(10)).await, Waited::Settled(_)));
    worker.stop().await.expect("stop");
    let mut storage = queue::job_storage(env.redis.clone(), &env.config, &fast_timings());
    queue::enqueue(&mut storage, RefreshJob::new(ch, Reason::Cron), Some(Duration::from_secs(3600)))
        .await
        .expect("later job");
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let mut conn = env.redis.clone();
    let done_before: u64 = conn.scard(format!("{q}:done")).await.expect("scard");
    assert!(done_before >= 1);
    let swept = queue::sweep_done(&mut conn, &env.config, 1000).await.expect("sweep");
    assert_eq!(swept as u64, done_before);
    let data: u64 = conn.hlen(format!("{q}:data")).await.expect("hlen");
    let scheduled: u64 = conn.zcard(format!("{q}:scheduled")).await.expect("zcard");
    assert_eq!((data, scheduled), (1, 1), "only the scheduled job's data is left");
}

/// A stopping worker finishes the job it is running before it exits.
#[tokio::test]
async fn shutdown_finishes_in_flight_jobs() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("26001").await;
    env.sim.inject(Fault::once(FaultKind::Latency(Duration::from_millis(1500)), Matcher::Any));
    let worker = env.spawn_worker();
    let mut storage = queue::job_storage(env.redis.clone(), &env.config, &fast_timings());
    let job = RefreshJob::new(ch, Reason::Manual);
    queue::enqueue(&mut storage, job.clone(), None).await.expect("enqueue");
    // Stop as soon as the Graph call is under way.
    eventually(Duration::from_secs(10), "the Graph call under way", || async {
        (env.sim.request_count() > 0).then_some(())
    })
    .await;
    worker.stop().await.expect("stop");
    let waited = queue::wait_for_report(&env.config, job.job_id(), Duration::from_millis(100)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
}

/// A worker killed mid-job (its task dropped, as with kill -9: no ack, no more heartbeats) leaves an
/// orphan that another worker recovers within 30 s with the production timings.
#[tokio::test]
async fn orphans_of_a_dead_worker_are_recovered_within_30s() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("27001").await;
    env.sim.inject(Fault::once(FaultKind::Hang, Matcher::Any));
    let production = Timings::default();
    assert!(production.heartbeat * (production.missed_heartbeats as u32 + 1) <= Duration::from_secs(30));
    let mut doomed = env.spawn_worker_with(production);
    let mut storage = queue::job_storage(env.redis.clone(), &env.config, &production);
    let job = RefreshJob::new(ch, Reason::Manual);
    queue::enqueue(&mut storage, job.clone(), None).await.expect("enqueue");
    eventually(Duration::from_secs(10), "the Graph call under way", || async {
        (env.sim.request_count() > 0).then_some(())
    })
    .await;
    doomed.join.take().expect("running").abort();
    let killed_at = std::time::Instant::now();
    let survivor = env.spawn_worker_with(production);
    let waited = queue::wait_for_report(&env.config, job.job_id(), Duration::from_secs(30)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
    assert!(killed_at.elapsed() <= Duration::from_secs(30));
    survivor.stop().await.expect("stop");
}

#[tokio::test]
async fn worker_serves_healthz_and_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let env = TestEnv::with(|c| c.worker_metrics_bind = format!("127.0.0.1:{port}").parse().expect("addr")).await;
    let (ch, _, _) = env.healthy_channel("28001").await;
    let worker = env.spawn_worker();
    assert!(matches!(enqueue_and_wait(&env, ch, Duration::from_secs(10)).await, Waited::Settled(_)));
    let http = reqwest::Client::new();
    let health = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics =
        http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.expect("metrics").text().await.expect("body");
    assert!(metrics.contains("fb_token_jobs_total{outcome=\"healthy\"} 1"), "{metrics}");
    assert!(metrics.contains("fb_token_graph_request_duration_seconds"), "{metrics}");
    worker.stop().await.expect("stop");
}

/// 9,000 due jobs pushed past the producers' bound (an old producer, a burst of retries) would make
/// every apalis-redis 1.0 fetch fail; the worker moves them in chunks before (re)starting and
/// drains them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_past_the_fetch_limit_does_not_wedge_workers() {
    let env = TestEnv::new().await;
    let jobs: Vec<RefreshJob> = (0..9_000).map(|i| RefreshJob::new(900_000 + i, Reason::Cron)).collect();
    let mut storage = env.storage();
    storage.push_bulk(jobs).await.expect("push");
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let mut conn = env.redis.clone();
    let due: u64 = conn.zcard(format!("{q}:scheduled")).await.expect("zcard");
    assert_eq!(due, 9_000);
    let worker = env.spawn_worker();
    // Every job is for a channel that does not exist: each is dropped at once and acked.
    until(Duration::from_secs(60), "all 9,000 jobs drained: none scheduled, active or in flight", || {
        let (mut conn, q) = (conn.clone(), &q);
        async move {
            let (scheduled, active): (u64, u64) = redis::pipe()
                .zcard(format!("{q}:scheduled"))
                .llen(format!("{q}:active"))
                .query_async(&mut conn)
                .await
                .expect("redis");
            let inflight: Vec<String> = conn.keys(format!("{q}:inflight:*")).await.expect("keys");
            scheduled == 0 && active == 0 && inflight.is_empty()
        }
    })
    .await;
    assert!(worker.join.as_ref().is_some_and(|j| !j.is_finished()), "worker alive");
    worker.stop().await.expect("stop");
}

/// The hazard itself, kept as a canary: a bare apalis-redis 1.0 worker (no chunked move first)
/// fails its fetch with 9,000 due jobs and `run()` returns Err. If apalis fixes this, this test
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_bare_apalis_worker_dies_at_9000_due_jobs() {
    use apalis::prelude::{BackendExt, WorkerBuilder};
    let env = TestEnv::new().await;
    let jobs: Vec<RefreshJob> = (0..9_000).map(|i| RefreshJob::new(900_000 + i, Reason::Cron)).collect();
    env.storage().push_bulk(jobs).await.expect("push");
    let backend = queue::raw_storage(env.redis.clone(), &env.config, &fast_timings())
        .poll_with_interval(Duration::from_millis(50));
    let worker = WorkerBuilder::new(format!("canary-{}", uuid::Uuid::new_v4()))
        .backend(backend)
        .build(|_job: serde_json::Value| async move { Ok::<(), apalis::prelude::BoxDynError>(()) });
    let result = tokio::time::timeout(Duration::from_secs(30), worker.run()).await.expect("run() returns");
    let err = result.expect_err("fetch fails");
    assert!(err.to_string().contains("too many results to unpack"), "{err}");
}

async fn promote_due(env: &TestEnv) {
    let keys = shared::keys::RedisKeys::of(&env.config);
    tests::drain::promote_due(&mut env.redis.clone(), &keys, chrono::Utc::now().timestamp() + 1).await;
}

/// A fetch between the two steps of a front push (apalis's push, then our move to the head) put
/// the task at the tail, behind the whole backlog: during a cycle, seconds late. It must still
/// end up first, and only once.
#[tokio::test]
async fn a_front_push_overtaken_by_a_fetch_still_ends_up_first() {
    let env = TestEnv::new().await;
    let mut storage = env.storage();
    for channel in 1..=3 {
        queue::enqueue(&mut storage, RefreshJob::new(channel, Reason::Cron), None).await.expect("enqueue");
    }
    promote_due(&env).await;
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let mut conn = env.redis.clone();
    let backlog: Vec<String> = conn.lrange(format!("{q}:active"), 0, -1).await.expect("lrange");
    assert_eq!(backlog.len(), 3, "{backlog:?}");

    let front = RefreshJob::new(4, Reason::Manual);
    let id = queue::front_task_id(front.job_id());
    let task =
        apalis::prelude::TaskBuilder::new(front.clone()).task_id(apalis::prelude::TaskId::from(id.clone())).build();
    storage.push_all(futures::stream::iter(vec![task])).await.expect("apalis push");
    promote_due(&env).await;
    let overtaken: Vec<String> = conn.lrange(format!("{q}:active"), 0, -1).await.expect("lrange");
    assert_eq!(overtaken.last(), Some(&id), "the fetch put it at the tail: {overtaken:?}");

    queue::enqueue_front(&mut storage, &mut conn, &env.config, front).await.expect("front");
    let active: Vec<String> = conn.lrange(format!("{q}:active"), 0, -1).await.expect("lrange");
    assert_eq!(active.first(), Some(&id), "{active:?}");
    assert_eq!(active.len(), 4, "moved, not copied: {active:?}");
}
