//! Every fault kind as a reqwest client with a 1 s timeout sees it; shutdown and drop.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{client, get, start, until, user_with_pages};
use crate::{Fault, FaultKind, GraphSim, Matcher};

async fn raw(sim: &GraphSim, token: &str) -> reqwest::Result<(u16, String, String)> {
    let q = [("access_token", token.to_owned()), ("appsecret_proof", sim.proof(token).unwrap())];
    let r = client().get(format!("{}/1000", sim.base_url())).query(&q).send().await?;
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Ok((status, ct, r.text().await?))
}

async fn setup() -> (GraphSim, String) {
    let sim = start().await;
    user_with_pages(&sim, "1", 2);
    let token = sim.page_token("1000", "1").unwrap();
    (sim, token)
}

#[tokio::test]
async fn json_error_faults() {
    let (sim, token) = setup().await;
    sim.inject(Fault::once(FaultKind::ServerError, Matcher::Any));
    let a = get(&sim, "/1000", &[], Some(&token)).await;
    assert_eq!((a.status, a.code(), a.message()), (500, Some(1), "An unknown error has occurred."));
    assert_eq!(a.body.pointer("/error/is_transient"), Some(&Value::Bool(true)));
    assert_eq!(a.body.pointer("/error/type").and_then(Value::as_str), Some("OAuthException"));

    sim.inject(Fault::once(FaultKind::ServiceUnavailable, Matcher::PathContains("/100".into())));
    let a = get(&sim, "/1000", &[], Some(&token)).await;
    assert_eq!((a.status, a.code()), (503, Some(2)));
    assert_eq!(get(&sim, "/1000", &[], Some(&token)).await.status, 200);

    // Matched by page: other pages are untouched; `times` runs out.
    sim.inject(Fault::times(FaultKind::ServerError, Matcher::Page("1001".into()), 2));
    let t1 = sim.page_token("1001", "1").unwrap();
    assert_eq!(get(&sim, "/1000", &[], Some(&token)).await.status, 200);
    assert_eq!(get(&sim, "/1001", &[], Some(&t1)).await.status, 500);
    assert_eq!(get(&sim, "/1001", &[], Some(&t1)).await.status, 500);
    assert_eq!(get(&sim, "/1001", &[], Some(&t1)).await.status, 200);

    let id = sim.inject(Fault::new(FaultKind::ServerError, Matcher::Any));
    assert_eq!(get(&sim, "/1000", &[], Some(&token)).await.status, 500);
    assert!(sim.remove_fault(id));
    sim.inject(Fault::new(FaultKind::ServerError, Matcher::Any));
    sim.clear_faults();
    assert_eq!(get(&sim, "/1000", &[], Some(&token)).await.status, 200);
}

#[tokio::test]
async fn html_not_json_and_huge() {
    let (sim, token) = setup().await;
    sim.inject(Fault::once(FaultKind::Html, Matcher::Any));
    let (status, ct, body) = raw(&sim, &token).await.unwrap();
    assert_eq!(status, 502);
    assert!(ct.starts_with("text/html"));
    assert!(serde_json::from_str::<Value>(&body).is_err());

    sim.inject(Fault::once(FaultKind::NotJson, Matcher::Any));
    let (status, _, body) = raw(&sim, &token).await.unwrap();
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).is_err());

    sim.inject(Fault::once(FaultKind::Huge(3_000_000), Matcher::Any));
    let (status, _, body) = raw(&sim, &token).await.unwrap();
    assert_eq!((status, body.len()), (200, 3_000_000));
    assert!(serde_json::from_str::<Value>(&body).is_ok());
}

#[tokio::test]
async fn hang_times_out_without_blocking_others() {
    let (sim, token) = setup().await;
    sim.inject(Fault::once(FaultKind::Hang, Matcher::Any));
    let started = Instant::now();
    let hung = {
        let (sim, token) = (sim.clone(), token.clone());
        tokio::spawn(async move { raw(&sim, &token).await })
    };
    // Logged on arrival, before it hangs.
    until("the hung request arrived", || async { sim.request_count() == 1 }).await;
    // Meanwhile another request is answered.
    assert_eq!(get(&sim, "/1000", &[], Some(&token)).await.status, 200);
    let err = hung.await.unwrap().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(sim.count_where(|r| r.status == 0), 1);
}

#[tokio::test]
async fn drop_breaks_the_response() {
    let (sim, token) = setup().await;
    sim.inject(Fault::once(FaultKind::Drop, Matcher::Any));
    let err = raw(&sim, &token).await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(raw(&sim, &token).await.unwrap().0, 200);
}

#[tokio::test]
async fn latency_fault_and_setting() {
    let (sim, token) = setup().await;
    sim.inject(Fault::once(FaultKind::Latency(Duration::from_millis(300)), Matcher::Any));
    let t = Instant::now();
    assert_eq!(get(&sim, "/1000", &[], Some(&token)).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // Latency holds no lock: five requests at 300 ms take about 300 ms, not 1.5 s.
    sim.set_latency(Duration::from_millis(300));
    let t = Instant::now();
    let answers = futures::future::join_all((0..5).map(|_| get(&sim, "/1000", &[], Some(&token)))).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert!(
        t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_millis(1200),
        "{:?}",
        t.elapsed()
    );
    sim.set_latency(Duration::ZERO);

    sim.inject(Fault::once(FaultKind::Latency(Duration::from_secs(3)), Matcher::Any));
    assert!(raw(&sim, &token).await.unwrap_err().is_timeout());
}

#[tokio::test]
async fn shutdown_ends_hanging_requests_and_last_drop_stops_the_server() {
    let (sim, token) = setup().await;
    sim.inject(Fault::once(FaultKind::Hang, Matcher::Any));
    let url = format!("{}/1000", sim.base_url());
    let slow = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let q = [("access_token", token.clone()), ("appsecret_proof", sim.proof(&token).unwrap())];
    let hung = tokio::spawn(slow.get(&url).query(&q).send());
    until("the hung request arrived", || async { sim.request_count() == 1 }).await;
    let t = Instant::now();
    sim.shutdown().await;
    let _ = hung.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(client().get(&url).send().await.is_err());

    let (sim, _) = setup().await;
    let url = format!("{}/1000", sim.base_url());
    let copy = sim.clone();
    drop(sim);
    assert!(client().get(&url).send().await.is_ok(), "a clone keeps it running");
    drop(copy);
    // The server stops on its own task once the last handle is gone.
    until("the server stopped", || async { client().get(&url).send().await.is_err() }).await;
}
