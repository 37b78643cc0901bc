//! The dashboard's aggregates, in SQL so that a page view costs the same at 100,000 inboxes as at
//! 100: the counts per status of what a viewer may see (and searched for), and the inboxes that
//! need reconnecting grouped by the Facebook user whose token connected them. The page of rows
//! itself is `status::load_inbox_page` (it shares the status read model's columns).
//!
//! Every figure here comes from `fb_token_states.status`, never from the Redis flags: reading
//! every flag would cost a Redis round trip per inbox. `shared::status::inbox_page` says why that
//! is what an operator expects.

use sqlx::PgPool;

/// What a viewer may see and what they searched for, shared by every dashboard query.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// `None`: every account (admins).
    pub accounts: Option<&'a [i64]>,
    pub search: Option<&'a Search>,
}

/// A search box's text: a part of the inbox name (case-insensitive), a page id, or an inbox id
/// (`123` or `#123`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The text as typed, trimmed: compared whole with the page id.
    pub text: String,
    /// `%text%` with LIKE's own metacharacters escaped, so `50%` finds "50%" and not everything.
    pub pattern: String,
    pub inbox_id: Option<i64>,
}

impl Search {
    /// `None` for an empty or blank box. Longer text than any name is cut (no one types 200
    /// characters to find an inbox; a pasted blob must not become a huge pattern).
    pub fn parse(raw: &str) -> Option<Self> {
        let text: String = raw.trim().chars().take(200).collect();
        if text.is_empty() {
            return None;
        }
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for ch in text.chars() {
            // Backslash is LIKE's default escape character.
            if matches!(ch, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('%');
        let inbox_id = text.strip_prefix('#').unwrap_or(&text).parse::<i64>().ok().filter(|id| *id > 0);
        Some(Self { text, pattern, inbox_id })
    }
}

/// Inboxes per status, as the count links show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub all: i64,
    /// Reconnection required, retrying, or failing in a row (`InboxStatus::needs_attention`).
    pub attention: i64,
    pub reauthorization_required: i64,
    pub retrying: i64,
    /// Never checked (no state row) or checked without a verdict.
    pub unknown: i64,
    pub healthy: i64,
    pub refreshed: i64,
}

impl StatusCounts {
    /// The count behind a filter name (`None`: all).
    pub fn of(&self, filter: Option<&str>) -> i64 {
        match filter {
            None => self.all,
            Some("attention") => self.attention,
            Some("reauthorization_required") => self.reauthorization_required,
            Some("retrying") => self.retrying,
            Some("unknown") => self.unknown,
            Some("healthy") => self.healthy,
            Some("refreshed") => self.refreshed,
            Some(_) => 0,
        }
    }
}

/// Every count in one scan of the viewer's inboxes.
pub async fn status_counts(db: &PgPool, scope: Scope<'_>) -> Result<StatusCounts, sqlx::Error> {
    let (text, pattern, inbox_id) = search_args(scope.search);
    let r = sqlx::query!(
        r#"SELECT count(*) AS "all!",
           count(*) FILTER (WHERE s.status IN ('reauthorization_required', 'retrying') OR s.consecutive_failures > 0) AS "attention!",
           count(*) FILTER (WHERE s.status = 'reauthorization_required') AS "reauthorization_required!",
           count(*) FILTER (WHERE s.status = 'retrying') AS "retrying!",
           count(*) FILTER (WHERE s.status IS NULL OR s.status = 'unknown') AS "unknown!",
           count(*) FILTER (WHERE s.status = 'healthy') AS "healthy!",
           count(*) FILTER (WHERE s.status = 'refreshed') AS "refreshed!"
         FROM inboxes i
         JOIN channel_facebook_pages c ON c.id = i.channel_id
         LEFT JOIN fb_token_states s ON s.channel_id = c.id
         WHERE i.channel_type = 'Channel::FacebookPage'
           AND ($1::int8[] IS NULL OR i.account_id = ANY($1))
           AND ($2::text IS NULL OR i.name ILIKE $3 OR c.page_id = $2 OR i.id = $4::int8)"#,
        scope.accounts,
        text,
        pattern,
        inbox_id,
    )
    .fetch_one(db)
    .await?;
    Ok(StatusCounts {
        all: r.all,
        attention: r.attention,
        reauthorization_required: r.reauthorization_required,
        retrying: r.retrying,
        unknown: r.unknown,
        healthy: r.healthy,
        refreshed: r.refreshed,
    })
}

/// The inbox ids of one dashboard page, in its order (reconnection required, the rest needing
/// attention, then the others; by inbox id within each).
///
/// Sorting the whole view by that order read and sorted every inbox on every view (about 200 ms
/// at 100,000). Each rank is its own branch instead, ordered by inbox id with the page's own
/// LIMIT: the first two start from the partial index `fb_token_states_attention` (a few rows),
/// the third walks `inboxes` by primary key and stops once the page is full. Deep pages still
/// walk the rows before them.
///
/// The plan is the generic one on purpose: knowing the filter, the planner hashes every inbox to
/// find the 200 healthy ones of a page (a third of a second at 100,000), while the generic plan
/// walks the primary key and stops (8 ms), and it is not for that statement to choose per call.
pub async fn page_ids(
    db: &PgPool,
    scope: Scope<'_>,
    filter: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let (text, pattern, inbox_id) = search_args(scope.search);
    let mut tx = db.begin().await?;
    // Dynamic: a SET has no result to check at compile time.
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut *tx).await?;
    let ids = sqlx::query_scalar!(
        r#"SELECT inbox_id AS "inbox_id!" FROM (
          (SELECT 0 AS rank, i.id::int8 AS inbox_id
           FROM fb_token_states s
           JOIN channel_facebook_pages c ON c.id = s.channel_id
           JOIN inboxes i ON i.channel_id = c.id AND i.channel_type = 'Channel::FacebookPage'
           WHERE s.status = 'reauthorization_required'
             AND ($1::int8[] IS NULL OR i.account_id = ANY($1))
             AND ($2::text IS NULL OR i.name ILIKE $3 OR c.page_id = $2 OR i.id = $4::int8)
             AND ($5::text IS NULL OR $5 IN ('attention', 'reauthorization_required'))
           ORDER BY i.id LIMIT $8)
          UNION ALL
          (SELECT 1, i.id::int8
           FROM fb_token_states s
           JOIN channel_facebook_pages c ON c.id = s.channel_id
           JOIN inboxes i ON i.channel_id = c.id AND i.channel_type = 'Channel::FacebookPage'
           WHERE (s.status IN ('reauthorization_required', 'retrying') OR s.consecutive_failures > 0)
             AND s.status <> 'reauthorization_required'
             AND ($1::int8[] IS NULL OR i.account_id = ANY($1))
             AND ($2::text IS NULL OR i.name ILIKE $3 OR c.page_id = $2 OR i.id = $4::int8)
             AND ($5::text IS NULL OR $5 = 'attention' OR s.status = $5)
           ORDER BY i.id LIMIT $8)
          UNION ALL
          (SELECT 2, i.id::int8
           FROM inboxes i
           JOIN channel_facebook_pages c ON c.id = i.channel_id
           LEFT JOIN fb_token_states s ON s.channel_id = c.id
           WHERE i.channel_type = 'Channel::FacebookPage'
             AND NOT coalesce(s.status IN ('reauthorization_required', 'retrying') OR s.consecutive_failures > 0, false)
             AND ($1::int8[] IS NULL OR i.account_id = ANY($1))
             AND ($2::text IS NULL OR i.name ILIKE $3 OR c.page_id = $2 OR i.id = $4::int8)
             AND ($5::text IS NULL OR s.status = $5 OR ($5 = 'unknown' AND s.status IS NULL))
           ORDER BY i.id LIMIT $8)
        ) page ORDER BY rank, inbox_id LIMIT $6 OFFSET $7"#,
        scope.accounts,
        text,
        pattern,
        inbox_id,
        filter,
        limit,
        offset,
        // Each branch's own bound; a page number past any real one must not overflow it.
        limit.saturating_add(offset),
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}

/// The `$2, $3, $4` of the search clause every dashboard query ends with.
pub(crate) fn search_args(search: Option<&Search>) -> (Option<&str>, Option<&str>, Option<i64>) {
    match search {
        Some(s) => (Some(s.text.as_str()), Some(s.pattern.as_str()), s.inbox_id),
        None => (None, None, None),
    }
}

/// One inbox of a [`FlaggedGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInbox {
    pub inbox_id: i64,
    pub account_id: i64,
    pub name: String,
    pub page_id: String,
}

/// Inboxes that need reconnecting and were connected by one Facebook user (one user token
/// digest, `fb_channel_user_tokens`): one reconnect by that user fixes them all. A channel without
/// a digest (not loaded yet, or undecryptable) is a group of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedGroup {
    pub pages: i64,
    /// The first `listed` inboxes, by inbox id.
    pub inboxes: Vec<GroupInbox>,
    /// The most recent Graph error among them: the group's cause, shown once.
    pub error_kind: Option<String>,
    pub error_code: Option<i64>,
    pub error_subcode: Option<i64>,
    pub error_message: Option<String>,
}

/// The largest `max_groups` groups (then by lowest inbox id), each with at most `listed` inboxes,
/// and how many groups there are in all.
pub async fn flagged_groups(
    db: &PgPool,
    scope: Scope<'_>,
    max_groups: i64,
    listed: i32,
) -> Result<(Vec<FlaggedGroup>, i64), sqlx::Error> {
    let (text, pattern, inbox_id) = search_args(scope.search);
    // The digest is only a grouping key: it never leaves this statement.
    let rows = sqlx::query!(
        r#"WITH flagged AS (
           SELECT i.id::int8 AS inbox_id, i.account_id::int8 AS account_id, i.name::text AS name, c.page_id::text AS page_id,
                  coalesce(encode(d.user_token_sha256, 'hex'), 'channel:' || c.id) AS grp, s.updated_at,
                  s.last_error_kind, s.last_error_code, s.last_error_subcode, s.last_error_message
           FROM fb_token_states s
           JOIN channel_facebook_pages c ON c.id = s.channel_id
           JOIN inboxes i ON i.channel_id = c.id AND i.channel_type = 'Channel::FacebookPage'
           LEFT JOIN fb_channel_user_tokens d ON d.channel_id = c.id
           WHERE s.status = 'reauthorization_required'
             AND ($1::int8[] IS NULL OR i.account_id = ANY($1))
             AND ($2::text IS NULL OR i.name ILIKE $3 OR c.page_id = $2 OR i.id = $4::int8))
         SELECT count(*) AS "pages!", count(*) OVER () AS "groups!",
                (array_agg(inbox_id ORDER BY inbox_id))[1:$6] AS "inbox_ids!: Vec<i64>",
                (array_agg(account_id ORDER BY inbox_id))[1:$6] AS "account_ids!: Vec<i64>",
                (array_agg(name ORDER BY inbox_id))[1:$6] AS "names!: Vec<String>",
                (array_agg(page_id ORDER BY inbox_id))[1:$6] AS "page_ids!: Vec<String>",
                (array_agg(last_error_kind ORDER BY updated_at DESC))[1] AS "error_kind?",
                (array_agg(last_error_code::int8 ORDER BY updated_at DESC))[1] AS "error_code?",
                (array_agg(last_error_subcode::int8 ORDER BY updated_at DESC))[1] AS "error_subcode?",
                (array_agg(last_error_message ORDER BY updated_at DESC))[1] AS "error_message?"
         FROM flagged GROUP BY grp
         ORDER BY count(*) DESC, min(inbox_id)
         LIMIT $5"#,
        scope.accounts,
        text,
        pattern,
        inbox_id,
        max_groups,
        listed,
    )
    .fetch_all(db)
    .await?;
    let total = rows.first().map_or(0, |r| r.groups);
    let groups = rows
        .into_iter()
        .map(|r| FlaggedGroup {
            pages: r.pages,
            inboxes: r
                .inbox_ids
                .into_iter()
                .zip(r.account_ids)
                .zip(r.names.into_iter().zip(r.page_ids))
                .map(|((inbox_id, account_id), (name, page_id))| GroupInbox { inbox_id, account_id, name, page_id })
                .collect(),
            error_kind: r.error_kind,
            error_code: r.error_code,
            error_subcode: r.error_subcode,
            error_message: r.error_message,
        })
        .collect();
    Ok((groups, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_escapes_like_and_reads_ids() {
        assert_eq!(Search::parse("  "), None);
        let s = Search::parse(" 50%_off\\ ").expect("search");
        assert_eq!(s.text, "50%_off\\");
        assert_eq!(s.pattern, "%50\\%\\_off\\\\%");
        assert_eq!(s.inbox_id, None);
        assert_eq!(Search::parse("#42").and_then(|s| s.inbox_id), Some(42));
        assert_eq!(Search::parse("42").and_then(|s| s.inbox_id), Some(42));
        assert_eq!(Search::parse("-1").and_then(|s| s.inbox_id), None);
        assert_eq!(Search::parse(&"x".repeat(500)).map(|s| s.text.len()), Some(200));
    }
}
