//! Runs the queue's jobs in this process, one at a time, through the worker's own step
//! (`shared::worker::handler::handle_payload`), as zero-to-production's
//! `dispatch_all_pending_emails` does for its outbox. A test that needs queued jobs to have run
//! need not spawn a worker and poll for their effects; it drains, then asserts.
//!
//! It moves tasks the way apalis-redis 1.0's `fetch_next.lua` and `handle_results.lua` do: due
//! scheduled tasks to the tail of the active list, the head taken first, a finished one into the
//! done set. Tasks scheduled for later (retries, re-checks) stay scheduled.

use redis::AsyncCommands;
use shared::{keys::RedisKeys, worker::WorkerState};

/// Runs jobs until none is waiting or due, at most `max` (a job that keeps pushing itself again
/// must not hang the test); returns how many ran. Panics on a Redis error or a job whose data is
/// missing, since either means the test's queue is not what it thinks.
pub async fn drain_queue(state: &WorkerState, max: usize) -> usize {
    let keys = RedisKeys::of(&state.config);
    let mut redis = state.redis.clone();
    let mut ran = 0;
    while ran < max {
        promote_due(&mut redis, &keys, chrono::Utc::now().timestamp()).await;
        let Some(id): Option<String> = redis.lpop(keys.active(), None).await.expect("lpop") else {
            break;
        };
        let data: Vec<u8> = redis.hget(keys.data(), &id).await.expect("hget");
        let payload: serde_json::Value = serde_json::from_slice(&data).expect("task data is the job's JSON");
        shared::worker::handler::handle_payload(state, payload).await.expect("the job's step");
        let _: () = redis.sadd(keys.done(), &id).await.expect("sadd");
        ran += 1;
    }
    ran
}

/// What a fetch does first (`fetch_next.lua`): tasks due by `upto` (Unix seconds) go to the tail
/// of the active list.
pub async fn promote_due(redis: &mut redis::aio::ConnectionManager, keys: &RedisKeys, upto: i64) {
    let due: Vec<String> = redis.zrangebyscore(keys.scheduled(), 0, upto).await.expect("zrangebyscore");
    if due.is_empty() {
        return;
    }
    let _: () = redis.rpush(keys.active(), &due).await.expect("rpush");
    let _: () = redis.zrem(keys.scheduled(), &due).await.expect("zrem");
}
