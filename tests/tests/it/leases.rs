//! Leases (channel locks, pending markers, the daily gate): a batch takes and drops many with one
//! script, a lease whose holder died lapses at its deadline, and only the holder renews or drops.

use std::time::Duration;

use redis::AsyncCommands;
use shared::leases;
use tests::{TestEnv, wait::until};

fn keys(env: &TestEnv, n: usize, owner: &str) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("{}lease-test:{i}", env.config.redis_key_prefix), owner.to_owned())).collect()
}

#[tokio::test]
async fn a_batchs_leases_lapse_at_their_deadline_and_only_the_holder_renews_or_drops_them() {
    let env = TestEnv::new().await;
    let mut redis = env.redis.clone();
    let mine = keys(&env, 50, "batch:a");
    let theirs = keys(&env, 50, "batch:b");
    assert_eq!(leases::take(&mut redis, &mine, Duration::from_millis(300)).await.expect("take"), vec![true; 50]);
    assert_eq!(leases::take(&mut redis, &theirs, Duration::from_secs(60)).await.expect("take"), vec![false; 50]);
    // Not their lease: neither renewed nor dropped by them.
    assert_eq!(leases::renew(&mut redis, &theirs, Duration::from_secs(60)).await.expect("renew"), vec![false; 50]);
    assert_eq!(leases::drop(&mut redis, &theirs).await.expect("drop"), vec![false; 50]);
    assert_eq!(leases::holder(&mut redis, &mine[0].0).await.expect("holder").as_deref(), Some("batch:a"));
    // A batch's keys carry no native expiry (that would cost a command per key): the deadline in
    // the value is what lapses, as it does when the batch's worker died.
    let ttl: i64 = redis.pttl(&mine[0].0).await.expect("pttl");
    assert_eq!(ttl, -1);
    until(Duration::from_secs(5), "the lease lapses", || {
        let mut redis = env.redis.clone();
        let key = mine[0].0.clone();
        async move { leases::holder(&mut redis, &key).await.expect("holder").is_none() }
    })
    .await;
    assert_eq!(leases::renew(&mut redis, &mine, Duration::from_secs(60)).await.expect("renew"), vec![false; 50]);
    assert_eq!(leases::take(&mut redis, &theirs, Duration::from_secs(60)).await.expect("take"), vec![true; 50]);
    assert_eq!(leases::renew(&mut redis, &theirs, Duration::from_secs(60)).await.expect("renew"), vec![true; 50]);
    assert_eq!(leases::drop(&mut redis, &theirs).await.expect("drop"), vec![true; 50]);
    let left: Vec<Option<String>> =
        redis.mget(theirs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()).await.expect("mget");
    assert!(left.iter().all(Option::is_none), "dropped leases are deleted");
}

#[tokio::test]
async fn a_lease_taken_alone_also_expires_natively_and_a_plain_value_is_held() {
    let env = TestEnv::new().await;
    let mut redis = env.redis.clone();
    let one = keys(&env, 1, "job-1");
    assert_eq!(leases::take(&mut redis, &one, Duration::from_secs(15)).await.expect("take"), vec![true]);
    let ttl: i64 = redis.pttl(&one[0].0).await.expect("pttl");
    assert!((14_000..=15_000).contains(&ttl), "{ttl}");
    // A value without a deadline (an older version's, or set by hand) is held until it goes.
    let plain = format!("{}lease-test:plain", env.config.redis_key_prefix);
    let _: () = redis.set(&plain, "someone").await.expect("set");
    let claim = vec![(plain.clone(), "job-2".to_owned())];
    assert_eq!(leases::take(&mut redis, &claim, Duration::from_secs(15)).await.expect("take"), vec![false]);
    assert_eq!(leases::holder(&mut redis, &plain).await.expect("holder").as_deref(), Some("someone"));
    assert!(leases::hand_over(&mut redis, &one[0].0, "job-1", "job-3", Duration::from_secs(5)).await.expect("hand"));
    assert_eq!(leases::holder(&mut redis, &one[0].0).await.expect("holder").as_deref(), Some("job-3"));
    assert!(!leases::hand_over(&mut redis, &one[0].0, "job-1", "job-4", Duration::from_secs(5)).await.expect("hand"));
}
