//! A panic inside one job: dead-lettered with its cause, its channel and waiters freed, counted, and
//! the worker goes on with the next job.

use std::time::Duration;

use apalis::prelude::{BackendExt, BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use shared::worker::{WorkerState, guard::run_guarded};
use shared::{
    job::{Reason, RefreshJob},
    keys::RedisKeys,
    locks, pending,
    queue::{self, Waited},
};
use tests::{TestEnv, env::fast_timings};

#[tokio::test]
async fn a_panicking_job_is_dead_lettered_and_its_waiter_answered() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("61001").await;
    let state = env.worker_state().await;
    let job = RefreshJob::new(ch, Reason::Manual);
    let id = job.job_id();
    // As the job would hold them while running: the channel's pending marker and its lock.
    let (pkeys, lkeys) = (RedisKeys::of(&env.config), RedisKeys::of(&env.config));
    let mut redis = env.redis.clone();
    assert_eq!(pending::claim_many(&mut redis, &pkeys, &[(ch, id)]).await.expect("claim"), vec![true]);
    assert!(locks::acquire(&mut redis, &lkeys, ch, id, Duration::from_secs(60)).await.expect("lock"));
    let config = env.config.clone();
    let waiter = tokio::spawn(async move { queue::wait_for_report(&config, id, Duration::from_secs(20)).await });

    let payload = serde_json::to_value(&job).expect("json");
    let (logs, guard) = tests::logs::capture();
    let result = run_guarded(&state, &payload, async move {
        if ch > 0 {
            panic!("job for channel {ch} hit a bug");
        }
        Ok(())
    })
    .await;
    drop(guard);
    assert!(result.is_ok(), "a panic is settled, not handed to apalis: {result:?}");

    let waited = tokio::time::timeout(Duration::from_secs(20), waiter).await.expect("waiter answered").expect("task");
    let Ok(Waited::Settled(report)) = waited else { panic!("{waited:?}") };
    assert_eq!((report.outcome.as_str(), report.settled), ("dead", true));
    let error = report.error.expect("cause");
    assert_eq!(error.kind, "panic");
    assert!(error.message.contains(&format!("job for channel {ch} hit a bug")), "{}", error.message);

    let (kind, message, job_id, channel): (String, String, uuid::Uuid, i32) =
        sqlx::query_as("SELECT error_kind, error_message, job_id, channel_id FROM fb_dead_jobs")
            .fetch_one(&env.db)
            .await
            .expect("one dead letter");
    assert_eq!((kind.as_str(), job_id, i64::from(channel)), ("panic", id, ch));
    assert!(message.contains("hit a bug"), "{message}");
    assert_eq!(pending::owner(&mut redis, &pkeys, ch).await.expect("owner"), None, "the channel is free again");
    assert!(
        locks::acquire(&mut redis, &lkeys, ch, uuid::Uuid::new_v4(), Duration::from_secs(1)).await.expect("lock"),
        "the lock is released, not left to expire"
    );
    let metrics = shared::metrics::render(&state.pipeline.metrics);
    assert!(metrics.contains("fb_token_jobs_total{outcome=\"panicked\"} 1"), "{metrics}");
    let text = logs.text();
    assert!(text.contains("ERROR") && text.contains("refresh job panicked") && text.contains("hit a bug"), "{text}");
    // A re-drive picks it up like any dead job.
    let open = shared::store::open_dead_jobs(&env.db, Some(ch), None).await.expect("db");
    assert_eq!(open.len(), 1);
}

/// The channel whose job panics in `probe`.
const PANICS: i64 = 1;

/// The production handler, except that one channel's job panics inside the guard, as a bug would.
async fn probe(payload: serde_json::Value, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    if payload["channel_id"].as_i64() == Some(PANICS) {
        return run_guarded(&state, &payload, async { panic!("probe: this job always panics") }).await;
    }
    shared::worker::handler::handle(payload, state).await
}

#[tokio::test]
async fn the_worker_serves_the_next_job_after_a_panic() {
    let env = TestEnv::with(|c| c.worker_concurrency = 1).await;
    let state = env.worker_state().await;
    let doomed = env.insert_channel(1, "62000", "page-token-62000", "user-token-62000").await;
    assert_eq!(doomed, PANICS, "the first channel of a fresh database");
    let (ch, _, _) = env.healthy_channel("62001").await;
    let mut storage = env.storage();
    let (first, second) = (RefreshJob::new(doomed, Reason::Manual), RefreshJob::new(ch, Reason::Manual));
    queue::enqueue(&mut storage, first.clone(), None).await.expect("enqueue");
    queue::enqueue(&mut storage, second.clone(), None).await.expect("enqueue");

    let backend = queue::raw_storage(env.redis.clone(), &env.config, &fast_timings())
        .poll_with_interval(fast_timings().poll_interval);
    let worker = WorkerBuilder::new(format!("panic-probe-{}", uuid::Uuid::new_v4()))
        .backend(backend)
        .concurrency(1)
        .data(state.clone())
        .build(probe);
    let running = tokio::spawn(worker.run());

    let waited = queue::wait_for_report(&env.config, first.job_id(), Duration::from_secs(20)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "dead"), "{waited:?}");
    let waited = queue::wait_for_report(&env.config, second.job_id(), Duration::from_secs(20)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "the next job ran: {waited:?}");
    assert!(!running.is_finished(), "the worker is still running");
    let panics: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_dead_jobs WHERE error_kind = 'panic'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(panics, 1);
    running.abort();
}
