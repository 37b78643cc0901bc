//! The simulated world: users, pages, admin roles and every token ever issued, all in hash maps so
//! that one request costs O(1) (O(limit) for a `/me/accounts` page).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ops::Bound,
};

use rand::{Rng, distr::Alphanumeric};

use super::{errors::GraphError, subscriptions::Subscriptions};

/// A long-lived user token lives 60 days (what `fb_exchange_token` announces as `expires_in`).
pub(crate) const USER_TOKEN_TTL_SECS: i64 = 5_183_944;
const DATA_ACCESS_TTL_SECS: i64 = 90 * 86_400;
pub(crate) const SCOPES: [&str; 4] =
    ["pages_show_list", "pages_messaging", "pages_manage_metadata", "pages_read_engagement"];
pub(crate) const TASKS: [&str; 6] = ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    User,
    Page { page_id: String },
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRec {
    pub kind: TokenKind,
    pub user_id: String,
    pub issued_at: i64,
    /// Unix seconds; 0 = never.
    pub expires_at: i64,
    /// Unix seconds; 0 = never.
    pub data_access_expires_at: i64,
    /// Set by `kill_*`, `revoke_role`: every use answers this error.
    pub dead: Option<GraphError>,
    /// What `debug_token` lists: the permissions the person granted when the token was issued.
    pub scopes: Vec<String>,
}

#[derive(Debug, Default)]
struct User {
    /// Pages the user administers, by grant sequence (the `/me/accounts` order and cursor).
    pages: BTreeMap<u64, String>,
    seq_of: HashMap<String, u64>,
}

#[derive(Debug)]
pub(crate) struct Page {
    pub name: String,
    pub category: String,
    pub deleted: bool,
    admins: HashSet<String>,
}

/// Who a live token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
    App,
    User { user_id: String },
    Page { page_id: String, user_id: String },
}

#[derive(Debug, Default)]
pub(crate) struct World {
    users: HashMap<String, User>,
    pages: HashMap<String, Page>,
    tokens: HashMap<String, TokenRec>,
    /// (page, user) -> the current page token minted through that user.
    current: HashMap<(String, String), String>,
    /// Page -> permissions its tokens no longer carry, minted later or not: the person took them
    /// away from the app, which re-issuing the page token does not undo.
    revoked_scopes: HashMap<String, HashSet<String>>,
    seq: u64,
    /// The app whose tokens this world issues; a new page starts subscribed to it.
    app_id: String,
    /// Which apps receive each page's webhooks (`subscribed_apps`).
    pub subscriptions: Subscriptions,
}

fn new_token(prefix: &str) -> String {
    let mut t = String::with_capacity(prefix.len() + 64);
    t.push_str(prefix);
    t.extend(rand::rng().sample_iter(&Alphanumeric).take(64).map(char::from));
    t
}

impl World {
    pub fn new(app_id: &str) -> Self {
        Self { app_id: app_id.to_owned(), ..Self::default() }
    }

    pub fn add_user(&mut self, user_id: &str, now: i64) -> String {
        self.users.entry(user_id.to_owned()).or_default();
        self.mint_user_token(user_id, now)
    }

    pub fn mint_user_token(&mut self, user_id: &str, now: i64) -> String {
        let token = new_token("EAAU");
        let rec = TokenRec {
            kind: TokenKind::User,
            user_id: user_id.to_owned(),
            issued_at: now,
            expires_at: now + USER_TOKEN_TTL_SECS,
            data_access_expires_at: now + DATA_ACCESS_TTL_SECS,
            dead: None,
            scopes: SCOPES.map(str::to_owned).to_vec(),
        };
        self.tokens.insert(token.clone(), rec);
        token
    }

    pub fn add_page(&mut self, page_id: &str, name: &str) {
        if !self.pages.contains_key(page_id) {
            // As Chatwoot leaves a page it connected: subscribed to its app for its fields.
            let fields = shared::graph::CHATWOOT_SUBSCRIBED_FIELDS.map(str::to_owned).to_vec();
            self.subscriptions.set(page_id, &self.app_id, fields);
        }
        let page = self.pages.entry(page_id.to_owned()).or_insert_with(|| Page {
            name: String::new(),
            category: "Software".into(),
            deleted: false,
            admins: HashSet::new(),
        });
        page.name = name.to_owned();
        page.deleted = false;
    }

    pub fn grant(&mut self, user_id: &str, page_id: &str, now: i64) -> String {
        if !self.pages.contains_key(page_id) {
            self.add_page(page_id, page_id);
        }
        let user = self.users.entry(user_id.to_owned()).or_default();
        if !user.seq_of.contains_key(page_id) {
            self.seq += 1;
            user.pages.insert(self.seq, page_id.to_owned());
            user.seq_of.insert(page_id.to_owned(), self.seq);
        }
        if let Some(page) = self.pages.get_mut(page_id) {
            page.admins.insert(user_id.to_owned());
        }
        self.live_page_token(page_id, user_id, now)
    }

    pub fn revoke_role(&mut self, user_id: &str, page_id: &str) {
        self.unlink(user_id, page_id);
        if let Some(page) = self.pages.get_mut(page_id) {
            page.admins.remove(user_id);
        }
        self.kill_current(page_id, user_id, GraphError::no_role_on_page());
    }

    fn unlink(&mut self, user_id: &str, page_id: &str) {
        if let Some(user) = self.users.get_mut(user_id)
            && let Some(seq) = user.seq_of.remove(page_id)
        {
            user.pages.remove(&seq);
        }
    }

    pub fn delete_page(&mut self, page_id: &str) {
        let admins: Vec<String> = match self.pages.get_mut(page_id) {
            Some(page) => {
                page.deleted = true;
                page.admins.drain().collect()
            }
            None => return,
        };
        for user_id in admins {
            self.unlink(&user_id, page_id);
        }
    }

    fn kill_current(&mut self, page_id: &str, user_id: &str, err: GraphError) {
        let key = (page_id.to_owned(), user_id.to_owned());
        if let Some(token) = self.current.get(&key)
            && let Some(rec) = self.tokens.get_mut(token)
        {
            rec.dead = Some(err);
        }
    }

    pub fn kill_page_token(&mut self, page_id: &str, user_id: &str, err: GraphError) {
        self.kill_current(page_id, user_id, err);
    }

    pub fn kill_token(&mut self, token: &str, err: GraphError) {
        if let Some(rec) = self.tokens.get_mut(token) {
            rec.dead = Some(err);
        }
    }

    /// Every token of the page loses `scope`, and tokens minted for it later lack it too. A scan of
    /// all tokens: a test's action, not a request's.
    pub fn revoke_page_scope(&mut self, page_id: &str, scope: &str) {
        self.revoked_scopes.entry(page_id.to_owned()).or_default().insert(scope.to_owned());
        for rec in self.tokens.values_mut() {
            if matches!(&rec.kind, TokenKind::Page { page_id: p } if p == page_id) {
                rec.scopes.retain(|s| s != scope);
            }
        }
    }

    fn page_scopes(&self, page_id: &str) -> Vec<String> {
        let revoked = self.revoked_scopes.get(page_id);
        SCOPES.iter().filter(|s| !revoked.is_some_and(|r| r.contains(**s))).map(|s| (*s).to_owned()).collect()
    }

    pub fn set_user_token_expiry(&mut self, token: &str, expires_at: i64, data_access_expires_at: i64) {
        if let Some(rec) = self.tokens.get_mut(token) {
            rec.expires_at = expires_at;
            rec.data_access_expires_at = data_access_expires_at;
        }
    }

    pub fn page_token(&self, page_id: &str, user_id: &str) -> Option<String> {
        self.current.get(&(page_id.to_owned(), user_id.to_owned())).cloned()
    }

    pub fn is_token_valid_for_page(&self, page_id: &str, token: &str, now: i64) -> bool {
        matches!(self.check(token, now), Ok(Who::Page { page_id: p, .. }) if p == page_id)
    }

    pub fn page(&self, page_id: &str) -> Option<&Page> {
        self.pages.get(page_id).filter(|p| !p.deleted)
    }

    pub fn user_exists(&self, user_id: &str) -> bool {
        self.users.contains_key(user_id)
    }

    pub fn is_admin(&self, user_id: &str, page_id: &str) -> bool {
        self.page(page_id).is_some_and(|p| p.admins.contains(user_id))
    }

    pub fn token(&self, token: &str) -> Option<&TokenRec> {
        self.tokens.get(token)
    }

    /// The live page token for (page, user), minting a new one when there is none or the current
    /// one is dead. The caller checks that the user is admin.
    pub fn live_page_token(&mut self, page_id: &str, user_id: &str, now: i64) -> String {
        let key = (page_id.to_owned(), user_id.to_owned());
        if let Some(token) = self.current.get(&key)
            && self.tokens.get(token).is_some_and(|r| r.dead.is_none())
        {
            return token.clone();
        }
        let token = new_token("EAAP");
        let rec = TokenRec {
            kind: TokenKind::Page { page_id: page_id.to_owned() },
            user_id: user_id.to_owned(),
            issued_at: now,
            expires_at: 0,
            data_access_expires_at: now + DATA_ACCESS_TTL_SECS,
            dead: None,
            scopes: self.page_scopes(page_id),
        };
        self.tokens.insert(token.clone(), rec);
        self.current.insert(key, token.clone());
        token
    }

    /// Is this world token alive, and for whom? (App tokens are checked by the caller.)
    pub fn check(&self, token: &str, now: i64) -> Result<Who, GraphError> {
        let rec = self.tokens.get(token).ok_or_else(GraphError::cannot_parse_token)?;
        check_rec(self, rec, now)
    }

    /// `limit` pages of the user's accounts after the cursor `after`, and whether more follow.
    pub fn accounts(&self, user_id: &str, after: Option<u64>, limit: usize) -> (Vec<(u64, String)>, bool) {
        let Some(user) = self.users.get(user_id) else {
            return (Vec::new(), false);
        };
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut range = user.pages.range((lower, Bound::Unbounded));
        let items: Vec<(u64, String)> = range.by_ref().take(limit).map(|(s, p)| (*s, p.clone())).collect();
        let more = range.next().is_some();
        (items, more)
    }
}

fn check_rec(world: &World, rec: &TokenRec, now: i64) -> Result<Who, GraphError> {
    if let Some(err) = &rec.dead {
        return Err(err.clone());
    }
    match &rec.kind {
        TokenKind::User => {
            if rec.expires_at != 0 && rec.expires_at <= now {
                return Err(GraphError::session_expired(rec.expires_at, now));
            }
            if rec.data_access_expires_at != 0 && rec.data_access_expires_at <= now {
                return Err(GraphError::data_access_expired());
            }
            Ok(Who::User { user_id: rec.user_id.clone() })
        }
        TokenKind::Page { page_id } => {
            if world.page(page_id).is_none() {
                return Err(GraphError::no_such_object("GET", page_id));
            }
            if !world.is_admin(&rec.user_id, page_id) {
                return Err(GraphError::no_role_on_page());
            }
            Ok(Who::Page { page_id: page_id.clone(), user_id: rec.user_id.clone() })
        }
    }
}
