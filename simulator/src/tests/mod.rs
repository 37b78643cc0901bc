//! Tests against a started simulator, through reqwest as a real client would call it.

#![allow(clippy::unwrap_used)]

mod batch;
mod faults;
mod guards;
mod subscriptions;
mod world;

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{GraphSim, SimOptions};

pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> Option<i64> {
        self.body.pointer("/error/code").and_then(Value::as_i64)
    }

    pub fn subcode(&self) -> Option<i64> {
        self.body.pointer("/error/error_subcode").and_then(Value::as_i64)
    }

    pub fn message(&self) -> &str {
        self.body.pointer("/error/message").and_then(Value::as_str).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<Value> {
        serde_json::from_slice(self.headers.get(name)?.as_bytes()).ok()
    }
}

/// Polls `check` every 10 ms until it holds, for at most 5 s (then the test fails naming `what`).
pub(super) async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) async fn start() -> GraphSim {
    GraphSim::start(SimOptions::default()).await.unwrap()
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap()
}

/// `GET base_url + path` with `params`, the token and its proof.
pub(super) async fn get(sim: &GraphSim, path: &str, params: &[(&str, &str)], token: Option<&str>) -> Answer {
    let mut q: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    if let Some(t) = token {
        q.push(("access_token".into(), t.into()));
        q.push(("appsecret_proof".into(), sim.proof(t).unwrap()));
    }
    send(client().get(format!("{}{path}", sim.base_url())).query(&q)).await
}

pub(super) async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    Answer { status, headers, body }
}

/// A user admin of `n` pages `1000..1000+n` (granted in that order); returns the user token.
pub(super) fn user_with_pages(sim: &GraphSim, user: &str, n: usize) -> String {
    let token = sim.add_user(user);
    for i in 0..n {
        let id = (1000 + i).to_string();
        sim.add_page(&id, &format!("Page {id}"));
        sim.grant(user, &id);
    }
    token
}
