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
    for want in ["class=\"warn\"", "81002", "Reconnection required", "changed their password", "(190/460)"] {
        assert!(flagged_block.contains(want), "{want}: {flagged_block}");
    }
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
