//! A page's webhook subscriptions: `GET /{page_id}/subscribed_apps` (which apps receive the page's
//! webhooks, and for which fields) and `POST /{page_id}/subscribed_apps` (subscribe the app of the
//! page token). Both with the page token, its `appsecret_proof`, and Graph's text scrubbed like
//! every other call's.

use serde_json::Value;

use super::{
    ErrorKind, GraphClient, GraphError,
    answer::interpret,
    client::{check_page_id, describe, read_limited},
    proof::appsecret_proof,
};
use crate::secret::Secret;

/// The fields Chatwoot subscribes a page to when Rails creates its channel
/// (`Channel::FacebookPage#subscribe`, `app/models/channel/facebook_page.rb` in chatwoot/chatwoot at
/// commit 0023e4dfa529bd5f8a7909a529db2dd18bc3be31):
/// `subscribed_fields: %w[feed messages message_deliveries message_echoes message_reads standby
/// messaging_handovers messaging_postbacks]`. We send the same list, in the same order.
pub const CHATWOOT_SUBSCRIBED_FIELDS: [&str; 8] = [
    "feed",
    "messages",
    "message_deliveries",
    "message_echoes",
    "message_reads",
    "standby",
    "messaging_handovers",
    "messaging_postbacks",
];

/// The field without which a page's messages never reach Chatwoot.
pub const MESSAGES_FIELD: &str = "messages";

/// `subscribed_apps` pages to follow at most: a page has a handful of apps; a loop in
/// `paging.next` must not keep a worker busy.
const MAX_APP_PAGES: usize = 100;

/// One app subscribed to a page's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribedApp {
    pub id: String,
    pub name: Option<String>,
    pub subscribed_fields: Vec<String>,
}

impl SubscribedApp {
    /// Whether this entry is `app_id` receiving the page's messages.
    pub fn delivers_messages_to(&self, app_id: &str) -> bool {
        self.id == app_id && self.subscribed_fields.iter().any(|f| f == MESSAGES_FIELD)
    }
}

/// One page of `subscribed_apps`: its apps and the `paging.next` URL, when Graph gave one.
pub(crate) struct AppsPage {
    pub apps: Vec<SubscribedApp>,
    pub next: Option<String>,
}

impl GraphClient {
    /// `GET /{page_id}/subscribed_apps` with the page token: every app subscribed to the page,
    /// following `paging.next` to the end.
    pub async fn subscribed_apps(&self, page_id: &str, page_token: &Secret) -> Result<Vec<SubscribedApp>, GraphError> {
        check_page_id(page_id)?;
        let url = format!("{}/{page_id}/subscribed_apps", self.settings().base_url);
        let body = self.get_token_call(&url, page_token, &[], &[]).await?;
        let first = apps_page(&body)?;
        self.rest_of_apps(first, page_token).await
    }

    /// The apps of `first` and of every page after it.
    pub(crate) async fn rest_of_apps(
        &self,
        first: AppsPage,
        page_token: &Secret,
    ) -> Result<Vec<SubscribedApp>, GraphError> {
        let mut apps = first.apps;
        let mut next = first.next;
        for _ in 0..MAX_APP_PAGES {
            let Some(link) = next.take() else { return Ok(apps) };
            let (url, params) = self.split_next(&link)?;
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = self.get_token_call(&url, page_token, &borrowed, &[]).await?;
            let page = apps_page(&body)?;
            apps.extend(page.apps);
            next = page.next;
        }
        Err(malformed("subscribed_apps paging did not end"))
    }

    /// `POST /{page_id}/subscribed_apps` with `subscribed_fields` and the page token: subscribes the
    /// token's app to the page for exactly these fields. Graph answers `{"success": true}`.
    pub async fn subscribe_app(&self, page_id: &str, page_token: &Secret, fields: &[&str]) -> Result<(), GraphError> {
        check_page_id(page_id)?;
        if fields.is_empty() {
            return Err(GraphError { kind: ErrorKind::Invalid, ..GraphError::transport("no subscribed_fields given") });
        }
        let settings = self.settings();
        let url = format!("{}/{page_id}/subscribed_apps", settings.base_url);
        // A form body, not the query: a POST's token stays out of every proxy's access log.
        let mut form = vec![("subscribed_fields", fields.join(",")), ("access_token", page_token.expose().to_owned())];
        if let Some(secret) = &settings.app_secret {
            form.push(("appsecret_proof", appsecret_proof(secret, page_token.expose())));
        }
        let response =
            self.http().post(&url).form(&form).send().await.map_err(|e| GraphError::transport(describe(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_limited(response).await?;
        let body = interpret(status, &headers, &bytes, &self.presented(&[page_token]))?;
        match body.get("success") {
            Some(Value::Bool(true)) => Ok(()),
            // Graph says no without an error object: a refusal we cannot classify.
            Some(Value::Bool(false)) => Err(GraphError {
                kind: ErrorKind::Invalid,
                http_status: Some(status.as_u16()),
                ..GraphError::transport("Graph answered success: false to the subscription")
            }),
            _ => Err(malformed("the subscription answer has no success")),
        }
    }
}

/// Reads one `{"data": [{"id", "name", "subscribed_fields": [...]}], "paging": {"next"}}` answer.
pub(crate) fn apps_page(body: &Value) -> Result<AppsPage, GraphError> {
    let data =
        body.get("data").and_then(Value::as_array).ok_or_else(|| malformed("subscribed_apps answer has no data"))?;
    let mut apps = Vec::with_capacity(data.len());
    for entry in data {
        // An entry we cannot read might be our app: calling it absent would subscribe on no
        // evidence, so the whole answer is malformed.
        let id = entry
            .get("id")
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
            .ok_or_else(|| malformed("a subscribed_apps entry has no id"))?;
        let fields = match entry.get("subscribed_fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(fields)) => fields
                .iter()
                // Strings, or (in some versions) objects naming the field.
                .filter_map(|f| f.as_str().or_else(|| f.get("name").and_then(Value::as_str)))
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err(malformed("subscribed_fields is not a list")),
        };
        let name = entry.get("name").and_then(Value::as_str).map(str::to_owned);
        apps.push(SubscribedApp { id, name, subscribed_fields: fields });
    }
    let next = body.pointer("/paging/next").and_then(Value::as_str).map(str::to_owned);
    Ok(AppsPage { apps, next })
}

fn malformed(what: &str) -> GraphError {
    GraphError::transport(format!("malformed Graph answer: {what}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_app_delivers_messages_only_with_the_messages_field() {
        let app = |id: &str, fields: &[&str]| SubscribedApp {
            id: id.into(),
            name: None,
            subscribed_fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        };
        assert!(app("1", &CHATWOOT_SUBSCRIBED_FIELDS).delivers_messages_to("1"));
        assert!(!app("1", &CHATWOOT_SUBSCRIBED_FIELDS).delivers_messages_to("2"));
        assert!(!app("1", &["feed", "message_reads"]).delivers_messages_to("1"));
        assert!(!app("1", &[]).delivers_messages_to("1"));
    }

    #[test]
    fn apps_pages_are_read_strictly() {
        let page = apps_page(&json!({"data": [
            {"id": "1", "name": "A", "subscribed_fields": ["messages", {"name": "feed"}]},
            {"id": 2, "category": "x"}
        ], "paging": {"next": "https://graph.facebook.com/v24.0/9/subscribed_apps?after=x"}}))
        .expect("readable");
        assert_eq!(page.apps.len(), 2);
        assert_eq!(page.apps[0].subscribed_fields, ["messages", "feed"]);
        assert_eq!((page.apps[1].id.as_str(), page.apps[1].subscribed_fields.len()), ("2", 0));
        assert!(page.next.is_some());
        for bad in [
            json!({}),
            json!({"data": {}}),
            json!({"data": [{"name": "no id"}]}),
            json!({"data": [{"id": "1", "subscribed_fields": "messages"}]}),
        ] {
            let e = apps_page(&bad).err().expect("malformed");
            assert_eq!(e.kind, ErrorKind::Transient, "{bad}");
        }
    }
}
