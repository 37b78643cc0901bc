//! Seeds the demo: users with ten pages each, in a mix of states, both in Postgres (Chatwoot's
//! tables) and in the simulator.

use std::fmt;

use redis::{AsyncCommands, aio::ConnectionManager};
pub use shared::store::demo::MARKER_TABLE;
use shared::{
    config::Config,
    secret::Secret,
    store::demo::{self, Holds},
};
use simulator::GraphSim;
use sqlx::{Connection as _, PgConnection, PgPool, postgres::PgConnectOptions};

/// The demo will not run against this database (`producer demo` exits 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

impl Refused {
    pub fn new(e: impl fmt::Display) -> Self {
        Self(e.to_string())
    }
}

fn refusal(database: &str, channels: i64, inboxes: i64) -> Refused {
    let at_least = |n: i64| if n >= 1000 { format!("{n}+") } else { n.to_string() };
    Refused(format!(
        "database {database:?} holds {} channels and {} inboxes the demo did not seed (no {MARKER_TABLE} table); \
         refusing to run the demo on it. Point DATABASE_URL at another server or database name (the demo \
         uses <name>_demo), or drop that database if it is a leftover",
        at_least(channels),
        at_least(inboxes)
    ))
}

/// Refuses a database that exists and holds someone else's channels, before anything (migrations
/// included) touches it. A database that does not exist yet, or cannot be reached, is left to
/// `connect_and_migrate` (which creates it, or reports the connection error).
pub async fn refuse_foreign(url: &Secret, schema: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = url.expose().parse()?;
    let Ok(mut conn) = PgConnection::connect_with(&options).await else {
        return Ok(());
    };
    // The marker is ours, so it is in our schema (or in `public` for a first-layout demo).
    shared::store::schema::set_search_path(&mut conn, schema).await?;
    let holds = demo::holdings(&mut conn).await?;
    let _ = conn.close().await;
    match holds {
        Holds::Foreign { channels, inboxes } => {
            Err(refusal(options.get_database().unwrap_or_default(), channels, inboxes).into())
        }
        Holds::Demo | Holds::Nothing => Ok(()),
    }
}

/// Marks the database as the demo's and empties its tables, in one transaction that re-checks
/// ownership under a lock, so a channel inserted since [`refuse_foreign`] is not truncated either.
async fn claim_and_truncate(db: &PgPool, database: &str) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    // Holds off concurrent inserts into the channel tables until the check and the truncate commit.
    demo::lock_channel_tables(&mut tx).await?;
    if let Holds::Foreign { channels, inboxes } = demo::holdings(&mut tx).await? {
        return Err(refusal(database, channels, inboxes).into());
    }
    demo::mark_as_demo(&mut tx).await?;
    demo::truncate_demo_tables(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Default)]
pub struct Plan {
    pub healthy: u32,
    pub expired: u32,
    pub revoked: u32,
    pub rate_limited: u32,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} healthy, {} with an expired page token (refreshable), {} whose user changed password (revoked), {} rate-limited",
            self.healthy, self.expired, self.revoked, self.rate_limited
        )
    }
}

const PAGES_PER_USER: u32 = 10;

pub async fn seed(
    db: &PgPool,
    redis: &mut ConnectionManager,
    config: &Config,
    sim: &GraphSim,
    channels: u32,
) -> anyhow::Result<Plan> {
    let database =
        config.database_url.expose().parse::<PgConnectOptions>()?.get_database().unwrap_or_default().to_owned();
    claim_and_truncate(db, &database).await?;
    clear_prefix(redis, &config.redis_key_prefix).await?;

    let mut plan = Plan::default();
    let (mut page_ids, mut page_tokens, mut user_tokens, mut accounts) = (vec![], vec![], vec![], vec![]);
    let mut user_token = String::new();
    for i in 0..channels {
        let user = i / PAGES_PER_USER;
        let user_id = format!("{}", 900_000_000 + user);
        if i % PAGES_PER_USER == 0 {
            user_token = sim.add_user(&user_id);
        }
        let page_id = format!("{}", 100_000_000_000u64 + u64::from(i));
        sim.add_page(&page_id, &format!("Demo Page {i}"));
        let page_token = sim.grant(&user_id, &page_id);
        // The mix by user: 14 of 20 healthy, 3 expired page tokens, 2 revoked, 1 rate-limited.
        match user % 20 {
            14..=16 => {
                sim.kill_page_token(
                    &page_id,
                    &user_id,
                    190,
                    Some(463),
                    "Error validating access token: Session has expired.",
                );
                plan.expired += 1;
            }
            17 | 18 => {
                sim.kill_page_token(&page_id, &user_id, 190, Some(460), "Error validating access token: The session has been invalidated because the user changed their password.");
                plan.revoked += 1;
            }
            19 => {
                sim.rate_limit_page(&page_id, 32, Some(2));
                plan.rate_limited += 1;
            }
            _ => plan.healthy += 1,
        }
        page_ids.push(page_id);
        page_tokens.push(page_token);
        user_tokens.push(user_token.clone());
        accounts.push(1 + (user % 5) as i32);
    }
    for user in 0..channels.div_ceil(PAGES_PER_USER) {
        if matches!(user % 20, 17 | 18)
            && let Some(token) = user_tokens.get((user * PAGES_PER_USER) as usize)
        {
            {
                sim.kill_user_token(token, 190, Some(460), "Error validating access token: The session has been invalidated because the user changed their password.");
            }
        }
    }
    demo::insert_pages_with_inboxes(db, &accounts, &page_ids, &page_tokens, &user_tokens).await?;
    Ok(plan)
}

/// Deletes every key under the demo prefix, so each demo starts clean. `prefix` is the demo's own
/// (`…demo:`, see `demo_prefix`); anything else is refused rather than cleared.
async fn clear_prefix(redis: &mut ConnectionManager, prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(prefix.ends_with("demo:"), "refusing to clear Redis keys outside a demo prefix ({prefix:?})");
    let keys: Vec<String> = {
        let mut iter = redis.scan_match::<_, String>(format!("{}*", shared::redis_ops::glob_escape(prefix))).await?;
        let mut keys = Vec::new();
        while let Some(k) = futures::StreamExt::next(&mut iter).await {
            let k = k?;
            // The pattern is escaped already; this makes "only under the prefix" not depend on it.
            if k.starts_with(prefix) {
                keys.push(k);
            }
        }
        keys
    };
    for chunk in keys.chunks(500) {
        let _: () = redis.del(chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_glob_escape_keeps_the_prefix_literal() {
        assert_eq!(shared::redis_ops::glob_escape("prod:demo:"), "prod:demo:");
        assert_eq!(shared::redis_ops::glob_escape("a*b?[c]\\demo:"), "a\\*b\\?\\[c\\]\\\\demo:");
    }
}
