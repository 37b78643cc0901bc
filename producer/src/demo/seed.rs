//! Seeds the demo: users with ten pages each, in a mix of states, both in Postgres (Chatwoot's
//! tables) and in the simulator.

use std::fmt;

use redis::{AsyncCommands, aio::ConnectionManager};
use shared::{config::Config, simulator::GraphSim};
use sqlx::PgPool;

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
    sqlx::query("TRUNCATE channel_facebook_pages, inboxes, fb_token_states, fb_token_events RESTART IDENTITY")
        .execute(db)
        .await?;
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
    sqlx::query(
        "WITH c AS (
           INSERT INTO channel_facebook_pages (account_id, page_id, page_access_token, user_access_token, created_at, updated_at)
           SELECT a, p, pt, ut, timezone('utc', now()), timezone('utc', now())
           FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS t(a, p, pt, ut)
           RETURNING id, account_id, page_id)
         INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at)
         SELECT account_id, id, 'Channel::FacebookPage', 'Demo Page ' || page_id, timezone('utc', now()), timezone('utc', now()) FROM c",
    )
    .bind(&accounts)
    .bind(&page_ids)
    .bind(&page_tokens)
    .bind(&user_tokens)
    .execute(db)
    .await?;
    Ok(plan)
}

/// Deletes every key under the demo prefix, so each demo starts clean.
async fn clear_prefix(redis: &mut ConnectionManager, prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!prefix.is_empty(), "refusing to clear Redis without a key prefix");
    let keys: Vec<String> = {
        let mut iter = redis.scan_match::<_, String>(format!("{prefix}*")).await?;
        let mut keys = Vec::new();
        while let Some(k) = futures::StreamExt::next(&mut iter).await {
            keys.push(k?);
        }
        keys
    };
    for chunk in keys.chunks(500) {
        let _: () = redis.del(chunk).await?;
    }
    Ok(())
}
