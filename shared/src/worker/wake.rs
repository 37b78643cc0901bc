//! Wakes the apalis fetch loop when a job is put at the head of the queue: a report or a person's
//! refresh runs as soon as a slot is free, not at the next poll (`POLL_INTERVAL`, 100 ms). The poll
//! stays, for jobs that become due by time and for a lost subscription.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use crate::{config::Config, queue};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// A stream of wake-ups, coalesced: many pushes between two fetches are one wake-up.
pub struct Wakes(mpsc::Receiver<()>);

impl futures::Stream for Wakes {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.poll_recv(cx)
    }
}

/// Subscribes to the queue's wake channel in a task of its own (re-subscribing after a lost
/// connection) until the returned stream is dropped.
pub fn listen(config: &Config) -> Wakes {
    let (tx, rx) = mpsc::channel(1);
    let config = config.clone();
    tokio::spawn(async move {
        let channel = queue::wake_channel(&config);
        let mut delays = crate::redis_ops::reconnect_backoff();
        while !tx.is_closed() {
            match subscribe(&config, &channel).await {
                Ok(mut pubsub) => {
                    delays = crate::redis_ops::reconnect_backoff();
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(_) => { let _ = tx.try_send(()); }
                                None => break,
                            },
                            () = tx.closed() => return,
                        }
                    }
                    debug!("wake subscription lost; subscribing again");
                }
                Err(e) => warn!(error = %e, "could not subscribe to the queue's wake channel; polling only"),
            }
            let delay = delays.next().unwrap_or(std::time::Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = tx.closed() => return,
            }
        }
    });
    Wakes(rx)
}

async fn subscribe(config: &Config, channel: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = queue::client(config)?.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
