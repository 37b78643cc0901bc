//! `/{page_id}/subscribed_apps`: which apps receive a page's webhooks, for which fields. `GET`
//! lists them (paged like any edge), `POST` subscribes the token's app with `subscribed_fields`,
//! `DELETE` unsubscribes it; all three want a page token of that very page carrying
//! `pages_manage_metadata`, and answer Graph's errors otherwise.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::{
    call::Call,
    cursor,
    errors::GraphError,
    reply::Reply,
    sim::{Sim, lock, now},
    state::Who,
};

/// The permission every subscribed_apps call needs (Meta's reference for the edge).
pub(crate) const MANAGE_METADATA: &str = "pages_manage_metadata";

/// Page webhook fields Graph accepts in `subscribed_fields` (a subset of its list, every field
/// Chatwoot and common Messenger integrations use included).
const PAGE_FIELDS: [&str; 30] = [
    "feed",
    "mention",
    "name",
    "picture",
    "category",
    "description",
    "conversations",
    "inbox_labels",
    "standby",
    "messages",
    "message_mention",
    "message_reactions",
    "messaging_account_linking",
    "messaging_checkout_updates",
    "messaging_customer_information",
    "message_echoes",
    "message_edits",
    "message_deliveries",
    "messaging_game_plays",
    "messaging_optins",
    "messaging_optouts",
    "messaging_payments",
    "messaging_postbacks",
    "messaging_pre_checkouts",
    "message_reads",
    "messaging_referrals",
    "messaging_handovers",
    "messaging_policy_enforcement",
    "messaging_feedback",
    "leadgen",
];

/// What the simulated Graph knows about subscriptions, and the failures a test asked for.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// Page -> app id -> the fields that app receives.
    by_page: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Page -> what its next `POST subscribed_apps` answers instead of subscribing.
    failures: HashMap<String, Failure>,
}

#[derive(Debug)]
struct Failure {
    error: GraphError,
    /// Calls it still applies to; `None` = until cleared.
    remaining: Option<usize>,
}

impl Subscriptions {
    pub fn set(&mut self, page_id: &str, app_id: &str, fields: Vec<String>) {
        self.by_page.entry(page_id.to_owned()).or_default().insert(app_id.to_owned(), fields);
    }

    pub fn remove(&mut self, page_id: &str, app_id: &str) {
        if let Some(apps) = self.by_page.get_mut(page_id) {
            apps.remove(app_id);
        }
    }

    /// (app id, fields) of every app subscribed to the page, by app id.
    pub fn of(&self, page_id: &str) -> Vec<(String, Vec<String>)> {
        self.by_page
            .get(page_id)
            .map(|apps| apps.iter().map(|(a, f)| (a.clone(), f.clone())).collect())
            .unwrap_or_default()
    }

    pub fn fail(&mut self, page_id: &str, error: GraphError, times: Option<usize>) {
        self.failures.insert(page_id.to_owned(), Failure { error, remaining: times });
    }

    pub fn clear_failures(&mut self) {
        self.failures.clear();
    }

    /// The error the page's subscribe call answers now, counted as used.
    fn take_failure(&mut self, page_id: &str) -> Option<GraphError> {
        let failure = self.failures.get_mut(page_id)?;
        let error = failure.error.clone();
        if let Some(n) = failure.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.failures.remove(page_id);
            }
        }
        Some(error)
    }
}

pub(crate) fn handle(sim: &Sim, call: &Call, id: &str) -> Result<Reply, GraphError> {
    let token = call.token.as_deref().ok_or_else(GraphError::token_required)?;
    let mut world = lock(&sim.world);
    let who = sim.authenticate(&world, token, now())?;
    let page_id = match (id, &who) {
        ("me", Who::Page { page_id, .. }) => page_id.clone(),
        ("me", Who::User { .. }) => return Err(GraphError::nonexisting_field("subscribed_apps", "User")),
        ("me", Who::App) => return Err(GraphError::active_token_required()),
        (other, _) => other.to_owned(),
    };
    // Only a token of this very page may see or change whom its webhooks go to.
    match &who {
        Who::Page { page_id: own, .. } if *own == page_id && world.page(&page_id).is_some() => {}
        _ => return Err(GraphError::no_such_object(&call.method, &page_id)),
    }
    if !world.token(token).is_some_and(|t| t.scopes.iter().any(|s| s == MANAGE_METADATA)) {
        return Err(GraphError::from_code(
            200,
            None,
            &format!("(#200) Requires {MANAGE_METADATA} permission to manage the object"),
        ));
    }
    let app_id = sim.opts.app_id.clone();
    let subs = &mut world.subscriptions;
    match call.method.as_str() {
        "GET" => Ok(list(sim, call, &page_id, token, subs)),
        "POST" => {
            let fields = requested_fields(call.param("subscribed_fields"))?;
            if let Some(err) = subs.take_failure(&page_id) {
                return Err(err);
            }
            subs.set(&page_id, &app_id, fields);
            Ok(Reply::ok(&json!({"success": true})))
        }
        "DELETE" => {
            subs.remove(&page_id, &app_id);
            Ok(Reply::ok(&json!({"success": true})))
        }
        other => Err(GraphError::unsupported(other)),
    }
}

/// `subscribed_fields` as Graph takes it: `a,b,c` or a JSON array; every field must exist.
fn requested_fields(raw: Option<&str>) -> Result<Vec<String>, GraphError> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty());
    let Some(raw) = raw else {
        return Err(GraphError::param("(#100) The parameter subscribed_fields is required"));
    };
    let listed: Vec<String> = if raw.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(raw) {
            Ok(list) => list,
            Err(_) => return Err(GraphError::param("(#100) Param subscribed_fields must be an array of strings")),
        }
    } else {
        raw.split(',').map(|f| f.trim().to_owned()).collect()
    };
    let mut fields: Vec<String> = Vec::with_capacity(listed.len());
    for (i, field) in listed.into_iter().enumerate() {
        if !PAGE_FIELDS.contains(&field.as_str()) {
            return Err(GraphError::param(format!(
                "(#100) Param subscribed_fields[{i}] must be one of {{{}}} - got \"{field}\"",
                PAGE_FIELDS.join(", ")
            )));
        }
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

/// One page of the apps, by app id, with cursors and an absolute `paging.next` like any edge's.
fn list(sim: &Sim, call: &Call, page_id: &str, token: &str, subs: &Subscriptions) -> Reply {
    let apps = subs.of(page_id);
    let limit = match call.param("limit").and_then(|l| l.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 => n.min(sim.opts.page_size_max.max(1)),
        _ => sim.opts.page_size_default.max(1),
    };
    let start = call.param("after").and_then(cursor::decode).map_or(0, |i| usize::try_from(i).unwrap_or(0) + 1);
    let end = (start + limit).min(apps.len());
    let mut data = Vec::new();
    for (app_id, fields) in apps.get(start..end).unwrap_or_default() {
        let name = if *app_id == sim.opts.app_id { "Sim App".to_owned() } else { format!("App {app_id}") };
        data.push(json!({
            "category": "Business",
            "link": format!("https://www.facebook.com/games/?app_id={app_id}"),
            "name": name,
            "id": app_id,
            "subscribed_fields": fields,
        }));
    }
    let mut out = Map::new();
    out.insert("data".into(), Value::Array(data));
    if end > start {
        let after = cursor::encode((end - 1) as u64);
        let mut paging = Map::new();
        paging.insert("cursors".into(), json!({"before": cursor::encode(start as u64), "after": after}));
        if end < apps.len() {
            let version = call.path.version.as_deref().unwrap_or(&sim.opts.version);
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("access_token", token).append_pair("limit", &limit.to_string()).append_pair("after", &after);
            let next = format!("http://{}/{version}/{page_id}/subscribed_apps?{}", sim.addr, q.finish());
            paging.insert("next".into(), Value::from(next));
        }
        out.insert("paging".into(), Value::Object(paging));
    }
    Reply::ok(&Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_deduplicated() {
        let got = requested_fields(Some("messages, feed,messages")).expect("fields");
        assert_eq!(got, ["messages", "feed"]);
        assert_eq!(requested_fields(Some(r#"["standby"]"#)).expect("json form"), ["standby"]);
        for bad in [None, Some(""), Some("messages,bogus"), Some("[1]")] {
            let e = requested_fields(bad).expect_err("refused");
            assert_eq!((e.code, e.status), (100, 400), "{bad:?}");
        }
        let e = requested_fields(Some("messages,bogus")).expect_err("unknown");
        assert!(e.message.contains("subscribed_fields[1]") && e.message.ends_with("got \"bogus\""), "{}", e.message);
    }

    #[test]
    fn a_failure_applies_as_often_as_asked() {
        let mut s = Subscriptions::default();
        s.fail("1", GraphError::server_error(), Some(2));
        assert!(s.take_failure("1").is_some() && s.take_failure("1").is_some());
        assert!(s.take_failure("1").is_none());
        s.fail("1", GraphError::server_error(), None);
        for _ in 0..5 {
            assert!(s.take_failure("1").is_some());
        }
        s.clear_failures();
        assert!(s.take_failure("1").is_none());
    }
}
