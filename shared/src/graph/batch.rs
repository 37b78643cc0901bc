//! Graph batch requests: up to 50 page-token validations (or `subscribed_apps` reads) in one HTTP
//! call, each item with its own token and `appsecret_proof`, each answer classified on its own and
//! read with its own usage headers (each item counts against the limits on its own).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{
    GraphClient, GraphError,
    answer::{Presented, interpret},
    client::{check_page_id, describe, read_limited},
    proof::appsecret_proof,
    subscriptions::{SubscribedApp, apps_page},
    usage::Usage,
};
use crate::secret::Secret;

/// Graph's limit on items per batch.
pub const MAX_BATCH: usize = 50;

impl GraphClient {
    /// Validates `(page_id, page_token)` pairs in one call. `Err` means the call as a whole failed
    /// (retry it as transient or per its class); `Ok` has one result per item, in order: the usage
    /// its answer announced (with the batch answer's `X-App-Usage`), or its error. An item Graph
    /// did not finish (`null`) is a transient error.
    pub async fn validate_batch(
        &self,
        items: &[(String, Secret)],
    ) -> Result<Vec<Result<Usage, GraphError>>, GraphError> {
        let Some((answers, outer)) = self.batch_get(items, "", &[("fields", "id,name")]).await? else {
            return Ok(vec![]);
        };
        let max_wait = self.settings().max_wait;
        Ok(answers
            .into_iter()
            .zip(items)
            .map(|(answer, (page_id, _))| {
                let (value, headers) = answer?;
                match value
                    .get("id")
                    .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
                {
                    Some(id) if id == *page_id => Ok(Usage::from_headers(&headers, max_wait).with_outer(outer)),
                    _ => Err(GraphError::transport("malformed batch item: the answer is not about this page")),
                }
            })
            .collect())
    }

    /// `GET /{page_id}/subscribed_apps` for `(page_id, page_token)` pairs in one call, each item
    /// with its own token; an item whose answer goes on (`paging.next`) is followed with its own
    /// calls. `Err` and `Ok` mean what they mean for [`GraphClient::validate_batch`].
    pub async fn subscribed_apps_batch(
        &self,
        items: &[(String, Secret)],
    ) -> Result<Vec<Result<Vec<SubscribedApp>, GraphError>>, GraphError> {
        let Some((answers, _)) = self.batch_get(items, "/subscribed_apps", &[]).await? else {
            return Ok(vec![]);
        };
        let mut out = Vec::with_capacity(items.len());
        for (answer, (_, token)) in answers.into_iter().zip(items) {
            let apps = match answer.and_then(|(value, _)| apps_page(&value)) {
                Ok(first) if first.next.is_none() => Ok(first.apps),
                Ok(first) => self.rest_of_apps(first, token).await,
                Err(e) => Err(e),
            };
            out.push(apps);
        }
        Ok(out)
    }

    /// One batch of `GET {page_id}{edge}?{params}` items, each with its own token and proof.
    /// `None` for no items; else each item's JSON answer with its headers (or its error), in
    /// order, and the headers' usage of the batch answer itself.
    async fn batch_get(
        &self,
        items: &[(String, Secret)],
        edge: &str,
        params: &[(&str, &str)],
    ) -> Result<Option<(Vec<ItemAnswer>, Usage)>, GraphError> {
        if items.is_empty() {
            return Ok(None);
        }
        if items.len() > MAX_BATCH {
            return Err(GraphError {
                kind: super::ErrorKind::Invalid,
                ..GraphError::transport("batch larger than 50 items")
            });
        }
        let settings = self.settings();
        let mut requests = Vec::with_capacity(items.len());
        for (page_id, token) in items {
            check_page_id(page_id)?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                query.append_pair(k, v);
            }
            query.append_pair("access_token", token.expose());
            if let Some(secret) = &settings.app_secret {
                query.append_pair("appsecret_proof", &appsecret_proof(secret, token.expose()));
            }
            requests.push(json!({"method": "GET", "relative_url": format!("{page_id}{edge}?{}", query.finish())}));
        }
        // The batch itself needs a token: the app token when we have one, else the first item's.
        let fallback = match self.app_token() {
            Some(app) => app.clone(),
            None => items[0].1.clone(),
        };
        let mut form = vec![
            ("batch".to_owned(), Value::Array(requests).to_string()),
            ("access_token".to_owned(), fallback.expose().to_owned()),
            ("include_headers".to_owned(), "true".to_owned()),
        ];
        if let Some(secret) = &settings.app_secret {
            form.push(("appsecret_proof".to_owned(), appsecret_proof(secret, fallback.expose())));
        }
        let url = format!("{}/", settings.base_url);
        let response =
            self.http().post(&url).form(&form).send().await.map_err(|e| GraphError::transport(describe(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_limited(response).await?;
        // The batch as a whole carried every item's token: Graph may quote any of them.
        let all: Vec<&Secret> = items.iter().map(|(_, t)| t).chain([&fallback]).collect();
        let body = interpret(status, &headers, &bytes, &self.presented(&all))?;
        let answers = body
            .as_array()
            .ok_or_else(|| GraphError::transport("malformed Graph answer: batch answer is not an array"))?;
        if answers.len() != items.len() {
            return Err(GraphError::transport("malformed Graph answer: batch answer has the wrong length"));
        }
        let outer = Usage::from_headers(&headers, settings.max_wait);
        let answers = answers
            .iter()
            .zip(items)
            .map(|(answer, (_, token))| item_result(answer, &self.presented(&[token, &fallback])))
            .collect();
        Ok(Some((answers, outer)))
    }
}

/// One batch item's JSON answer and its headers, or its error.
type ItemAnswer = Result<(Value, HeaderMap), GraphError>;

fn item_result(answer: &Value, presented: &Presented<'_>) -> ItemAnswer {
    if answer.is_null() {
        return Err(GraphError::transport("Graph did not finish this batch item in time"));
    }
    let code = answer.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
    let status = reqwest::StatusCode::from_u16(code)
        .map_err(|_| GraphError::transport("malformed batch item: no status code"))?;
    let mut headers = HeaderMap::new();
    for h in answer.get("headers").and_then(Value::as_array).into_iter().flatten() {
        let (Some(name), Some(value)) = (h.get("name").and_then(Value::as_str), h.get("value").and_then(Value::as_str))
        else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(n, v);
        }
    }
    let body = answer.get("body").and_then(Value::as_str).unwrap_or("");
    let value = interpret(status, &headers, body.as_bytes(), presented)?;
    Ok((value, headers))
}
