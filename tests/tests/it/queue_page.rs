//! The queue page over HTTP (no browser): who may see it, the jobs by state with their payloads,
//! and its buttons (form token, role, audit) with what each does to Redis and Postgres.

use std::time::Duration;

use reqwest::{StatusCode, header};
use shared::{
    graph::{ErrorKind, GraphError},
    job::{JobOutcome, Reason, RefreshJob, RefreshJobV1},
    keys::RedisKeys,
    pending,
    queue::{self, JobReport, ReportError, ReportErrorKind},
};
use tests::TestEnv;

use crate::dashboard::{ADMIN, Dash, env_with_admin};

/// A refused post: the session cookie, the form token sent, extra headers.
type Refused<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);

const ECHOED: &str = "EAAGm0PX4ZCpsBAKZBqoP0ZCLVHOWLFHZBwqZAWZC9ZCwwBZBZCfakepagetoken";

/// The form token the page's buttons carry.
fn csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form token on the page") + 19;
    body[at..].split('"').next().expect("value").to_owned()
}

async fn dead_letter(env: &TestEnv, ch: i64, message: &str) -> i64 {
    let job = RefreshJob::new(ch, Reason::SendFailure);
    let error = GraphError {
        kind: ErrorKind::Transient,
        code: Some(2),
        subcode: None,
        message: message.to_owned(),
        http_status: Some(500),
        retry_after: None,
        app_level: false,
    };
    shared::store::record_dead_job(&env.db, &job, &error).await.expect("dead letter");
    sqlx::query_scalar("SELECT max(id) FROM fb_dead_jobs").fetch_one(&env.db).await.expect("id")
}

async fn post_form(
    dash: &Dash,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = dash.http.post(format!("{}{path}", dash.base)).header(header::COOKIE, cookie);
    for (name, value) in extra {
        r = r.header(*name, *value);
    }
    let form: Vec<(&str, &str)> = csrf.map(|c| vec![("csrf", c)]).unwrap_or_default();
    r.form(&form).send().await.expect("post")
}

async fn actions(env: &TestEnv) -> Vec<(String, String, Option<String>, String)> {
    sqlx::query_as("SELECT actor, action, target, outcome FROM fb_operator_actions ORDER BY id")
        .fetch_all(&env.db)
        .await
        .expect("history")
}

#[tokio::test]
async fn the_admin_sees_jobs_by_state_with_payloads_and_no_token() {
    let env = env_with_admin().await;
    let (_, account_token) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let (waiting_ch, page_token, user_token) = env.healthy_channel("qp-waiting").await;
    let (retry_ch, _, _) = env.healthy_channel("qp-retry").await;
    let (dead_ch, _, _) = env.healthy_channel("qp-dead").await;
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);

    // No worker runs: what is pushed stays where it is.
    let waiting = RefreshJob::new(waiting_ch, Reason::Manual);
    queue::enqueue(&mut env.storage(), waiting.clone(), None).await.expect("enqueue");
    let retry = RefreshJob::V1(RefreshJobV1 { attempt: 3, ..RefreshJob::new(retry_ch, Reason::Cron).v1().clone() });
    queue::enqueue(&mut env.storage(), retry.clone(), Some(Duration::from_secs(600))).await.expect("enqueue");
    let report = JobReport {
        job_id: retry.job_id(),
        channel_id: retry_ch,
        attempt: 2,
        outcome: JobOutcome::Retrying,
        settled: false,
        token_valid: None,
        authorization_error_count: None,
        next_attempt_at: None,
        error: Some(ReportError {
            kind: ReportErrorKind::Graph(ErrorKind::Transient),
            code: Some(2),
            subcode: None,
            // Reports carry messages scrubbed of the channel's tokens; one of Facebook's shape that
            // got past is masked on the page too.
            message: format!("Service temporarily unavailable; echoed {ECHOED}"),
        }),
    };
    queue::publish_report(&mut env.redis.clone(), &env.config, &report).await.expect("report");
    let dead = dead_letter(&env, dead_ch, "An unknown error occurred <script>").await;

    let (code, _) = dash.get("/dashboard/queue", None, None).await;
    assert_eq!(code, StatusCode::SEE_OTHER, "no session: to the login form");
    let account = dash.session(account_token.expose()).await;
    let (code, body) = dash.get("/dashboard/queue", Some(&account), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body.contains("only the administrator token"), "{body}");
    assert!(!body.contains(&waiting.job_id().to_string()));

    let admin = dash.session(ADMIN).await;
    let (code, body) = dash.get("/dashboard/queue", Some(&admin), None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let section = |id: &str| {
        let start = body.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("section {id}: {body}"));
        let rest = &body[start..];
        &rest[..rest[1..].find("<section").map_or(rest.len(), |e| e + 1)]
    };
    let w = section("waiting");
    assert!(w.contains(&waiting.job_id().to_string()) && w.contains("refresh.v1") && w.contains("manual"), "{w}");
    assert!(w.contains(&format!("&quot;channel_id&quot;: {waiting_ch}")), "payload shown: {w}");
    let r = section("retrying");
    assert!(r.contains(&retry.job_id().to_string()) && r.contains("<td>3</td>"), "attempt 3: {r}");
    assert!(r.contains("Service temporarily unavailable") && r.contains("(+"), "last error, next attempt: {r}");
    assert!(!section("scheduled").contains(&retry.job_id().to_string()), "a retry is not a first run");
    let d = section("dead");
    assert!(d.contains(&format!("data-dead-letter=\"{dead}\"")) && d.contains("&lt;script&gt;"), "{d}");
    assert!(d.contains(&format!("/dashboard/queue/dead/{dead}/retry")), "{d}");
    assert!(body.contains("data-state=\"dead\"><span class=\"n\">1</span>"), "count of dead letters");
    for secret in [page_token.as_str(), user_token.as_str(), ADMIN, account_token.expose(), ECHOED] {
        assert!(!body.contains(secret), "a token on the page");
    }
    // The inbox dashboard links here, and counts the dead letter.
    let (_, home) = dash.get("/", Some(&admin), None).await;
    assert!(home.contains("href=\"/dashboard/queue\""), "{home}");
    assert!(home.contains("data-queue=\"dead\" class=\"bad\">1<"), "{home}");
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn buttons_need_the_form_token_and_the_admin_and_are_audited() {
    let env = env_with_admin().await;
    let (_, account_token) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let keys = RedisKeys::of(&env.config);
    let admin = dash.session(ADMIN).await;
    let (_, body) = dash.get("/dashboard/queue", Some(&admin), None).await;
    let token = csrf(&body);
    assert!(body.contains("/dashboard/queue/schedule/pause"), "{body}");

    // Refused: no form token, another session's, from another site, an account's session.
    let account = dash.session(account_token.expose()).await;
    let (_, account_body) = dash.get("/", Some(&account), None).await;
    assert!(!account_body.contains("/dashboard/queue"), "no queue link for an account");
    let other = dash.session(ADMIN).await;
    let (_, other_body) = dash.get("/dashboard/queue", Some(&other), None).await;
    let cases: [Refused; 4] = [
        (&admin, None, &[]),
        (&admin, Some(&csrf(&other_body)), &[]),
        (&admin, Some(&token), &[("sec-fetch-site", "cross-site")]),
        (&account, Some(&token), &[]),
    ];
    for (cookie, sent, extra) in cases {
        let resp = post_form(&dash, "/dashboard/queue/schedule/pause", cookie, sent, extra).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{sent:?} {extra:?}");
    }
    assert!(shared::schedule::paused(&mut env.redis.clone(), &keys).await.expect("read").is_none());
    assert!(actions(&env).await.is_empty(), "refused requests do nothing");

    // Pause, shown on the page, then resume.
    let resp = post_form(&dash, "/dashboard/queue/schedule/pause", &admin, Some(&token), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard/queue?done=paused");
    let paused = shared::schedule::paused(&mut env.redis.clone(), &keys).await.expect("read").expect("paused");
    assert!(paused.by.starts_with("admin, session "), "{paused:?}");
    let (_, body) = dash.get("/dashboard/queue?done=paused", Some(&admin), None).await;
    assert!(body.contains("data-paused=\"true\"") && body.contains("/dashboard/queue/schedule/resume"));
    assert!(body.contains("The schedule is paused for every replica."), "{body}");
    let resp = post_form(&dash, "/dashboard/queue/schedule/resume", &admin, Some(&token), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(shared::schedule::paused(&mut env.redis.clone(), &keys).await.expect("read").is_none());

    // Dead letters: retry one, discard one, then all of the rest at once.
    let mut chans = Vec::new();
    for i in 0..4 {
        chans.push(env.healthy_channel(&format!("qp-d{i}")).await.0);
    }
    let mut dead = Vec::new();
    for ch in &chans {
        dead.push(dead_letter(&env, *ch, "Please retry your request later.").await);
    }
    let resp = post_form(&dash, &format!("/dashboard/queue/dead/{}/retry", dead[0]), &admin, Some(&token), &[]).await;
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard/queue?done=retried&n=1&jobs=1");
    assert!(pending::owner(&mut env.redis.clone(), &keys, chans[0]).await.expect("owner").is_some(), "a new job");
    let resp = post_form(&dash, &format!("/dashboard/queue/dead/{}/discard", dead[1]), &admin, Some(&token), &[]).await;
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard/queue?done=discarded&n=1&jobs=0");
    assert!(pending::owner(&mut env.redis.clone(), &keys, chans[1]).await.expect("owner").is_none(), "no job");
    let resp = post_form(&dash, &format!("/dashboard/queue/dead/{}/discard", dead[1]), &admin, Some(&token), &[]).await;
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard/queue?done=nothing", "closed once");
    let resp = post_form(&dash, "/dashboard/queue/dead/x1/retry", &admin, Some(&token), &[]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = post_form(&dash, "/dashboard/queue/dead/retry-all", &admin, Some(&token), &[]).await;
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard/queue?done=retried&n=2&jobs=2");
    assert_eq!(shared::store::open_dead_count(&env.db).await.expect("count"), 0);
    let closed: Vec<(i64, bool, bool)> =
        sqlx::query_as("SELECT id, redriven_at IS NOT NULL, discarded_at IS NOT NULL FROM fb_dead_jobs ORDER BY id")
            .fetch_all(&env.db)
            .await
            .expect("rows");
    assert_eq!(
        closed,
        vec![(dead[0], true, false), (dead[1], false, true), (dead[2], true, false), (dead[3], true, false)]
    );

    // Run cycle now: a recorded cycle that enqueues every channel not already queued.
    let resp = post_form(&dash, "/dashboard/queue/cycle", &admin, Some(&token), &[]).await;
    assert_eq!(resp.headers()[header::LOCATION], "/dashboard/queue?done=cycle");
    let (enqueued, skipped): (i32, i32) = tests::wait::eventually(Duration::from_secs(30), "the cycle enqueued", || async {
        sqlx::query_as::<_, (Option<i32>, Option<i32>)>(
            "SELECT enqueued, skipped FROM fb_cycles WHERE trigger = 'dashboard' AND started_by LIKE 'admin, session %'",
        )
        .fetch_optional(&env.db)
        .await
        .expect("cycle")
        .and_then(|(e, s)| Some((e?, s?)))
    })
    .await;
    assert_eq!((enqueued, skipped), (1, 3), "3 channels already had their re-driven job");
    let (_, body) = dash.get("/dashboard/queue", Some(&admin), None).await;
    assert!(body.contains("data-cycle=\"") && body.contains("data-enqueued=\"1\""), "{body}");

    let history = actions(&env).await;
    let names: Vec<&str> = history.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(
        names,
        [
            "schedule.pause",
            "schedule.resume",
            "dead_letter.retry",
            "dead_letter.discard",
            "dead_letter.discard",
            "dead_letter.retry_all",
            "cycle.run"
        ]
    );
    assert!(history.iter().all(|a| a.0.starts_with("admin, session ")), "{history:?}");
    assert_eq!(history[2].2.as_deref(), Some(format!("dead letter {}", dead[0]).as_str()));
    assert_eq!(history[4].3, "nothing open to discard");
    assert_eq!(history[5].3, "re-enqueued 2 channels from 2 dead jobs");
    assert!(history[6].3.starts_with("cycle ") && history[6].3.ends_with(" started"), "{history:?}");
    let (_, body) = dash.get("/dashboard/queue", Some(&admin), None).await;
    assert!(body.contains("data-action=\"cycle.run\""), "history on the page");
    server.shutdown().await.expect("stop");
}
