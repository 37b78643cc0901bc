//! The dashboard over HTTP (no browser): login and sessions, counts, the reconnection banner and its
//! cause, account scoping, languages, escaping, and "Try auto refresh" with a worker running.

use std::time::Duration;

use redis::AsyncCommands;
use reqwest::{Client, StatusCode, header, redirect::Policy};
use serde_json::Value;
use shared::{
    job::{Reason, RefreshJob},
    keys::RedisKeys,
    pending,
    secret::Secret,
};
use tests::TestEnv;

pub const ADMIN: &str = "dashboard-admin-token-for-tests";
pub const PASSWORD_CHANGED: &str = "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.";

pub async fn env_with_admin() -> TestEnv {
    TestEnv::with(|c| c.admin_api_token = Some(Secret::new(ADMIN))).await
}

/// Channels whose page and user tokens died with `190/subcode`, run by the (already running) worker
/// until flagged and no job owns them any more. Returns (channel id, inbox id, user token) each.
pub async fn flagged_channels(env: &TestEnv, specs: &[(&str, i64, &str)]) -> Vec<(i64, i64, String)> {
    let mut out = Vec::new();
    for (page, subcode, message) in specs {
        let (ch, user, user_token) = env.healthy_channel(page).await;
        env.sim.kill_page_token(page, &user, 190, Some(*subcode), message);
        env.sim.kill_user_token(&user_token, 190, Some(*subcode), message);
        let job = RefreshJob::new(ch, Reason::Manual);
        pending::enqueue_or_join(&mut env.storage(), &mut env.redis.clone(), &env.config, job, true)
            .await
            .expect("enqueue");
        out.push((ch, env.inbox_of(ch).await, user_token));
    }
    let keys = RedisKeys::of(&env.config);
    for (ch, _, _) in &out {
        tests::wait::until(Duration::from_secs(60), &format!("channel {ch} flagged (worker running?)"), || async {
            let flagged = env.flags(*ch).await.reauthorization_required;
            flagged && pending::owner(&mut env.redis.clone(), &keys, *ch).await.expect("owner").is_none()
        })
        .await;
    }
    out
}

/// The page is granted to a new user whose token the channel now holds: a refresh can succeed.
/// Returns that user token.
pub async fn make_refreshable(env: &TestEnv, ch: i64, page: &str) -> String {
    let user = format!("new-admin-of-{page}");
    let token = env.sim.add_user(&user);
    env.sim.grant(&user, page);
    sqlx::query("UPDATE channel_facebook_pages SET user_access_token = $1, updated_at = now() WHERE id = $2")
        .bind(&token)
        .bind(i32::try_from(ch).expect("id"))
        .execute(&env.db)
        .await
        .expect("update user token");
    token
}

pub async fn rename_inbox(env: &TestEnv, inbox: i64, name: &str) {
    sqlx::query("UPDATE inboxes SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(i32::try_from(inbox).expect("id"))
        .execute(&env.db)
        .await
        .expect("rename");
}

/// An HTTP client that keeps redirects and cookies visible.
pub struct Dash {
    pub http: Client,
    pub base: String,
}

impl Dash {
    pub fn new(base: &str) -> Self {
        Self { http: Client::builder().redirect(Policy::none()).build().expect("client"), base: base.to_owned() }
    }

    pub async fn login(&self, token: &str, query: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/login{query}", self.base))
            .form(&[("api_access_token", token)])
            .send()
            .await
            .expect("login")
    }

    /// Signs in; returns the `Cookie` header value of the session.
    pub async fn session(&self, token: &str) -> String {
        let resp = self.login(token, "").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let set = resp.headers().get(header::SET_COOKIE).expect("set-cookie").to_str().expect("ascii").to_owned();
        set.split(';').next().expect("pair").to_owned()
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>, accept_language: Option<&str>) -> (StatusCode, String) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        if let Some(l) = accept_language {
            r = r.header(header::ACCEPT_LANGUAGE, l);
        }
        let resp = r.send().await.expect("get");
        (resp.status(), resp.text().await.expect("body"))
    }

    /// A POST without a body, with these headers.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.http.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        r.send().await.expect("post")
    }

    /// "Try auto refresh", as the inline script (`json`) or a plain form would send it.
    pub async fn refresh(&self, inbox: i64, cookie: Option<&str>, json: bool) -> reqwest::Response {
        let mut headers = vec![("cookie", cookie.unwrap_or_default())];
        if json {
            headers.push(("accept", "application/json"));
        }
        self.post(&format!("/dashboard/inboxes/{inbox}/refresh"), &headers).await
    }
}

/// The number shown on the count link of `status` (`all`, `attention`, `healthy`, ...).
pub fn count(body: &str, status: &str) -> Option<usize> {
    let marker = format!("data-status=\"{status}\"><span class=\"n\">");
    let at = body.find(&marker)? + marker.len();
    body[at..].split('<').next()?.parse().ok()
}

/// The `<tbody>` of one inbox.
pub fn block(body: &str, inbox: i64) -> Option<&str> {
    let start = body.find(&format!("<tbody class=\"inbox\" id=\"inbox-{inbox}\""))?;
    let len = body[start..].find("</tbody>")?;
    Some(&body[start..start + len])
}

/// The grouped "Reconnection required" banners, in order.
pub fn group_banners(body: &str) -> Vec<&str> {
    body.match_indices("<div class=\"banner group\"")
        .map(|(at, _)| {
            let len = body[at..].find("</ul>").map_or(body.len() - at, |l| l + 5);
            &body[at..at + len]
        })
        .collect()
}

fn assert_no_secret(body: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!s.is_empty() && !body.contains(s.as_str()), "a token appears in a page: {s}");
    }
}

#[tokio::test]
async fn login_form_bad_token_and_session_cookie() {
    let env = env_with_admin().await;
    let (_, account_token) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);

    let (code, body) = dash.get("/", None, None).await;
    assert_eq!(code, 200);
    assert!(body.contains("name=\"api_access_token\"") && body.contains("action=\"/login\""), "{body}");
    assert!(!body.contains("<nav class=\"counts\">"), "no dashboard without a session");

    for bad in ["wrong-token", "", "fbtr_0000"] {
        let resp = dash.login(bad, "").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(resp.headers().get(header::SET_COOKIE).is_none());
        let body = resp.text().await.expect("body");
        assert!(body.contains("name=\"api_access_token\"") && body.contains("That token is not valid"));
        if !bad.is_empty() {
            assert!(!body.contains(bad), "the typed token is echoed");
        }
    }
    let resp = dash.login("wrong", "?lang=vi").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.expect("body").contains("Token không hợp lệ"));

    let resp = dash.login(ADMIN, "").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers().get(header::LOCATION).expect("location"), "/");
    let set = resp.headers().get(header::SET_COOKIE).expect("set-cookie").to_str().expect("ascii").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split(';').any(|a| a.trim() == attribute), "{attribute} missing: {set}");
    }
    let pair = set.split(';').next().expect("pair").to_owned();
    let value = pair.strip_prefix("fbtr_session=").expect("cookie name");
    assert!(value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()), "{value}");
    let key = format!("{}fb_token_refresh:session:{}", env.config.redis_key_prefix, shared::store::token_hash(value));
    let ttl: i64 = env.redis.clone().ttl(&key).await.expect("ttl");
    assert!(ttl > 11 * 3600 && ttl <= 12 * 3600, "session TTL {ttl}");
    let stored: String = env.redis.clone().get(&key).await.expect("session");
    assert!(!stored.contains(ADMIN));

    let (code, body) = dash.get("/", Some(&pair), None).await;
    assert_eq!(code, 200);
    assert!(body.contains("<nav class=\"counts\">") && body.contains("Administrator"), "{body}");
    assert_no_secret(&body, &[ADMIN.into(), account_token.expose().into(), value.into()]);

    // Sign out: the session is gone even if the cookie is replayed.
    let resp = dash.post("/logout", &[("cookie", &pair)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers().get(header::SET_COOKIE).expect("clear").to_str().expect("ascii").contains("Max-Age=0"));
    let exists: bool = env.redis.clone().exists(&key).await.expect("exists");
    assert!(!exists);
    let (_, body) = dash.get("/", Some(&pair), None).await;
    assert!(body.contains("name=\"api_access_token\""));

    // An account token's session ends when the token is revoked.
    let cookie = dash.session(account_token.expose()).await;
    let (_, body) = dash.get("/", Some(&cookie), None).await;
    assert!(body.contains("Account 1"), "{body}");
    shared::store::revoke_api_token(&env.db, account_token.expose()).await.expect("revoke");
    let (_, body) = dash.get("/", Some(&cookie), None).await;
    assert!(body.contains("name=\"api_access_token\"") && !body.contains("Account 1"));

    // A login posted from another site is refused.
    let resp = dash
        .http
        .post(format!("{}/login", server.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("api_access_token", ADMIN)])
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn counts_banner_scoping_languages_and_escaping() {
    let env = env_with_admin().await;
    let worker = env.spawn_worker();
    let (healthy, _, healthy_user_token) = env.healthy_channel("81001").await;
    let code =
        producer::refresh_channel::refresh_channel(&env.config, &healthy.to_string(), Duration::from_secs(20), false)
            .await;
    assert_eq!(code.0, 0, "{}", code.1);
    let healthy_inbox = env.inbox_of(healthy).await;
    let flagged = flagged_channels(&env, &[("81002", 460, PASSWORD_CHANGED)]).await;
    let (flagged_ch, flagged_inbox, flagged_user_token) = flagged[0].clone();
    let unchecked = env.insert_channel(1, "81003", "page-token-81003", "user-token-81003").await;
    let unchecked_inbox = env.inbox_of(unchecked).await;
    rename_inbox(&env, unchecked_inbox, "<script>alert('x')</script> & \"Co\"").await;
    let other = env.insert_channel(2, "81004", "page-token-81004", "user-token-81004").await;
    let other_inbox = env.inbox_of(other).await;
    rename_inbox(&env, other_inbox, "Second account inbox").await;
    let (_, account1) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let (_, account2) = shared::store::create_api_token(&env.db, 2).await.expect("token");
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let mut secrets = vec![
        ADMIN.to_owned(),
        account1.expose().to_owned(),
        account2.expose().to_owned(),
        healthy_user_token,
        flagged_user_token,
        "page-token-81003".into(),
        "user-token-81003".into(),
        "page-token-81004".into(),
    ];
    for ch in [healthy, flagged_ch] {
        secrets.push(env.stored_page_token(ch).await);
    }

    let admin = dash.session(ADMIN).await;
    let (code, body) = dash.get("/", Some(&admin), None).await;
    assert_eq!(code, 200);
    assert_no_secret(&body, &secrets);
    assert_eq!(count(&body, "all"), Some(4), "{body}");
    assert_eq!(count(&body, "reauthorization_required"), Some(1));
    assert_eq!(count(&body, "healthy"), Some(1));
    assert_eq!(count(&body, "unknown"), Some(2));
    assert_eq!(count(&body, "attention"), Some(1));
    assert!(body.contains("href=\"/?status=reauthorization_required\""));
    for inbox in [healthy_inbox, flagged_inbox, unchecked_inbox, other_inbox] {
        assert!(block(&body, inbox).is_some(), "admin sees inbox {inbox}");
    }
    // The flagged inbox comes first, with its warning icon and banner.
    let flagged_block = block(&body, flagged_inbox).expect("flagged");
    assert!(body.find(&format!("id=\"inbox-{flagged_inbox}\"")) < body.find(&format!("id=\"inbox-{healthy_inbox}\"")));
    for want in ["class=\"warn\"", "81002", "Reconnection required", "changed their password"] {
        assert!(flagged_block.contains(want), "{want}: {flagged_block}");
    }
    // What to do and Facebook's words are said once, in the user's group above the table.
    let groups = group_banners(&body);
    assert_eq!(groups.len(), 1, "{body}");
    assert!(groups[0].contains("(190/460)") && groups[0].contains("new password"), "{}", groups[0]);
    assert!(!flagged_block.contains("(190/460)"));
    let auto = flagged_block.find("Try auto refresh").expect("auto refresh");
    let manual = flagged_block.find("Reconnect manually").expect("reconnect manually");
    assert!(auto < manual, "actions in order");
    assert!(flagged_block.contains(&format!("action=\"/dashboard/inboxes/{flagged_inbox}/refresh\"")));
    assert!(flagged_block.contains(&format!("href=\"/app/accounts/1/settings/inboxes/{flagged_inbox}\"")));
    let healthy_block = block(&body, healthy_inbox).expect("healthy");
    assert!(!healthy_block.contains("class=\"warn\"") && !healthy_block.contains("Reconnection required"));
    assert!(healthy_block.contains("s-healthy") && healthy_block.contains("<time"));
    // Untrusted names are escaped.
    assert!(!body.contains("<script>alert"));
    assert!(body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;"));
    // Queue panel and chart.
    for q in ["pending", "scheduled", "running", "deferred", "dead"] {
        assert!(body.contains(&format!("data-queue=\"{q}\"")), "queue {q}");
    }
    assert!(body.contains("<svg class=\"chart\"") && body.contains("class=\"legend\""));
    assert!(body.contains("<rect class=\"bar healthy\""), "the checks of this test are in the chart");

    // Filters.
    let (_, only) = dash.get("/?status=reauthorization_required", Some(&admin), None).await;
    assert!(block(&only, flagged_inbox).is_some() && block(&only, healthy_inbox).is_none());
    assert!(block(&only, unchecked_inbox).is_none());
    let (_, only) = dash.get("/?status=healthy", Some(&admin), None).await;
    assert!(block(&only, healthy_inbox).is_some() && block(&only, flagged_inbox).is_none());

    // Account tokens see their own account only.
    let s1 = dash.session(account1.expose()).await;
    let (_, body) = dash.get("/", Some(&s1), None).await;
    assert_eq!(count(&body, "all"), Some(3));
    assert!(block(&body, flagged_inbox).is_some() && block(&body, other_inbox).is_none());
    assert!(!body.contains("Second account inbox"));
    assert_no_secret(&body, &secrets);
    let s2 = dash.session(account2.expose()).await;
    let (_, body) = dash.get("/", Some(&s2), None).await;
    assert_eq!(count(&body, "all"), Some(1));
    assert!(block(&body, other_inbox).is_some() && block(&body, flagged_inbox).is_none());
    let resp = dash.refresh(flagged_inbox, Some(&s2), true).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "another account's inbox");

    // Vietnamese: ?lang=vi wins, else Accept-Language.
    for (path, lang) in [("/?lang=vi", None), ("/", Some("vi-VN,vi;q=0.9,en;q=0.8")), ("/?lang=vi", Some("en-US"))] {
        let (_, body) = dash.get(path, Some(&admin), lang).await;
        assert!(body.contains("<html lang=\"vi\">"), "{path} {lang:?}");
        let b = block(&body, flagged_inbox).expect("flagged");
        assert!(
            b.contains("Cần kết nối lại") && b.contains("Thử refresh tự động") && b.contains("Kết nối lại thủ công")
        );
        assert!(b.contains("đổi mật khẩu"), "the cause in Vietnamese");
        assert!(b.find("Thử refresh tự động") < b.find("Kết nối lại thủ công"));
    }
    let (_, body) = dash.get("/?lang=vi", Some(&admin), None).await;
    assert!(body.contains(&format!("action=\"/dashboard/inboxes/{flagged_inbox}/refresh?lang=vi\"")));
    let (_, body) = dash.get("/?lang=en", Some(&admin), Some("vi")).await;
    assert!(body.contains("Reconnection required") && !body.contains("Cần kết nối lại"));
    let (_, body) = dash.get("/", Some(&admin), Some("en-US,en;q=0.9,vi;q=0.5")).await;
    assert!(!body.contains("Cần kết nối lại"));
    server.shutdown().await.expect("stop");
    worker.stop().await.expect("worker");
}

#[tokio::test]
async fn try_auto_refresh_turns_a_refreshable_inbox_healthy() {
    let env = env_with_admin().await;
    let worker = env.spawn_worker();
    let flagged = flagged_channels(
        &env,
        &[("82001", 460, PASSWORD_CHANGED), ("82002", 463, "Session has expired"), ("82003", 458, "app removed")],
    )
    .await;
    let [(js_ch, js_inbox, _), (form_ch, form_inbox, _), (_, dead_inbox, _)] = &flagged[..] else { panic!() };
    let new_tokens = [make_refreshable(&env, *js_ch, "82001").await, make_refreshable(&env, *form_ch, "82002").await];
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);

    // Without a session: 401 for the script, the login form for a plain post.
    let resp = dash.refresh(*js_inbox, None, true).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = dash.refresh(*js_inbox, None, false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers().get(header::LOCATION).expect("location"), "/");
    assert!(env.flags(*js_ch).await.reauthorization_required, "nothing ran");

    let admin = dash.session(ADMIN).await;
    let cross_site = [("cookie", admin.as_str()), ("sec-fetch-site", "cross-site")];
    let resp = dash.post(&format!("/dashboard/inboxes/{js_inbox}/refresh"), &cross_site).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(dash.refresh(999_999, Some(&admin), true).await.status(), StatusCode::NOT_FOUND);

    // The script's request: JSON with the inbox's new rows.
    let resp = dash.refresh(*js_inbox, Some(&admin), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["result"], "refreshed", "{body}");
    assert_eq!(body["reauthorization_required"], false);
    assert_eq!(body["status"], "refreshed");
    let html = body["html"].as_str().expect("html");
    assert!(html.starts_with(&format!("<tbody class=\"inbox\" id=\"inbox-{js_inbox}\"")), "{html}");
    assert!(html.contains("a new token was saved") && !html.contains("Reconnection required"));
    let flags = env.flags(*js_ch).await;
    assert!(!flags.reauthorization_required && flags.authorization_error_count == 0);
    assert!(env.sim.is_token_valid_for_page("82001", &env.stored_page_token(*js_ch).await));

    // A plain form post: redirected back to the dashboard, where the outcome shows.
    let resp = dash.refresh(*form_inbox, Some(&admin), false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers().get(header::LOCATION).expect("location").to_str().expect("ascii").to_owned();
    assert_eq!(location, format!("/?done={form_inbox}:refreshed#inbox-{form_inbox}"));
    let (_, page) = dash.get(location.split('#').next().expect("path"), Some(&admin), None).await;
    let b = block(&page, *form_inbox).expect("block");
    assert!(b.contains("s-refreshed") && b.contains("a new token was saved") && !b.contains("Reconnection required"));
    assert!(!env.flags(*form_ch).await.reauthorization_required);

    // Still dead: the banner stays, with the outcome in it.
    let resp = dash.refresh(*dead_inbox, Some(&admin), true).await;
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["result"], "still_failing", "{body}");
    let html = body["html"].as_str().expect("html");
    assert!(html.contains("Reconnection required") && html.contains("Automatic refresh did not work"));
    assert!(html.contains("removed the app"), "190/458: {html}");

    let (_, page) = dash.get("/", Some(&admin), None).await;
    assert_eq!(count(&page, "reauthorization_required"), Some(1));
    assert_eq!(count(&page, "refreshed"), Some(2));
    let mut secrets = vec![ADMIN.to_owned()];
    secrets.extend(new_tokens);
    for (ch, _, user_token) in &flagged {
        secrets.push(env.stored_page_token(*ch).await);
        secrets.push(user_token.clone());
    }
    assert_no_secret(&page, &secrets);
    assert_no_secret(&body.to_string(), &secrets);
    server.shutdown().await.expect("stop");
    worker.stop().await.expect("worker");
}

/// The legend's total of healthy checks in the chart.
fn healthy_total(body: &str) -> Option<i64> {
    let rest = &body[body.find("class=\"o-healthy\"></i>")?..];
    rest[rest.find('(')? + 1..rest.find(')')?].parse().ok()
}

#[tokio::test]
async fn account_pages_show_only_their_own_activity() {
    let env = env_with_admin().await;
    let mine = env.insert_channel(1, "83001", "page-token-83001", "user-token-83001").await;
    let theirs = env.insert_channel(2, "83002", "page-token-83002", "user-token-83002").await;
    for (ch, n) in [(mine, 2), (theirs, 7)] {
        sqlx::query(
            "INSERT INTO fb_token_events (channel_id, job_id, reason, step, outcome)
             SELECT $1, gen_random_uuid(), 'cron', 'validate', 'ok' FROM generate_series(1, $2)",
        )
        .bind(i32::try_from(ch).expect("id"))
        .bind(n)
        .execute(&env.db)
        .await
        .expect("events");
    }
    let mut storage = env.storage();
    for _ in 0..5 {
        let later = Some(Duration::from_secs(3_600));
        shared::queue::enqueue(&mut storage, RefreshJob::new(theirs, Reason::Cron), later).await.expect("enqueue");
    }
    let (_, account1) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let (_, account2) = shared::store::create_api_token(&env.db, 2).await.expect("token");
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);

    let (_, admin) = dash.get("/", Some(&dash.session(ADMIN).await), None).await;
    assert_eq!(healthy_total(&admin), Some(9), "the admin sees every account's checks");
    assert!(admin.contains("<dd data-queue=\"scheduled\">5</dd>"), "the admin sees the queue");
    for (token, own) in [(account1.expose(), 2), (account2.expose(), 7)] {
        let (code, body) = dash.get("/", Some(&dash.session(token).await), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(healthy_total(&body), Some(own), "only the account's own checks are charted");
        assert!(!body.contains("data-queue"), "no queue figures for an account session");
        assert!(body.contains("<svg class=\"chart\""));
    }
    server.shutdown().await.expect("stop");
}

// ---- The dashboard at scale (issue 14): search, SQL paging, grouped banners, account aggregates.

/// A Facebook channel and its inbox named `name`; returns (channel id, inbox id).
async fn named_inbox(env: &TestEnv, account: i32, page: &str, user_token: &str, name: &str) -> (i64, i64) {
    let ch = env.insert_channel(account, page, &format!("page-token-{page}"), user_token).await;
    let inbox = env.inbox_of(ch).await;
    rename_inbox(env, inbox, name).await;
    (ch, inbox)
}

/// The state a settled job leaves: `healthy`, or `reauthorization_required` with Graph's 190 and
/// `subcode` and the Redis flag set, as the pipeline writes both in one settlement.
async fn settle_as(env: &TestEnv, ch: i64, status: &str, subcode: i32) {
    let flagged = status == "reauthorization_required";
    sqlx::query(
        "INSERT INTO fb_token_states (channel_id, status, token_valid, consecutive_failures, last_checked_at,
           last_error_kind, last_error_code, last_error_subcode, last_error_message)
         VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8)",
    )
    .bind(i32::try_from(ch).expect("id"))
    .bind(status)
    .bind(!flagged)
    .bind(if flagged { 2 } else { 0 })
    .bind(flagged.then_some("auth"))
    .bind(flagged.then_some(190))
    .bind(flagged.then_some(subcode))
    .bind(flagged.then_some(format!("Error validating access token (subcode {subcode})")))
    .execute(&env.db)
    .await
    .expect("state");
    if flagged {
        let _: () = env.redis.clone().set(env.flag_keys().reauthorization_required(ch), "true").await.expect("flag");
    }
}

/// Records the channel's user token digest, as loading it in a job does.
async fn record_digest(env: &TestEnv, ch: i64) {
    sqlx::query(
        "INSERT INTO fb_channel_user_tokens (channel_id, user_token_sha256, channel_updated_at)
         SELECT id, sha256(convert_to(user_access_token, 'UTF8')), updated_at FROM channel_facebook_pages WHERE id = $1",
    )
    .bind(i32::try_from(ch).expect("id"))
    .execute(&env.db)
    .await
    .expect("digest");
}

/// `/?…` with these query pairs, encoded.
fn path(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("url");
    url.query_pairs_mut().extend_pairs(pairs);
    format!("/?{}", url.query().unwrap_or_default())
}

/// The inbox ids of a page's table rows, in order.
fn shown(body: &str) -> Vec<i64> {
    body.match_indices("<tbody class=\"inbox\" id=\"inbox-")
        .filter_map(|(at, m)| body[at + m.len()..].split('"').next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn search_by_name_page_id_and_inbox_id() {
    let env = env_with_admin().await;
    let (_, alpha) = named_inbox(&env, 1, "84001", "u-84001", "Alpha Shop").await;
    let (_, beta) = named_inbox(&env, 1, "84002", "u-84002", "Beta Store").await;
    let (_, gamma) = named_inbox(&env, 1, "84003", "u-84003", "Gamma 100% off").await;
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let admin = dash.session(ADMIN).await;

    let (code, body) = dash.get(&path(&[("q", "  ALPHA ")]), Some(&admin), None).await;
    assert_eq!(code, 200);
    assert_eq!(shown(&body), vec![alpha], "by a part of the name, any case");
    assert_eq!(count(&body, "all"), Some(1), "the counts are the search's");
    assert!(body.contains("name=\"q\" value=\"ALPHA\""), "the box keeps the search: {body}");
    let (_, body) = dash.get(&path(&[("q", "84002")]), Some(&admin), None).await;
    assert_eq!(shown(&body), vec![beta], "by page id");
    for q in [gamma.to_string(), format!("#{gamma}")] {
        let (_, body) = dash.get(&path(&[("q", &q)]), Some(&admin), None).await;
        assert_eq!(shown(&body), vec![gamma], "by inbox id {q}");
    }
    // LIKE's metacharacters are text: `%` finds the one name with a percent sign, `_` none.
    let (_, body) = dash.get(&path(&[("q", "%")]), Some(&admin), None).await;
    assert_eq!(shown(&body), vec![gamma]);
    let (_, body) = dash.get(&path(&[("q", "_")]), Some(&admin), None).await;
    assert!(shown(&body).is_empty());

    let (code, body) = dash.get(&path(&[("q", "no-such-inbox")]), Some(&admin), None).await;
    assert_eq!(code, 200);
    assert!(shown(&body).is_empty() && body.contains("No Facebook inbox matches “no-such-inbox”."), "{body}");
    assert_eq!(count(&body, "all"), Some(0));

    let evil = "x' OR '1'='1'; DROP TABLE inboxes; -- <script>alert(1)</script> \" & \\";
    let (code, body) = dash.get(&path(&[("q", evil)]), Some(&admin), None).await;
    assert_eq!(code, 200);
    assert!(shown(&body).is_empty(), "matches nothing");
    assert!(!body.contains("<script>alert(1)"), "escaped");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot; &amp; \\"), "{body}");
    let (_, body) = dash.get("/", Some(&admin), None).await;
    assert_eq!(count(&body, "all"), Some(3), "the tables are all there");
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn sql_pagination_shows_the_next_rows_and_clamps_bad_pages() {
    let env = env_with_admin().await;
    env.seed_healthy(450, 85_000).await;
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let admin = dash.session(ADMIN).await;

    let (_, first) = dash.get("/", Some(&admin), None).await;
    let (_, second) = dash.get("/?page=2", Some(&admin), None).await;
    let (_, third) = dash.get("/?page=3", Some(&admin), None).await;
    let (p1, p2, p3) = (shown(&first), shown(&second), shown(&third));
    assert_eq!((p1.len(), p2.len(), p3.len()), (200, 200, 50));
    assert!(p1.windows(2).all(|w| w[0] < w[1]) && p1[199] < p2[0] && p2[199] < p3[0], "by inbox id, page after page");
    assert!(first.contains("Showing 1–200 of 450") && first.contains("href=\"/?page=2\""), "{first}");
    assert!(second.contains("href=\"/?page=3\"") && second.contains("rel=\"prev\" href=\"/\""));
    for (page, want) in
        [("99", &p3), ("99999999999999999999999", &p3), ("abc", &p1), ("-2", &p1), ("0", &p1), ("", &p1)]
    {
        let (code, body) = dash.get(&path(&[("page", page)]), Some(&admin), None).await;
        assert_eq!(code, 200, "page={page}");
        assert_eq!(&shown(&body), want, "page={page}");
    }
    // Past the end of a filter with nothing in it: the empty state, still 200.
    let (code, body) = dash.get("/?status=healthy&page=5", Some(&admin), None).await;
    assert_eq!(code, 200);
    assert!(shown(&body).is_empty() && body.contains("No Facebook inbox matches this filter."));
    // The pager keeps the filter and the search.
    let (_, body) = dash.get(&path(&[("status", "unknown"), ("q", "bulk")]), Some(&admin), None).await;
    assert!(body.contains("href=\"/?status=unknown&amp;q=bulk&amp;page=2\""), "{body}");
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn flagged_inboxes_are_grouped_by_the_user_who_connected_them() {
    let env = env_with_admin().await;
    let mut first_user = Vec::new();
    for (page, name) in [("86001", "Shop Hanoi"), ("86002", "Shop Saigon"), ("86003", "Shop Hue")] {
        let (ch, inbox) = named_inbox(&env, 1, page, "user-token-alice", name).await;
        settle_as(&env, ch, "reauthorization_required", 460).await;
        record_digest(&env, ch).await;
        first_user.push(inbox);
    }
    let (healthy, _) = named_inbox(&env, 1, "86004", "user-token-alice", "Alice's healthy page").await;
    settle_as(&env, healthy, "healthy", 0).await;
    record_digest(&env, healthy).await;
    let (bob, bob_inbox) = named_inbox(&env, 1, "86005", "user-token-bob", "Bob's page").await;
    settle_as(&env, bob, "reauthorization_required", 492).await;
    record_digest(&env, bob).await;
    // No digest recorded yet: a group of its own.
    let (lone, lone_inbox) = named_inbox(&env, 1, "86006", "user-token-carol", "Carol's page").await;
    settle_as(&env, lone, "reauthorization_required", 460).await;
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let admin = dash.session(ADMIN).await;

    let (_, body) = dash.get("/", Some(&admin), None).await;
    assert_eq!(count(&body, "reauthorization_required"), Some(5));
    let groups = group_banners(&body);
    assert_eq!(groups.len(), 3, "one banner per user: {body}");
    let alice = groups[0];
    assert!(alice.contains("data-pages=\"3\"") && alice.contains("One reconnect fixes these 3 pages:"), "{alice}");
    assert_eq!(alice.matches("changed their password").count(), 1, "the cause once: {alice}");
    for inbox in &first_user {
        assert!(alice.contains(&format!("href=\"/app/accounts/1/settings/inboxes/{inbox}\"")), "{inbox}: {alice}");
    }
    assert!(alice.contains("Shop Hanoi") && alice.contains("Shop Hue") && !alice.contains("healthy page"));
    let (bob_group, carol_group) = (groups[1], groups[2]);
    assert!(bob_group.contains("data-pages=\"1\"") && bob_group.contains("no longer one of its admins"));
    assert!(bob_group.contains(&format!("inboxes/{bob_inbox}\"")) && !bob_group.contains("Shop"));
    assert!(carol_group.contains(&format!("inboxes/{lone_inbox}\"")) && carol_group.contains("Reconnecting fixes"));
    assert_eq!(body.matches("What to do:").count(), 3, "said once per group, not per inbox");
    // Each inbox still has its actions in its row.
    for inbox in first_user.iter().chain([&bob_inbox, &lone_inbox]) {
        let b = block(&body, *inbox).expect("row");
        assert!(b.contains("Try auto refresh") && b.contains("Reconnect manually"), "{b}");
    }

    let (_, body) = dash.get("/?lang=vi", Some(&admin), None).await;
    assert!(body.contains("Kết nối lại một lần sẽ khắc phục cả 3 trang này:"), "{body}");
    let (_, body) = dash.get(&path(&[("q", "Bob")]), Some(&admin), None).await;
    assert_eq!(group_banners(&body).len(), 1, "the search narrows the groups");
    let (_, body) = dash.get("/?status=healthy", Some(&admin), None).await;
    assert!(group_banners(&body).is_empty());
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn filters_combine_with_search() {
    let env = env_with_admin().await;
    let (north, north_inbox) = named_inbox(&env, 1, "87001", "u-87001", "Shop North").await;
    settle_as(&env, north, "healthy", 0).await;
    let (south, south_inbox) = named_inbox(&env, 1, "87002", "u-87002", "Shop South").await;
    settle_as(&env, south, "reauthorization_required", 460).await;
    let (cafe, _) = named_inbox(&env, 1, "87003", "u-87003", "Cafe").await;
    settle_as(&env, cafe, "reauthorization_required", 460).await;
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let admin = dash.session(ADMIN).await;

    let (_, body) = dash.get(&path(&[("status", "reauthorization_required"), ("q", "shop")]), Some(&admin), None).await;
    assert_eq!(shown(&body), vec![south_inbox]);
    assert_eq!(
        (count(&body, "all"), count(&body, "reauthorization_required"), count(&body, "healthy")),
        (Some(2), Some(1), Some(1))
    );
    assert!(body.contains("href=\"/?status=healthy&amp;q=shop\""), "count links keep the search: {body}");
    assert!(body.contains("<input type=\"hidden\" name=\"status\" value=\"reauthorization_required\">"));
    let (_, body) = dash.get(&path(&[("status", "healthy"), ("q", "shop")]), Some(&admin), None).await;
    assert_eq!(shown(&body), vec![north_inbox]);
    let (_, body) = dash.get(&path(&[("status", "attention"), ("q", "cafe")]), Some(&admin), None).await;
    assert_eq!(shown(&body).len(), 1);
    let (_, body) = dash.get(&path(&[("status", "healthy"), ("q", "cafe")]), Some(&admin), None).await;
    assert!(shown(&body).is_empty());
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn account_sessions_count_group_and_chart_only_their_account() {
    let env = env_with_admin().await;
    let (mine_ok, _) = named_inbox(&env, 1, "88001", "u-mine", "Mine healthy").await;
    settle_as(&env, mine_ok, "healthy", 0).await;
    let (mine_bad, mine_bad_inbox) = named_inbox(&env, 1, "88002", "u-mine", "Mine flagged").await;
    settle_as(&env, mine_bad, "reauthorization_required", 460).await;
    // The same Facebook user connected pages in both accounts.
    for (ch, _) in [(mine_bad, 0), (mine_ok, 0)] {
        record_digest(&env, ch).await;
    }
    let mut theirs = Vec::new();
    for page in ["88003", "88004", "88005"] {
        let (ch, _) = named_inbox(&env, 2, page, "u-mine", &format!("Theirs {page}")).await;
        settle_as(&env, ch, "reauthorization_required", 460).await;
        record_digest(&env, ch).await;
        theirs.push(ch);
    }
    for (ch, n) in [(mine_ok, 4), (theirs[0], 9)] {
        sqlx::query(
            "INSERT INTO fb_token_events (channel_id, job_id, reason, step, outcome)
             SELECT $1, gen_random_uuid(), 'cron', 'validate', 'ok' FROM generate_series(1, $2)",
        )
        .bind(i32::try_from(ch).expect("id"))
        .bind(n)
        .execute(&env.db)
        .await
        .expect("events");
    }
    sqlx::query(
        "INSERT INTO fb_validation_batches (job_id, account_id, reason, healthy, unchanged, first_checks)
         VALUES (gen_random_uuid(), 2, 'cron', 100, 100, 0)",
    )
    .execute(&env.db)
    .await
    .expect("batch");
    let (_, account1) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let (_, account2) = shared::store::create_api_token(&env.db, 2).await.expect("token");
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);

    let (_, body) = dash.get("/", Some(&dash.session(ADMIN).await), None).await;
    assert_eq!((count(&body, "all"), count(&body, "reauthorization_required")), (Some(5), Some(4)));
    assert_eq!(healthy_total(&body), Some(113));
    assert!(group_banners(&body)[0].contains("data-pages=\"4\""), "one user, both accounts");

    let (_, body) = dash.get("/", Some(&dash.session(account1.expose()).await), None).await;
    assert_eq!(
        (count(&body, "all"), count(&body, "reauthorization_required"), count(&body, "healthy")),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(count(&body, "attention"), Some(1));
    assert_eq!(healthy_total(&body), Some(4), "the chart counts account 1's checks only");
    let groups = group_banners(&body);
    assert_eq!(groups.len(), 1);
    assert!(groups[0].contains("data-pages=\"1\"") && groups[0].contains(&format!("inboxes/{mine_bad_inbox}\"")));
    assert!(!body.contains("Theirs") && !body.contains("data-queue"), "nothing of account 2, no queue figures");

    let (_, body) = dash.get("/", Some(&dash.session(account2.expose()).await), None).await;
    assert_eq!((count(&body, "all"), count(&body, "reauthorization_required")), (Some(3), Some(3)));
    assert_eq!(healthy_total(&body), Some(109), "its events and its batch's unchanged channels");
    assert!(group_banners(&body)[0].contains("data-pages=\"3\"") && !body.contains("Mine "));
    server.shutdown().await.expect("stop");
}

#[tokio::test]
async fn a_flag_only_in_redis_shows_on_its_row_and_counts_by_the_stored_status() {
    let env = env_with_admin().await;
    let (ch, inbox) = named_inbox(&env, 1, "89001", "u-89001", "Flagged by Chatwoot").await;
    settle_as(&env, ch, "healthy", 0).await;
    // Chatwoot's own threshold flagged it; the watcher's job has not settled yet.
    let _: () = env.redis.clone().set(env.flag_keys().reauthorization_required(ch), "true").await.expect("flag");
    let server = env.serve_api().await;
    let dash = Dash::new(&server.base);
    let admin = dash.session(ADMIN).await;

    let (_, body) = dash.get("/?status=healthy", Some(&admin), None).await;
    assert_eq!((count(&body, "healthy"), count(&body, "reauthorization_required")), (Some(1), Some(0)));
    let b = block(&body, inbox).expect("row");
    assert!(b.contains("s-reauthorization_required") && b.contains("Try auto refresh"), "the row shows the flag: {b}");
    assert!(group_banners(&body).is_empty());
    server.shutdown().await.expect("stop");
}
