//! On a real Chatwoot database: Rails-encrypted token columns read and written as Chatwoot's Rails
//! does, undecryptable rows left alone, and `migrate` leaving Chatwoot's `public` schema exactly as
//! it was.

use std::sync::OnceLock;

use serde_json::Value;
use shared::{
    config::{Config, EncryptionKeys},
    encryption::{self, Codec},
    job::{Reason, RefreshJob},
    pipeline::Outcome,
    secret::Secret,
    store,
};
use sqlx::Connection;
use tests::{
    TestEnv,
    env::{CHATWOOT_SCHEMA, create_database_with},
};

fn vectors() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(include_str!("../../fixtures/rails_vectors.json")).expect("vectors"))
}

/// Key set ks1, the one Rails encrypted every vector with.
fn ks1() -> EncryptionKeys {
    let ks = &vectors()["key_sets"][0];
    let s = |k: &str| Secret::new(ks[k].as_str().expect("key set field"));
    EncryptionKeys {
        primary_key: s("primary_key"),
        deterministic_key: s("deterministic_key"),
        key_derivation_salt: s("key_derivation_salt"),
    }
}

fn with_ks1(c: &mut Config) {
    c.encryption = Some(ks1());
}

fn envelope(env: &TestEnv, token: &str) -> String {
    env.config.codec().write(&Secret::new(token)).expose().to_owned()
}

/// A user with one page in the simulator and a channel row holding both tokens as Chatwoot's
/// Rails would store them under ks1; returns (channel, user id, page token).
async fn encrypted_channel(env: &TestEnv, page: &str) -> (i64, String, String) {
    let user = format!("u{page}");
    let user_token = env.sim.add_user(&user);
    env.sim.add_page(page, "p");
    let page_token = env.sim.grant(&user, page);
    let ch = env.insert_channel(1, page, &envelope(env, &page_token), &envelope(env, &user_token)).await;
    (ch, user, page_token)
}

#[tokio::test]
async fn every_rails_vector_reads_back_through_the_channel_table() {
    let env = TestEnv::chatwoot(with_ks1).await;
    let codec = env.config.codec();
    let all = vectors()["vectors"].as_array().expect("vectors");
    assert_eq!(all.len(), 96, "both columns, 3 Rails configurations, with and without key references");
    for (i, v) in all.iter().enumerate() {
        let stored = v["stored"].as_str().expect("stored");
        let plaintext = v["plaintext"].as_str().expect("plaintext");
        // Into Chatwoot's own column and back out, as a job reads it.
        let ch = env.insert_channel(1, &format!("9{i:05}"), stored, stored).await;
        let read = store::load_channel(&env.db, &codec, ch).await.expect("db").expect("row");
        let channel = read.unwrap_or_else(|u| panic!("vector {} unreadable: {}", v["id"], u.message()));
        assert_eq!(channel.page_token.expose(), plaintext, "{}", v["id"]);
        assert_eq!(channel.user_token.expose(), plaintext, "{}", v["id"]);
    }
    for e in vectors()["python_envelopes_read_by_rails"].as_array().expect("cross-checks") {
        let read = codec.read(e["stored"].as_str().expect("stored")).expect("Rails read it, so must we");
        assert_eq!(read.expose(), e["expected_read"].as_str().expect("expected"));
    }
}

#[tokio::test]
async fn a_healthy_encrypted_channel_is_validated_with_its_decrypted_token() {
    let env = TestEnv::chatwoot(with_ks1).await;
    let (ch, _, page_token) = encrypted_channel(&env, "810001").await;
    let before = env.stored_page_token(ch).await;
    assert!(encryption::is_envelope(&before));
    let outcome = env.pipeline().process(&RefreshJob::new(ch, Reason::Manual)).await.expect("job");
    assert_eq!(outcome, Outcome::Healthy);
    let sent: Vec<_> = env.sim.requests().into_iter().filter(|r| r.path == "/810001").collect();
    assert!(!sent.is_empty(), "the page was validated");
    assert!(
        sent.iter().all(|r| r.access_token.as_deref() == Some(page_token.as_str())),
        "the decrypted token went to Graph"
    );
    assert!(env.sim.requests().iter().all(|r| r.access_token.as_deref().is_none_or(|t| !t.contains("\"p\""))));
    assert_eq!(env.stored_page_token(ch).await, before, "a healthy row is not rewritten");
}

#[tokio::test]
async fn an_expired_encrypted_channel_gets_a_new_envelope_that_decrypts_to_the_new_token() {
    let env = TestEnv::chatwoot(with_ks1).await;
    let (ch, user, old) = encrypted_channel(&env, "810002").await;
    env.sim.kill_page_token("810002", &user, 190, Some(463), "Session has expired");
    let outcome = env.pipeline().process(&RefreshJob::new(ch, Reason::Manual)).await.expect("job");
    assert_eq!(outcome, Outcome::Refreshed);
    let stored = env.stored_page_token(ch).await;
    assert!(encryption::is_envelope(&stored), "written encrypted: {stored}");
    let new = env.config.codec().read(&stored).expect("decrypts");
    assert_ne!(new.expose(), old);
    assert_eq!(Some(new.expose().to_owned()), env.sim.page_token("810002", &user));
    assert!(env.sim.is_token_valid_for_page("810002", new.expose()));
    // Written as Chatwoot's Rails writes: compact JSON, headers in Rails' order, ks1's SHA1 key
    // reference (059a); the simulator's tokens are under 141 bytes, so not compressed.
    let shape = regex_lite(&stored);
    assert_eq!(shape, r#"{"p":_,"h":{"iv":_,"at":_,"i":"MDU5YQ=="}}"#, "{stored}");
    assert!(!stored.contains(new.expose()));
}

/// The envelope with every base64 value but the key reference replaced by `_`.
fn regex_lite(stored: &str) -> String {
    let json: Value = serde_json::from_str(stored).expect("json");
    let mut out = stored.to_owned();
    for v in [&json["p"], &json["h"]["iv"], &json["h"]["at"]] {
        out = out.replacen(&format!("\"{}\"", v.as_str().expect("string")), "_", 1);
    }
    out
}

#[tokio::test]
async fn a_plaintext_row_is_written_back_encrypted() {
    let env = TestEnv::chatwoot(with_ks1).await;
    let (ch, user, _) = env.healthy_channel("810003").await;
    assert!(!encryption::is_envelope(&env.stored_page_token(ch).await), "Chatwoot's rows from before encryption");
    env.sim.kill_page_token("810003", &user, 190, Some(463), "Session has expired");
    let outcome = env.pipeline().process(&RefreshJob::new(ch, Reason::Manual)).await.expect("job");
    assert_eq!(outcome, Outcome::Refreshed);
    let stored = env.stored_page_token(ch).await;
    assert!(encryption::is_envelope(&stored));
    assert_eq!(
        env.config.codec().read(&stored).expect("decrypts").expose(),
        env.sim.page_token("810003", &user).expect("token")
    );
}

#[tokio::test]
async fn without_keys_an_envelope_is_never_sent_counted_or_flagged() {
    let env = TestEnv::chatwoot(|_| {}).await;
    let rails = vectors()["vectors"][1]["stored"].as_str().expect("a Rails envelope").to_owned();
    let ch = env.insert_channel(1, "810004", &rails, &rails).await;
    for _ in 0..3 {
        let outcome = env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("job");
        assert!(matches!(outcome, Outcome::Undecryptable { .. }), "{outcome:?}");
    }
    assert_eq!(env.sim.request_count(), 0, "nothing reached Graph");
    assert!(env.redis_keys().await.is_empty(), "no count, no flag, no lock left: {:?}", env.redis_keys().await);
    let (status, valid, failures, message): (String, Option<bool>, i32, String) = sqlx::query_as(
        "SELECT status, token_valid, consecutive_failures, last_error_message FROM fb_token_states WHERE channel_id = $1",
    )
    .bind(ch as i32)
    .fetch_one(&env.db)
    .await
    .expect("state");
    assert_eq!((status.as_str(), valid, failures), ("unknown", None, 0));
    assert!(message.contains("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"), "{message}");
    assert!(!message.contains(&rails) && !message.contains("\"p\""), "no ciphertext in the status: {message}");
    assert_eq!(env.stored_page_token(ch).await, rails, "the row is left as Chatwoot wrote it");
}

#[tokio::test]
async fn under_other_keys_an_envelope_is_reported_by_its_key_id() {
    let env = TestEnv::chatwoot(|c| {
        c.encryption = Some(EncryptionKeys {
            primary_key: Secret::new("another-installation-primary-key"),
            deterministic_key: Secret::new("another-installation-deterministic"),
            key_derivation_salt: Secret::new("another-installation-salt"),
        });
    })
    .await;
    let rails = vectors()["vectors"][0]["stored"].as_str().expect("envelope").to_owned();
    let ch = env.insert_channel(1, "810005", &rails, &rails).await;
    let outcome = env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("job");
    assert!(matches!(outcome, Outcome::Undecryptable { .. }), "{outcome:?}");
    assert_eq!(env.sim.request_count(), 0);
    let (code, out) = producer::check_all::check_all(&env.config, true).await;
    assert_eq!(code, producer::check_all::EXIT_INVALID, "a person must set the right keys");
    let rows: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(rows[0]["token_valid"], Value::Null);
    let error = rows[0]["error"].to_string();
    assert!(error.contains("059a"), "names the key id Chatwoot used: {error}");
    assert!(!error.contains(&rails));
}

#[tokio::test]
async fn channels_sharing_an_encrypted_user_token_are_swept_once() {
    let env = TestEnv::chatwoot(|c| {
        with_ks1(c);
        c.authorization_error_threshold = 1;
    })
    .await;
    let user_token = env.sim.add_user("shared-user");
    let mut ids = vec![];
    for i in 0..6 {
        let page = format!("8110{i:02}");
        env.sim.add_page(&page, "p");
        let token = env.sim.grant("shared-user", &page);
        // Six envelopes of one user token: six different ciphertexts.
        ids.push(env.insert_channel(1, &page, &envelope(&env, &token), &envelope(&env, &user_token)).await);
        env.sim.kill_page_token(&page, "shared-user", 190, Some(463), "Session has expired");
    }
    let stored: std::collections::HashSet<String> =
        futures::future::join_all(ids.iter().map(|&c| env.stored_user_token(c))).await.into_iter().collect();
    assert_eq!(stored.len(), 6);
    let batch = shared::job::BatchJob::new(ids.clone(), Reason::Cron);
    let out = env.pipeline().process_batch(&batch).await.expect("batch");
    assert_eq!(out.settled.iter().filter(|(_, o)| *o == Outcome::Refreshed).count(), 6, "{:?}", out.settled);
    assert_eq!(env.sim.count_where(|r| r.path == "/me/accounts"), 1, "one sweep for the one user token");
}

#[tokio::test]
async fn a_proactive_exchange_finds_every_row_of_an_encrypted_user_token() {
    let env = TestEnv::chatwoot(with_ks1).await;
    let user_token = env.sim.add_user("expiring");
    let mut ids = vec![];
    for i in 0..3 {
        let page = format!("8120{i:02}");
        env.sim.add_page(&page, "p");
        let token = env.sim.grant("expiring", &page);
        ids.push(env.insert_channel(1, &page, &envelope(&env, &token), &envelope(&env, &user_token)).await);
    }
    let now = chrono::Utc::now().timestamp();
    env.sim.set_user_token_expiry(&user_token, now + 3 * 86_400, now + 80 * 86_400);
    let state = env.worker_state().await;
    let report =
        shared::worker::handler::handle_job(&state, &RefreshJob::new(ids[0], Reason::Cron)).await.expect("job");
    assert_eq!(report.outcome, "healthy");
    assert_eq!(env.sim.count_where(|r| r.path == "/oauth/access_token"), 1);
    let codec = env.config.codec();
    let mut new_tokens = std::collections::HashSet::new();
    for &ch in &ids {
        let stored = env.stored_user_token(ch).await;
        assert!(encryption::is_envelope(&stored));
        let token = codec.read(&stored).expect("decrypts");
        assert_ne!(token.expose(), user_token, "channel {ch} got the exchanged user token");
        new_tokens.insert(token.expose().to_owned());
    }
    assert_eq!(new_tokens.len(), 1, "every row of the user token, one new token");
}

/// Everything a `pg_dump --schema-only` of `public` would show, in a comparable form.
async fn public_schema(url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("db");
    sqlx::query_scalar(
        "SELECT format('%s %s %s', c.relkind, c.relname, coalesce(pg_get_indexdef(c.oid), '')) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
         UNION ALL
         SELECT format('column %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                       a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
         UNION ALL
         SELECT format('constraint %s %s', conname, pg_get_constraintdef(o.oid)) FROM pg_constraint o
           JOIN pg_namespace n ON n.oid = o.connamespace WHERE n.nspname = 'public'
         UNION ALL
         SELECT format('trigger %s', tgname) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
         UNION ALL
         SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
         UNION ALL
         SELECT format('type %s', t.typname) FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("catalog")
}

fn fresh_name() -> String {
    format!("fbtr_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

async fn drop_database(name: &str) {
    let mut admin = sqlx::PgConnection::connect(tests::env::ADMIN_URL).await.expect("admin");
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.expect("drop");
}

async fn our_tables(url: &str, schema: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("db");
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1")
        .bind(schema)
        .fetch_all(&mut conn)
        .await
        .expect("tables")
}

#[tokio::test]
async fn migrate_on_chatwoots_schema_leaves_public_unchanged() {
    let name = fresh_name();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    create_database_with(&name, CHATWOOT_SCHEMA).await;
    let before = public_schema(&url).await;
    assert!(before.iter().any(|l| l.contains("index_channel_facebook_pages_on_page_id_and_account_id")));
    let pool = store::connect_and_migrate(&Secret::new(url.clone()), "fb_token_refresh", 2).await.expect("migrate");
    // Twice, as every command migrates on start.
    store::connect_and_migrate(&Secret::new(url.clone()), "fb_token_refresh", 2).await.expect("migrate again");
    let after = public_schema(&url).await;
    assert_eq!(before, after, "migrate changed Chatwoot's public schema");
    let ours = our_tables(&url, "fb_token_refresh").await;
    for table in ["_sqlx_migrations", "fb_token_states", "fb_token_events", "fb_channel_user_tokens", "fb_api_tokens"] {
        assert!(ours.iter().any(|t| t == table), "{table} in our schema: {ours:?}");
    }
    // And the system works there: Chatwoot's own rows, through its own indexes.
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO channel_facebook_pages (page_id, user_access_token, page_access_token, account_id, created_at, updated_at)
         VALUES ('1', 'u', 'p', 1, now(), now()) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("Chatwoot's table through our search_path");
    assert!(store::load_channel(&pool, &Codec::plaintext(), i64::from(id)).await.expect("db").is_some());
    pool.close().await;
    drop_database(&name).await;
}

#[tokio::test]
async fn migrate_on_the_contracts_bare_tables_adds_nothing_to_them() {
    let name = fresh_name();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let bare = "CREATE TABLE channel_facebook_pages (id serial primary key, account_id integer not null,
          page_id varchar not null, page_access_token varchar not null, user_access_token varchar not null,
          instagram_id varchar, created_at timestamp not null, updated_at timestamp not null, unique (page_id, account_id));
        CREATE TABLE inboxes (id serial primary key, account_id integer not null, channel_id integer not null,
          channel_type varchar not null, name varchar not null, created_at timestamp not null, updated_at timestamp not null);";
    create_database_with(&name, bare).await;
    let before = public_schema(&url).await;
    store::connect_and_migrate(&Secret::new(url.clone()), "fbtr_custom", 2).await.expect("migrate").close().await;
    assert_eq!(before, public_schema(&url).await);
    assert!(our_tables(&url, "fbtr_custom").await.iter().any(|t| t == "fb_token_states"), "DATABASE_SCHEMA is used");
    drop_database(&name).await;
}

#[tokio::test]
async fn an_empty_database_gets_chatwoots_tables_with_upstreams_indexes() {
    let env = TestEnv::new().await;
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&env.db)
            .await
            .expect("indexes");
    for name in
        ["index_channel_facebook_pages_on_page_id_and_account_id", "index_inboxes_on_channel_id_and_channel_type"]
    {
        assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&env.db)
            .await
            .expect("tables");
    assert_eq!(tables, ["channel_facebook_pages", "inboxes"], "nothing else of ours in public");
}

#[tokio::test]
async fn a_database_of_the_first_layout_is_moved_into_our_schema_with_its_data() {
    let name = fresh_name();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    create_database_with(&name, include_str!("../../fixtures/first_layout.sql")).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("db");
    sqlx::query("INSERT INTO fb_token_states (channel_id, status) VALUES (7, 'healthy')")
        .execute(&mut conn)
        .await
        .expect("a state of the first layout");
    drop(conn);
    let pool = store::connect_and_migrate(&Secret::new(url.clone()), "fb_token_refresh", 2).await.expect("migrate");
    let status: String = sqlx::query_scalar("SELECT status FROM fb_token_states WHERE channel_id = 7")
        .fetch_one(&pool)
        .await
        .expect("kept");
    assert_eq!(status, "healthy");
    let public = our_tables(&url, "public").await;
    assert_eq!(public, ["channel_facebook_pages", "inboxes"], "our tables left public");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'fbtr_%'",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    assert!(!indexes.iter().any(|i| i == "fbtr_channels_user_token"), "{indexes:?}");
    pool.close().await;
    drop_database(&name).await;
}
