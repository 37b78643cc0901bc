//! The producer: cycles, the cron trigger, send-failure intake, admin commands.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use producer::{
    cron::{self, FiredLog},
    cycle::{CycleCount, enqueue_cycle},
};
use redis::AsyncCommands;
use serde_json::json;
use shared::{
    intake::{Decision, parse_report},
    job::Reason,
    keys::RedisKeys,
    pending,
    queue::{self, Waited},
};
use tests::{TestEnv, wait::until};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_channel_is_not_queued_twice() {
    let env = TestEnv::new().await;
    env.seed_healthy(50, 40_000).await;
    let first = enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    let second = enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    assert_eq!(first, CycleCount { enqueued: 50, skipped: 0 });
    assert_eq!(second, CycleCount { enqueued: 0, skipped: 50 });
    assert_eq!(env.queued_jobs().await, 1, "50 channels, one batch job");
    // A send failure for a queued channel joins its job.
    let ch = env.seed_healthy(1, 40_100).await[0];
    let report = parse_report(&json!({"error": {"code": 190, "message": "x"}})).expect("graph error");
    let d1 = env.intake().report(ch, &report, None).await.expect("intake");
    let d2 = env.intake().report(ch, &report, None).await.expect("intake");
    let Decision::Enqueued { job_id } = d1 else { panic!("{d1:?}") };
    assert_eq!(d2, Decision::Coalesced { job_id });
    let third = enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    assert_eq!(third, CycleCount { enqueued: 0, skipped: 51 });
}

#[tokio::test]
async fn only_one_of_two_producers_fires_each_tick() {
    let env = TestEnv::new().await;
    env.seed_healthy(5, 41_000).await;
    let schedule = cron::parse_schedule("* * * * * *").expect("every second");
    let shutdown = CancellationToken::new();
    let logs: Vec<FiredLog> = (0..2).map(|_| FiredLog::default()).collect();
    let config = Arc::new(env.config.clone());
    let tasks: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| {
            let trigger = cron::Trigger {
                schedule: schedule.clone(),
                db: env.db.clone(),
                redis: env.redis.clone(),
                storage: env.storage(),
                config: config.clone(),
                replica: format!("producer-{i}"),
                fired: Some(log.clone()),
                skipped: None,
            };
            tokio::spawn(cron::run(trigger, shutdown.clone()))
        })
        .collect();
    let fired = |logs: &[FiredLog]| logs.iter().map(|l| l.lock().expect("log").len()).sum::<usize>();
    // Ticks come once a second; wait for four of them.
    until(Duration::from_secs(10), "four cron ticks fired", || async { fired(&logs) >= 4 }).await;
    shutdown.cancel();
    for t in tasks {
        t.await.expect("cron task");
    }
    let mut ticks: Vec<_> = logs.iter().flat_map(|l| l.lock().expect("log").clone()).collect();
    assert!(ticks.len() >= 4, "{ticks:?}");
    let n = ticks.len();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), n, "a tick fired twice");
    // Both replicas ran for every tick, only one fired it; each fired tick has its claim key.
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    for t in &ticks {
        let owner: Option<String> = redis::cmd("GET")
            .arg(format!("{q}:cron:{}", t.timestamp()))
            .query_async(&mut env.redis.clone())
            .await
            .expect("get");
        assert!(owner.is_some_and(|o| o.starts_with("producer-")));
    }
}

#[tokio::test]
async fn a_storm_of_reports_makes_one_refresh() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("42001").await;
    env.sim.kill_page_token("42001", &user, 190, Some(463), "expired");
    let report = parse_report(&json!({"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190, "error_subcode": 463}})).expect("report");
    let intake = env.intake();
    let decisions = futures::future::join_all((0..1_000).map(|_| intake.report(ch, &report, None))).await;
    let decisions: Vec<Decision> = decisions.into_iter().map(|d| d.expect("intake")).collect();
    let enqueued: Vec<_> = decisions.iter().filter(|d| matches!(d, Decision::Enqueued { .. })).collect();
    assert_eq!(enqueued.len(), 1, "{:?}", &decisions[..5]);
    let Decision::Enqueued { job_id } = *enqueued[0] else { unreachable!() };
    assert!(decisions.iter().all(|d| matches!(d, Decision::Enqueued { .. }) || *d == Decision::Coalesced { job_id }));
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_send_failures WHERE channel_id = $1")
        .bind(ch as i32)
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(recorded, 1_000, "every report is recorded");

    let worker = env.spawn_worker();
    let waited = queue::wait_for_report(&env.config, job_id, Duration::from_secs(15)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "refreshed"), "{waited:?}");
    assert_eq!(env.sim.count_where(|r| r.path == "/me/accounts"), 1, "one refresh for the whole storm");

    // A report about the token that was just replaced needs no Graph call.
    // (The worker's once-a-day expiry check may still be reading the user token, and the check that
    // the refreshed page is still subscribed runs after the report: neither is counted.)
    let token_calls = || env.sim.count_where(|r| r.path != "/debug_token" && !r.path.ends_with("/subscribed_apps"));
    let before = token_calls();
    let late = intake.report(ch, &report, Some(Utc::now() - chrono::Duration::seconds(5))).await.expect("intake");
    assert_eq!(late, Decision::AlreadyReplaced);
    assert_eq!(token_calls(), before);
    assert_eq!(queue::backlog(&mut env.redis.clone(), &env.config).await.expect("redis"), 0, "nothing new queued");
    let keys = RedisKeys::of(&env.config);
    assert_eq!(pending::owner(&mut env.redis.clone(), &keys, ch).await.expect("redis"), None, "marker released");
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn non_auth_errors_are_recorded_without_a_refresh() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("43001").await;
    for body in [
        json!({"error": {"code": 1, "message": "An unknown error occurred", "is_transient": true}}),
        json!({"error": {"code": 4, "message": "Application request limit reached"}}),
        json!({"error": {"code": 100, "message": "Invalid parameter"}}),
        json!({"error": {"code": 551, "message": "This person isn't available right now."}}),
        json!({"error": {"code": 10, "error_subcode": 2018278, "message": "outside the allowed window", "is_transient": true}}),
    ] {
        let report = parse_report(&body).expect("report");
        let d = env.intake().report(ch, &report, None).await.expect("intake");
        assert_eq!(d, Decision::NotAuth, "{body}");
    }
    assert_eq!(env.queued_jobs().await, 0);
    assert_eq!(pending::owner(&mut env.redis.clone(), &RedisKeys::of(&env.config), ch).await.expect("redis"), None);
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_send_failures WHERE decision = 'not_auth'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(recorded, 5);
    assert!(parse_report(&json!({"nope": 1})).is_err());
    assert!(parse_report(&json!({"error": "string"})).is_err());
}

#[tokio::test]
async fn a_deep_queue_defers_reports_and_loses_none() {
    let env = TestEnv::with(|c| c.queue_backlog_max = 5).await;
    let filler = env.seed_healthy(5, 44_000).await;
    let mut storage = env.storage();
    for &c in &filler {
        queue::enqueue(&mut storage, shared::job::RefreshJob::new(c, Reason::Manual), None).await.expect("filler job");
    }
    let (ch, user, _) = env.healthy_channel("44100").await;
    env.sim.kill_page_token("44100", &user, 190, Some(463), "expired");
    let report = parse_report(&json!({"error": {"code": 190, "message": "x"}})).expect("report");
    let intake = env.intake();
    let d = intake.report(ch, &report, None).await.expect("intake");
    let Decision::Deferred { job_id } = d else { panic!("{d:?}") };
    assert_eq!(intake.deferred_len().await.expect("redis"), 1);
    assert_eq!(intake.report(ch, &report, None).await.expect("intake"), Decision::Coalesced { job_id });

    let worker = env.spawn_worker();
    // A drainer (this one, or the worker's own) moves it once the queue has room.
    until(Duration::from_secs(10), "the deferred refresh moved to the queue", || async {
        intake.drain_deferred().await.expect("drain");
        intake.deferred_len().await.expect("redis") == 0
    })
    .await;
    let waited = queue::wait_for_report(&env.config, job_id, Duration::from_secs(15)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "refreshed"), "{waited:?}");
    worker.stop().await.expect("stop");
}

/// apalis-redis 1.0 workers die at ~8,000 due jobs; a 20,000-channel cycle keeps the backlog at its
/// bound and every channel gets validated with the worker alive throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_channel_cycle_holds_the_backlog_bound() {
    let env = TestEnv::new().await;
    let channels = env.seed_healthy(20_000, 50_000).await;
    let worker = env.spawn_worker();
    let sampling = CancellationToken::new();
    let sampler = {
        let (mut redis, config, stop) = (env.redis.clone(), env.config.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !stop.is_cancelled() {
                peak = peak.max(queue::backlog(&mut redis, &config).await.expect("redis"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let started = Utc::now();
    let count = enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    assert_eq!(count.enqueued, 20_000);
    let done = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(600),
        producer::progress::wait_for_answers(&env.db, started, channels.len() as u64, &done, |_, _| {}),
    )
    .await
    .expect("cycle finished in time")
    .expect("db");
    sampling.cancel();
    let peak = sampler.await.expect("sampler");
    assert!(peak <= env.config.queue_backlog_max, "peak backlog {peak}");
    assert!(peak > 0);
    let healthy: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'healthy'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(healthy, 20_000);
    assert!(worker.join.as_ref().is_some_and(|j| !j.is_finished()), "worker still running");
    worker.stop().await.expect("stop");
}

/// A Redis error after the intake claimed the channel leaves no marker behind: the next report
/// starts a refresh that really exists, instead of joining one that was never pushed.
#[tokio::test]
async fn a_report_that_failed_after_its_claim_leaves_no_phantom() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("45001").await;
    env.sim.kill_page_token("45001", &user, 190, Some(463), "expired");
    let report = parse_report(&json!({"error": {"code": 190, "message": "x"}})).expect("report");
    let scheduled = format!("{}:scheduled", shared::keys::RedisKeys::of(&env.config).queue());
    let mut conn = env.redis.clone();
    // The backlog check (ZCOUNT) now fails with WRONGTYPE, after the claim.
    let _: () = conn.set(&scheduled, "not a sorted set").await.expect("set");
    let failed = env.intake().report(ch, &report, None).await;
    assert!(failed.is_err(), "{failed:?}");
    let _: () = conn.del(&scheduled).await.expect("del");
    let decision = env.intake().report(ch, &report, None).await.expect("intake");
    let Decision::Enqueued { job_id } = decision else { panic!("joined a phantom: {decision:?}") };
    assert_eq!(env.queued_jobs().await, 1, "the job is in the queue");
    let worker = env.spawn_worker();
    let waited = queue::wait_for_report(&env.config, job_id, Duration::from_secs(15)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "refreshed"), "{waited:?}");
    worker.stop().await.expect("stop");
}

/// Deferred refreshes leave the deferred list only once their jobs are in the queue (a failed
/// push, or a crash in between, loses none and reorders none), they go to the head of the queue
/// like every send-failure refresh, and one pushed twice is queued once.
#[tokio::test]
async fn deferred_refreshes_are_never_lost_and_go_to_the_head() {
    let env = TestEnv::with(|c| c.queue_backlog_max = 5).await;
    let filler = env.seed_healthy(5, 47_000).await;
    let mut storage = env.storage();
    for &c in &filler {
        queue::enqueue(&mut storage, shared::job::RefreshJob::new(c, Reason::Cron), None).await.expect("filler job");
    }
    let report = parse_report(&json!({"error": {"code": 190, "message": "x"}})).expect("report");
    let mut deferred = Vec::new();
    for page in ["47101", "47102", "47103"] {
        let (ch, _, _) = env.healthy_channel(page).await;
        let d = env.intake().report(ch, &report, None).await.expect("intake");
        assert!(matches!(d, Decision::Deferred { .. }), "{d:?}");
        deferred.push(ch);
    }
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let (data, list) = (format!("{q}:data"), format!("{q}:deferred"));
    let mut conn = env.redis.clone();
    let before: Vec<String> = conn.lrange(&list, 0, -1).await.expect("lrange");
    assert_eq!(before.len(), 3);
    let mut drainer = env.intake();
    drainer.config = Arc::new(shared::config::Config { queue_backlog_max: 100, ..env.config.clone() });

    // The push fails (the task data hash is of the wrong type): the list is as it was.
    let _: () = conn.rename(&data, format!("{data}:aside")).await.expect("rename");
    let _: () = conn.set(&data, "not a hash").await.expect("set");
    assert!(drainer.drain_deferred().await.is_err());
    let _: () = conn.del(&data).await.expect("del");
    let _: () = conn.rename(format!("{data}:aside"), &data).await.expect("rename");
    let after: Vec<String> = conn.lrange(&list, 0, -1).await.expect("lrange");
    assert_eq!(after, before, "nothing lost, nothing reordered");

    // A drainer that pushed them and died before taking them off the list.
    let jobs: Vec<shared::job::RefreshJob> =
        before.iter().map(|b| serde_json::from_str(b).expect("deferred job")).collect();
    queue::enqueue_front_many(&mut env.storage(), &mut conn, &env.config, jobs.clone()).await.expect("push");
    assert_eq!(drainer.drain_deferred().await.expect("drain"), 3);
    assert_eq!(env.queued_jobs().await, 5 + 3, "each deferred job queued once");
    assert_eq!(drainer.deferred_len().await.expect("redis"), 0);
    assert_eq!(drainer.drain_deferred().await.expect("drain"), 0);

    // Ahead of the filler, oldest first.
    let active: Vec<String> = conn.lrange(format!("{q}:active"), 0, -1).await.expect("lrange");
    assert_eq!(active.len(), 3, "{active:?}");
    let mut first = Vec::new();
    for id in &active {
        let body: Vec<u8> = conn.hget(&data, id).await.expect("hget");
        let job: shared::job::RefreshJob = serde_json::from_slice(&body).expect("job");
        first.push(job.channel_id());
    }
    assert_eq!(first, deferred);
}

/// A cycle that a store error stopped mid-way resumes where it stopped without waiting for the
/// next tick, and enqueues no channel twice.
#[tokio::test]
async fn an_interrupted_cycle_resumes_where_it_stopped() {
    // Chunk 1 (500 channels, 10 batch jobs) fits under the bound; chunk 2 waits for room.
    let env = TestEnv::with(|c| c.queue_backlog_max = 11).await;
    env.seed_healthy(600, 48_000).await;
    let (captured, _guard) = tests::logs::capture();
    let at = Utc::now() + chrono::Duration::seconds(2);
    let once_a_day = format!("{} {} {} * * *", at.format("%S"), at.format("%M"), at.format("%H"));
    let fired = FiredLog::default();
    let trigger = cron::Trigger {
        schedule: cron::parse_schedule(&once_a_day).expect("schedule"),
        db: env.db.clone(),
        redis: env.redis.clone(),
        storage: env.storage(),
        config: Arc::new(env.config.clone()),
        replica: "producer-0".into(),
        fired: Some(fired.clone()),
        skipped: None,
    };
    let shutdown = CancellationToken::new();
    let cron_task = tokio::spawn(cron::run(trigger, shutdown.clone()));
    until(Duration::from_secs(10), "chunk 1 enqueued (10 batch jobs)", || async { env.queued_jobs().await == 10 })
        .await;
    // A store error while chunk 2 waits: the backlog check (LLEN) fails with WRONGTYPE.
    let active = format!("{}:active", shared::keys::RedisKeys::of(&env.config).queue());
    let mut conn = env.redis.clone();
    let _: () = conn.set(&active, "not a list").await.expect("set");
    until(Duration::from_secs(10), "the cycle met the error (WRONGTYPE logged)", || async {
        captured.text().contains("WRONGTYPE")
    })
    .await;
    let _: () = conn.del(&active).await.expect("del");
    // Room comes as the worker validates chunk 1.
    let worker = env.spawn_worker();
    until(Duration::from_secs(60), "the rest of the cycle ran (600 channels healthy)", || async {
        env.status_count("healthy").await == 600
    })
    .await;
    assert_eq!(fired.lock().expect("log").len(), 1, "one tick");
    // A batch's first check that finds a channel healthy is counted in its batch's row, a single
    // job's has a row of its own: 600 checks in all for 600 channels, all healthy, is each channel
    // exactly once.
    let validations: i64 = sqlx::query_scalar(
        "SELECT (SELECT coalesce(sum(first_checks + unchanged), 0) FROM fb_validation_batches WHERE reason = 'cron')
              + (SELECT count(*) FROM fb_token_events WHERE step = 'validate' AND reason = 'cron')",
    )
    .fetch_one(&env.db)
    .await
    .expect("db");
    assert_eq!(validations, 600, "each channel validated once");
    shutdown.cancel();
    cron_task.await.expect("cron task");
    worker.stop().await.expect("stop");
}

/// A report tried again with the same job after its first try lost its connection: once the
/// claim had landed (the answer lost), once the push had too. Each retry finishes what the first
/// try began, and the job is queued once.
#[tokio::test]
async fn a_retried_report_finishes_its_own_claim() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("45101").await;
    env.sim.kill_page_token("45101", &user, 190, Some(463), "expired");
    let report = parse_report(&json!({"error": {"code": 190, "message": "x"}})).expect("report");
    let job = shared::job::RefreshJob::new(ch, Reason::SendFailure);
    let keys = RedisKeys::of(&env.config);
    // The first try's claim reached Redis; its answer did not.
    let claimed = pending::claim_many(&mut env.redis.clone(), &keys, &[(ch, job.job_id())]).await.expect("claim");
    assert_eq!(claimed, vec![true]);
    let intake = env.intake();
    let decision = intake.report_as(&job, &report, None).await.expect("intake");
    assert_eq!(decision, Decision::Enqueued { job_id: job.job_id() }, "not coalesced into a job never pushed");
    assert_eq!(env.queued_jobs().await, 1);
    // And a try whose push landed with its answer lost.
    let again = intake.report_as(&job, &report, None).await.expect("intake");
    assert_eq!(again, Decision::Enqueued { job_id: job.job_id() });
    assert_eq!(env.queued_jobs().await, 1, "queued once");
    let worker = env.spawn_worker();
    let waited = queue::wait_for_report(&env.config, job.job_id(), Duration::from_secs(15)).await.expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "refreshed"), "{waited:?}");
    worker.stop().await.expect("stop");
}

/// A producer stopped mid-cycle (a restart, a crash) leaves the rest of its cycle to the next
/// producer that starts, which enqueues exactly the channels the first did not get to.
#[tokio::test]
async fn a_cycle_cut_short_by_a_restart_is_finished_by_the_next_producer() {
    let env = TestEnv::new().await;
    let channels = env.seed_healthy(60, 49_000).await;
    // Today's tick was a few seconds ago; the next is tomorrow.
    let tick = Utc::now() - chrono::Duration::seconds(5);
    let daily = format!("{} {} {} * * *", tick.format("%S"), tick.format("%M"), tick.format("%H"));
    let schedule = cron::parse_schedule(&daily).expect("schedule");
    let tick = schedule.find_previous_occurrence(&Utc::now(), false).expect("previous tick");
    // The stopped producer had claimed it and enqueued the first ten channels.
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let mut conn = env.redis.clone();
    let _: () = conn.set(format!("{q}:cron:{}", tick.timestamp()), "producer-gone").await.expect("set");
    let progress = cron::progress_key(&env.config, tick);
    let _: () = conn.set(&progress, channels[9]).await.expect("set");
    let trigger = cron::Trigger {
        schedule,
        db: env.db.clone(),
        redis: env.redis.clone(),
        storage: env.storage(),
        config: Arc::new(env.config.clone()),
        replica: "producer-new".into(),
        fired: None,
        skipped: None,
    };
    let shutdown = CancellationToken::new();
    let cron_task = tokio::spawn(cron::run(trigger, shutdown.clone()));
    until(Duration::from_secs(10), "the cycle was finished (its progress key marked done)", || {
        let (mut conn, progress) = (conn.clone(), progress.clone());
        async move {
            let done: Option<String> = conn.get(&progress).await.expect("get");
            done.as_deref() == Some(producer::cycle::PROGRESS_DONE)
        }
    })
    .await;
    shutdown.cancel();
    cron_task.await.expect("cron task");
    let bodies: Vec<Vec<u8>> = conn.hvals(format!("{q}:data")).await.expect("hvals");
    let mut enqueued: Vec<i64> = bodies
        .iter()
        .flat_map(|b| {
            let job: shared::job::BatchJob = serde_json::from_slice(b).expect("batch job");
            job.v1().channel_ids.clone()
        })
        .collect();
    enqueued.sort_unstable();
    assert_eq!(enqueued, channels[10..].to_vec(), "exactly the channels the stopped producer did not get to");
}

/// The queue drained in this process through the worker's own step, without a worker: a cycle's
/// batches settle every channel, release every marker, and leave nothing waiting.
#[tokio::test]
async fn a_cycle_drained_in_process_settles_every_channel() {
    let env = TestEnv::new().await;
    let ids = env.seed_healthy(120, 41_000).await;
    let count = enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    assert_eq!(count.enqueued, 120);
    let state = env.worker_state().await;
    assert_eq!(tests::drain::drain_queue(&state, 100).await, 3, "120 channels are three batches of at most 50");
    assert_eq!(env.status_count("healthy").await, 120);
    let keys = RedisKeys::of(&env.config);
    for &ch in &ids {
        assert_eq!(pending::owner(&mut env.redis.clone(), &keys, ch).await.expect("redis"), None, "channel {ch}");
    }
    assert_eq!(tests::drain::drain_queue(&state, 100).await, 0, "nothing left to run");
}

#[tokio::test]
async fn a_paused_schedule_skips_its_ticks_on_every_replica_until_resumed() {
    use producer::cli::{ScheduleAction, schedule};
    let env = TestEnv::new().await;
    env.seed_healthy(3, 43_000).await;
    assert_eq!(schedule(&env.config, ScheduleAction::Status).await.expect("status"), "schedule running");
    let paused = schedule(&env.config, ScheduleAction::Pause).await.expect("pause");
    assert!(paused.starts_with("schedule paused by producer schedule pause since "), "{paused}");
    // Pausing again keeps the first pause.
    assert_eq!(schedule(&env.config, ScheduleAction::Pause).await.expect("pause"), paused);

    let every_second = cron::parse_schedule("* * * * * *").expect("every second");
    let shutdown = CancellationToken::new();
    let (fired, skipped) = (FiredLog::default(), FiredLog::default());
    let config = Arc::new(env.config.clone());
    let tasks: Vec<_> = (0..2)
        .map(|i| {
            let trigger = cron::Trigger {
                schedule: every_second.clone(),
                db: env.db.clone(),
                redis: env.redis.clone(),
                storage: env.storage(),
                config: config.clone(),
                replica: format!("producer-{i}"),
                fired: Some(fired.clone()),
                skipped: Some(skipped.clone()),
            };
            tokio::spawn(cron::run(trigger, shutdown.clone()))
        })
        .collect();
    let len = |log: &FiredLog| log.lock().expect("log").len();
    // Both replicas see the pause: two ticks each skipped, none fired, nothing queued.
    until(Duration::from_secs(10), "four skipped ticks", || async { len(&skipped) >= 4 }).await;
    assert_eq!(len(&fired), 0, "a paused schedule fired a tick");
    assert_eq!(env.queued_jobs().await, 0, "a paused schedule queued jobs");

    assert_eq!(schedule(&env.config, ScheduleAction::Resume).await.expect("resume"), "schedule resumed");
    until(Duration::from_secs(10), "a tick fired after resuming", || async { len(&fired) >= 1 }).await;
    assert!(env.queued_jobs().await >= 1, "the resumed tick queued the cycle");
    shutdown.cancel();
    for t in tasks {
        t.await.expect("cron task");
    }
    assert_eq!(schedule(&env.config, ScheduleAction::Resume).await.expect("resume"), "schedule was not paused");
}
