//! Page validation, token lookup, `/me/accounts` paging, `debug_token` and the token exchange.

use serde_json::Value;

use super::{client, get, send, start, user_with_pages};

#[tokio::test]
async fn page_token_validates_and_is_logged() {
    let sim = start().await;
    sim.add_user("1");
    sim.add_page("42", "Forty Two");
    let token = sim.grant("1", "42");
    assert_eq!(sim.page_token("42", "1").as_deref(), Some(token.as_str()));
    assert!(sim.is_token_valid_for_page("42", &token));
    assert!(!sim.is_token_valid_for_page("43", &token));

    let a = get(&sim, "/42", &[("fields", "id,name")], Some(&token)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, serde_json::json!({"id": "42", "name": "Forty Two"}));
    assert_eq!(a.headers.get("content-type").unwrap(), "application/json; charset=UTF-8");

    let log = sim.requests();
    assert_eq!((log.len(), sim.request_count()), (1, 1));
    let r = &log[0];
    assert_eq!((r.method.as_str(), r.path.as_str(), r.status), ("GET", "/42", 200));
    assert_eq!(r.access_token.as_deref(), Some(token.as_str()));
    assert_eq!(r.proof_valid, Some(true));
    assert_eq!(r.query.get("fields").map(String::as_str), Some("id,name"));
    assert_eq!(sim.count_where(|r| r.path == "/42"), 1);
    sim.reset_log();
    assert_eq!((sim.requests().len(), sim.request_count()), (0, 0));

    // Without a version prefix, and with another version, too.
    let url = format!("http://{}/v19.0/42", sim.addr());
    let a = send(
        client().get(url).query(&[("access_token", token.as_str()), ("appsecret_proof", &sim.proof(&token).unwrap())]),
    )
    .await;
    assert_eq!(a.status, 200);
    let url = format!("http://{}/42", sim.addr());
    let a = send(
        client().get(url).query(&[("access_token", token.as_str()), ("appsecret_proof", &sim.proof(&token).unwrap())]),
    )
    .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn unknown_token_is_190_cannot_parse() {
    let sim = start().await;
    sim.add_page("42", "P");
    let a = get(&sim, "/42", &[("fields", "id,name")], Some("garbage-token")).await;
    assert_eq!((a.status, a.code()), (400, Some(190)));
    assert_eq!(a.message(), "Invalid OAuth access token - Cannot parse access token");
    assert_eq!(a.body.pointer("/error/type").and_then(Value::as_str), Some("OAuthException"));
    assert!(a.body.pointer("/error/fbtrace_id").and_then(Value::as_str).is_some_and(|s| !s.is_empty()));
    // No token at all.
    let a = get(&sim, "/42", &[], None).await;
    assert_eq!((a.status, a.code()), (400, Some(104)));
}

#[tokio::test]
async fn killed_page_token_answers_its_error_and_accounts_mints_a_new_one() {
    let sim = start().await;
    let user = user_with_pages(&sim, "7", 1);
    let old = sim.page_token("1000", "7").unwrap();
    sim.kill_page_token("1000", "7", 190, Some(460), "Error validating access token: password changed");
    let a = get(&sim, "/1000", &[("fields", "id,name")], Some(&old)).await;
    assert_eq!((a.status, a.code(), a.subcode()), (400, Some(190), Some(460)));
    assert_eq!(a.message(), "Error validating access token: password changed");
    assert!(!sim.is_token_valid_for_page("1000", &old));

    let a = get(&sim, "/me/accounts", &[], Some(&user)).await;
    let fresh = a.body.pointer("/data/0/access_token").and_then(Value::as_str).unwrap().to_owned();
    assert_ne!(fresh, old);
    assert_eq!(sim.page_token("1000", "7").as_deref(), Some(fresh.as_str()));
    assert!(sim.is_token_valid_for_page("1000", &fresh));
    assert_eq!(get(&sim, "/1000", &[], Some(&fresh)).await.status, 200);

    // Permission errors come back as 403.
    sim.kill_page_token("1000", "7", 200, None, "(#200) Permissions error");
    let a = get(&sim, "/1000", &[], Some(&fresh)).await;
    assert_eq!((a.status, a.code()), (403, Some(200)));

    // A dead user token answers its error everywhere.
    sim.kill_user_token(&user, 190, Some(458), "Error validating access token: app not installed");
    let a = get(&sim, "/me/accounts", &[], Some(&user)).await;
    assert_eq!((a.status, a.code(), a.subcode()), (400, Some(190), Some(458)));
    let a = get(&sim, "/1000", &[("fields", "access_token")], Some(&user)).await;
    assert_eq!(a.subcode(), Some(458));
}

#[tokio::test]
async fn deleted_page_and_revoked_role() {
    let sim = start().await;
    let user = user_with_pages(&sim, "7", 2);
    let t0 = sim.page_token("1000", "7").unwrap();
    let t1 = sim.page_token("1001", "7").unwrap();

    sim.delete_page("1000");
    let a = get(&sim, "/1000", &[("fields", "id,name")], Some(&t0)).await;
    assert_eq!((a.status, a.code(), a.subcode()), (400, Some(100), Some(33)));
    assert!(a.message().starts_with("Unsupported get request. Object with ID '1000' does not exist"));
    assert_eq!(a.body.pointer("/error/type").and_then(Value::as_str), Some("GraphMethodException"));
    assert!(!sim.is_token_valid_for_page("1000", &t0));

    sim.revoke_role("7", "1001");
    let a = get(&sim, "/1001", &[], Some(&t1)).await;
    assert_eq!((a.status, a.code(), a.subcode()), (400, Some(190), Some(492)));
    // Neither page is among the user's pages any more; the lookup answers without a token.
    let a = get(&sim, "/me/accounts", &[], Some(&user)).await;
    assert_eq!(a.body["data"], serde_json::json!([]));
    let a = get(&sim, "/1001", &[("fields", "access_token")], Some(&user)).await;
    assert_eq!(a.body, serde_json::json!({"id": "1001"}));
    // Granting again gives a new live token; the old one stays dead.
    let t2 = sim.grant("7", "1001");
    assert_ne!(t2, t1);
    assert!(sim.is_token_valid_for_page("1001", &t2) && !sim.is_token_valid_for_page("1001", &t1));
}

#[tokio::test]
async fn single_page_lookup_with_and_without_admin() {
    let sim = start().await;
    let admin = user_with_pages(&sim, "1", 1);
    let other = sim.add_user("2");
    let a = get(&sim, "/1000", &[("fields", "access_token")], Some(&admin)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], "1000");
    assert_eq!(a.body["access_token"].as_str(), sim.page_token("1000", "1").as_deref());
    let a = get(&sim, "/1000", &[("fields", "access_token")], Some(&other)).await;
    assert_eq!((a.status, a.body.clone()), (200, serde_json::json!({"id": "1000"})));
    let a = get(&sim, "/999", &[("fields", "access_token")], Some(&other)).await;
    assert_eq!((a.code(), a.subcode()), (Some(100), Some(33)));
    let a = get(&sim, "/1000", &[("fields", "bogus")], Some(&admin)).await;
    assert_eq!(a.code(), Some(100));
}

/// Follows `paging.next` (adding the proof, as `next` carries none) and returns the page sizes.
async fn sweep(sim: &super::GraphSim, user: &str, params: &[(&str, &str)]) -> (Vec<usize>, Vec<String>) {
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    let mut a = get(sim, "/me/accounts", params, Some(user)).await;
    loop {
        assert_eq!(a.status, 200, "{}", a.body);
        let data = a.body["data"].as_array().unwrap();
        sizes.push(data.len());
        ids.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        let Some(next) = a.body.pointer("/paging/next").and_then(Value::as_str) else { break };
        assert!(next.starts_with(&sim.base_url()) && next.contains("access_token=") && next.contains("after="));
        let proof = sim.proof(user).unwrap();
        a = send(client().get(next).query(&[("appsecret_proof", proof.as_str())])).await;
    }
    (sizes, ids)
}

#[tokio::test]
async fn accounts_pagination_default_and_limit() {
    let sim = start().await;
    let user = user_with_pages(&sim, "5", 60);
    let expected: Vec<String> = (1000..1060).map(|i| i.to_string()).collect();

    let (sizes, ids) = sweep(&sim, &user, &[]).await;
    assert_eq!(sizes, vec![25, 25, 10]);
    assert_eq!(ids, expected);

    let (sizes, ids) = sweep(&sim, &user, &[("limit", "20"), ("fields", "id,name,access_token")]).await;
    assert_eq!(sizes, vec![20, 20, 20]);
    assert_eq!(ids, expected);

    let (sizes, _) = sweep(&sim, &user, &[("limit", "500")]).await;
    assert_eq!(sizes, vec![60]);

    let a = get(&sim, "/me/accounts", &[], Some(&user)).await;
    let first = &a.body["data"][0];
    for key in ["id", "name", "access_token", "category", "category_list", "tasks"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert_eq!(first["tasks"].as_array().unwrap().len(), 6);
    assert!(a.body.pointer("/paging/cursors/before").is_some() && a.body.pointer("/paging/cursors/after").is_some());
    assert_eq!(first["access_token"].as_str(), sim.page_token("1000", "5").as_deref());

    let a = get(&sim, "/me/accounts", &[("fields", "id,name")], Some(&user)).await;
    assert!(a.body["data"][0].get("access_token").is_none());
    let a = get(&sim, "/me/accounts", &[("after", "bm90IGEgY3Vyc29y")], Some(&user)).await;
    assert_eq!((a.status, a.code()), (400, Some(100)));
    let page = sim.page_token("1000", "5").unwrap();
    let a = get(&sim, "/me/accounts", &[], Some(&page)).await;
    assert_eq!(a.code(), Some(100));
}

#[tokio::test]
async fn debug_token_user_page_dead_and_wrong_app_token() {
    let sim = start().await;
    let user = user_with_pages(&sim, "9", 1);
    let page = sim.page_token("1000", "9").unwrap();
    let app = sim.app_token().unwrap();
    let debug = |input: String, app: String| {
        let sim = sim.clone();
        async move { get(&sim, "/debug_token", &[("input_token", &input)], Some(&app)).await }
    };

    let a = debug(user.clone(), app.clone()).await;
    let d = &a.body["data"];
    assert_eq!((a.status, d["type"].as_str(), d["is_valid"].as_bool()), (200, Some("USER"), Some(true)));
    assert_eq!(
        (d["app_id"].as_str(), d["user_id"].as_str(), d["application"].as_str()),
        (Some("1234567890"), Some("9"), Some("Sim App"))
    );
    let now = chrono::Utc::now().timestamp();
    assert!(d["expires_at"].as_i64().unwrap() > now + 59 * 86_400);
    assert!(d["data_access_expires_at"].as_i64().unwrap() > now);
    assert!(d["issued_at"].as_i64().unwrap() <= now);
    assert_eq!(d["scopes"].as_array().unwrap().len(), 4);

    let a = debug(page.clone(), app.clone()).await;
    let d = &a.body["data"];
    assert_eq!(
        (d["type"].as_str(), d["expires_at"].as_i64(), d["profile_id"].as_str()),
        (Some("PAGE"), Some(0), Some("1000"))
    );

    sim.kill_page_token("1000", "9", 190, Some(460), "password changed");
    let a = debug(page, app.clone()).await;
    let d = &a.body["data"];
    assert_eq!((d["is_valid"].as_bool(), d.pointer("/error/code").and_then(Value::as_i64)), (Some(false), Some(190)));
    assert_eq!(d.pointer("/error/subcode").and_then(Value::as_i64), Some(460));

    let a = debug("garbage".into(), app.clone()).await;
    assert_eq!((a.status, a.body["data"]["is_valid"].as_bool()), (200, Some(false)));

    let a = debug(user.clone(), "1234567890|wrong".into()).await;
    assert_eq!((a.status, a.code()), (400, Some(190)));
    let a = debug(user.clone(), user.clone()).await;
    assert_eq!((a.status, a.code()), (400, Some(190)));

    sim.set_user_token_expiry(&user, now - 10, 0);
    let a = debug(user.clone(), app).await;
    assert_eq!(a.body.pointer("/data/error/subcode").and_then(Value::as_i64), Some(463));
    let a = get(&sim, "/me/accounts", &[], Some(&user)).await;
    assert_eq!((a.code(), a.subcode()), (Some(190), Some(463)));
}

#[tokio::test]
async fn exchange_gives_a_new_long_lived_token() {
    let sim = start().await;
    let user = user_with_pages(&sim, "3", 1);
    let exchange = |secret: &str, token: &str| {
        let url = format!("{}/oauth/access_token", sim.base_url());
        let q = [
            ("grant_type", "fb_exchange_token"),
            ("client_id", "1234567890"),
            ("client_secret", secret),
            ("fb_exchange_token", token),
        ];
        send(client().get(url).query(&q))
    };
    let a = exchange("sim-app-secret", &user).await;
    assert_eq!(
        (a.status, a.body["token_type"].as_str(), a.body["expires_in"].as_i64()),
        (200, Some("bearer"), Some(5_183_944))
    );
    let new = a.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new, user);
    let a = get(&sim, "/me/accounts", &[], Some(&new)).await;
    assert_eq!(a.body.pointer("/data/0/id").and_then(Value::as_str), Some("1000"));
    let a = get(&sim, "/me", &[], Some(&new)).await;
    assert_eq!(a.body["id"], "3");

    let a = exchange("wrong", &user).await;
    assert_eq!((a.status, a.code(), a.message()), (400, Some(1), "Error validating client secret."));
    sim.kill_user_token(&user, 190, Some(460), "password changed");
    let a = exchange("sim-app-secret", &user).await;
    assert_eq!((a.status, a.code(), a.subcode()), (400, Some(190), Some(460)));
    let a = exchange("sim-app-secret", "garbage").await;
    assert_eq!(a.code(), Some(190));
}

#[tokio::test]
async fn malformed_tokens_are_quoted_back_when_asked() {
    let sim = start().await;
    let user = user_with_pages(&sim, "11", 1);
    let app = sim.app_token().unwrap();
    let bad_page = format!("{}x", sim.page_token("1000", "11").unwrap());
    let bad_user = format!("{user}x");
    // Off by default: Graph's generic text.
    let a = get(&sim, "/1000", &[("fields", "id,name")], Some(&bad_page)).await;
    assert_eq!(a.message(), "Invalid OAuth access token - Cannot parse access token");

    sim.echo_malformed_tokens(true);
    let a = get(&sim, "/1000", &[("fields", "id,name")], Some(&bad_page)).await;
    assert_eq!((a.status, a.code()), (400, Some(190)));
    assert_eq!(a.message(), format!("Malformed access token {bad_page}"));
    assert_eq!(a.body.pointer("/error/type").and_then(Value::as_str), Some("OAuthException"));
    let a = get(&sim, "/me/accounts", &[], Some(&bad_user)).await;
    assert_eq!(
        (a.status, a.code(), a.message()),
        (400, Some(190), format!("Malformed access token {bad_user}").as_str())
    );
    let a = get(&sim, "/debug_token", &[("input_token", &bad_user)], Some(&app)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.pointer("/data/is_valid"), Some(&Value::Bool(false)));
    assert_eq!(
        a.body.pointer("/data/error/message").and_then(Value::as_str),
        Some(format!("Malformed access token {bad_user}").as_str())
    );
    // Tokens the world issued answer as before.
    assert_eq!(get(&sim, "/me/accounts", &[], Some(&user)).await.status, 200);
}

#[tokio::test]
async fn successful_answers_carry_the_page_usage_asked_for() {
    let sim = start().await;
    user_with_pages(&sim, "12", 2);
    let t0 = sim.page_token("1000", "12").unwrap();
    let t1 = sim.page_token("1001", "12").unwrap();
    sim.set_page_usage("1000", Some((95, Some(7))));
    let a = get(&sim, "/1000", &[("fields", "id,name")], Some(&t0)).await;
    assert_eq!(a.status, 200);
    let buc = a.header("x-business-use-case-usage").unwrap();
    assert_eq!(buc.pointer("/1000/0/call_count").and_then(Value::as_u64), Some(95));
    assert_eq!(buc.pointer("/1000/0/estimated_time_to_regain_access").and_then(Value::as_u64), Some(7));
    assert!(get(&sim, "/1001", &[], Some(&t1)).await.headers.get("x-business-use-case-usage").is_none());
    sim.clear_rate_limits();
    assert!(get(&sim, "/1000", &[], Some(&t0)).await.headers.get("x-business-use-case-usage").is_none());
}

/// A person who took `pages_messaging` away: every token of that page, old or minted later through
/// `/me/accounts`, lacks it in `debug_token`, while validation still succeeds and other pages keep it.
#[tokio::test]
async fn a_revoked_scope_leaves_every_token_of_the_page() {
    let sim = start().await;
    let user = user_with_pages(&sim, "7", 2);
    let app = sim.app_token().unwrap();
    let scopes = |input: String| {
        let (sim, app) = (sim.clone(), app.clone());
        async move {
            let a = get(&sim, "/debug_token", &[("input_token", &input)], Some(&app)).await;
            assert_eq!((a.status, a.body["data"]["is_valid"].as_bool()), (200, Some(true)), "{}", a.body);
            let list = a.body["data"]["scopes"].as_array().unwrap().iter();
            list.map(|s| s.as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    let old = sim.page_token("1000", "7").unwrap();
    assert!(scopes(old.clone()).await.contains(&"pages_messaging".to_owned()), "granted by default");

    sim.revoke_page_scope("1000", "pages_messaging");
    let left = scopes(old.clone()).await;
    assert!(!left.contains(&"pages_messaging".to_owned()) && left.contains(&"pages_show_list".to_owned()), "{left:?}");
    assert_eq!(get(&sim, "/1000", &[("fields", "id,name")], Some(&old)).await.status, 200, "still alive");
    assert!(scopes(sim.page_token("1001", "7").unwrap()).await.contains(&"pages_messaging".to_owned()));

    sim.kill_page_token("1000", "7", 190, Some(460), "password changed");
    let a = get(&sim, "/me/accounts", &[("fields", "id,access_token")], Some(&user)).await;
    let minted = a.body["data"][0]["access_token"].as_str().unwrap().to_owned();
    assert_ne!(minted, old);
    assert!(!scopes(minted).await.contains(&"pages_messaging".to_owned()), "a re-issued token lacks it too");
}
