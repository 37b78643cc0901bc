//! One bounded wait for a condition that has no event to await: polled every 20 ms, and a
//! failure that names what never happened.

use std::{future::Future, time::Duration};

/// Polls `check` until it answers `Some`, for at most `within`; panics naming `what` otherwise.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `eventually` for a yes-or-no check.
pub async fn until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(within, what, || {
        let answer = check();
        async move { answer.await.then_some(()) }
    })
    .await
}
