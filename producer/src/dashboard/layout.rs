//! The document around every dashboard page: styles, the small inline script (progressive
//! enhancement of "Try auto refresh"), and the security headers. Inline code runs only with the
//! per-response nonce of the Content-Security-Policy.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use maud::{Markup, PreEscaped, html};

use super::locale::Locale;

const STYLE: &str = r#"
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; --card:#fff;
  --ok:#1a7f37; --ok-bg:#dafbe1; --blue:#0969da; --blue-bg:#ddf4ff; --red:#cf222e; --red-bg:#ffebe9;
  --amber:#9a6700; --amber-bg:#fff8c5; --gray-bg:#eff2f5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:20px 24px 48px; }
header.top { display:flex; align-items:center; gap:16px; flex-wrap:wrap; padding:14px 24px; background:#24292f; color:#fff; }
header.top h1 { font-size:18px; margin:0; flex:1; }
header.top h1 small { display:block; font-size:12px; font-weight:400; color:#c9d1d9; }
header.top a, header.top .who { color:#c9d1d9; }
header.top a.on { color:#fff; font-weight:600; text-decoration:none; }
header.top form { margin:0; }
header.top button { background:transparent; color:#fff; border:1px solid #6e7781; border-radius:6px; padding:4px 10px; cursor:pointer; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px; }
h2 { font-size:15px; margin:0 0 10px; }
.counts { display:flex; gap:8px; flex-wrap:wrap; margin-bottom:16px; }
.counts a { display:flex; align-items:baseline; gap:6px; padding:8px 12px; border-radius:8px; border:1px solid var(--line); background:var(--card); color:var(--fg); text-decoration:none; }
.counts a .n { font-size:20px; font-weight:600; }
.counts a.on { outline:2px solid var(--blue); }
.panels { display:grid; grid-template-columns:minmax(220px,1fr) 3fr; gap:16px; margin-bottom:16px; }
.panels.single { grid-template-columns:1fr; }
@media (max-width: 800px) { .panels { grid-template-columns:1fr; } }
.queue dl { display:grid; grid-template-columns:1fr auto; gap:6px 12px; margin:0; }
.queue dt { color:var(--muted); } .queue dd { margin:0; font-weight:600; text-align:right; font-variant-numeric:tabular-nums; }
.queue dd.bad { color:var(--red); }
svg.chart { width:100%; height:auto; display:block; }
svg.chart text { font:11px system-ui,sans-serif; fill:var(--muted); }
.legend { display:flex; gap:14px; flex-wrap:wrap; margin-top:6px; color:var(--muted); font-size:12px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
.o-healthy { background:var(--ok); } .o-refreshed { background:var(--blue); } .o-retrying { background:#d4a72c; } .o-failed { background:var(--red); }
table.inboxes { width:100%; border-collapse:collapse; background:var(--card); }
table.inboxes th { text-align:left; font-weight:600; color:var(--muted); font-size:12px; border-bottom:1px solid var(--line); padding:8px 10px; }
table.inboxes td { border-top:1px solid var(--line); padding:9px 10px; vertical-align:top; }
table.inboxes tr.banner-row td, table.inboxes tr.notice-row td { border-top:0; padding-top:0; }
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
.muted { color:var(--muted); }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
.s-healthy { color:var(--ok); background:var(--ok-bg); } .s-refreshed { color:var(--blue); background:var(--blue-bg); }
.s-reauthorization_required { color:var(--red); background:var(--red-bg); } .s-retrying { color:var(--amber); background:var(--amber-bg); }
.s-unknown { color:var(--muted); background:var(--gray-bg); }
.warn { color:var(--red); font-size:15px; margin-right:4px; cursor:help; }
.banner { border:1px solid #ffcecb; border-left:4px solid var(--red); background:var(--red-bg); border-radius:6px; padding:10px 14px; }
.banner strong.title { color:var(--red); font-size:14px; }
.banner p { margin:4px 0; }
.banner .graph { font-size:12px; color:var(--muted); overflow-wrap:anywhere; }
.banner.compact { padding:6px 12px; }
.banner.compact .actions { margin-top:4px; }
.groups { display:grid; gap:10px; margin-bottom:16px; }
.groups ul.group-inboxes { margin:4px 0; padding-left:18px; columns:2 240px; }
.groups .more-groups { margin:0; }
.table-head { display:flex; gap:12px; align-items:center; flex-wrap:wrap; margin-bottom:10px; }
.table-head h2 { margin:0; flex:1; }
form.search { display:flex; gap:6px; align-items:center; margin:0; }
form.search label { color:var(--muted); font-size:12px; }
form.search input { padding:5px 8px; border:1px solid var(--line); border-radius:6px; font:inherit; min-width:260px; }
.actions { display:flex; gap:10px; align-items:center; flex-wrap:wrap; margin-top:8px; }
.actions form { margin:0; }
.btn { display:inline-block; padding:5px 12px; border-radius:6px; font:inherit; font-weight:600; cursor:pointer; text-decoration:none; border:1px solid; }
.btn.primary { background:var(--red); border-color:var(--red); color:#fff; }
.btn.primary[disabled] { opacity:.6; cursor:progress; }
.btn.secondary { background:#fff; border-color:var(--line); color:var(--fg); }
.result { margin:0; font-weight:600; }
.result.progress { color:var(--muted); } .result.ok { color:var(--ok); } .result.error { color:var(--red); }
.notice { border-left:4px solid var(--ok); background:var(--ok-bg); border-radius:6px; padding:8px 14px; color:var(--ok); font-weight:600; }
.notice.pending { border-color:#d4a72c; background:var(--amber-bg); color:var(--amber); }
.pager { display:flex; gap:12px; align-items:center; margin-top:10px; color:var(--muted); }
.empty { padding:24px; text-align:center; color:var(--muted); }
.login { max-width:420px; margin:10vh auto; }
.login label { display:block; font-weight:600; margin:12px 0 4px; }
.login input { width:100%; padding:8px 10px; border:1px solid var(--line); border-radius:6px; font:inherit; }
.login .btn { margin-top:14px; background:#1f883d; border-color:#1f883d; color:#fff; }
.error { color:var(--red); background:var(--red-bg); border-radius:6px; padding:8px 12px; }
.langs { font-size:12px; }
nav.tabs { display:flex; gap:4px; margin-bottom:14px; border-bottom:1px solid var(--line); }
nav.tabs a { padding:6px 14px; color:var(--fg); text-decoration:none; border-bottom:2px solid transparent; }
nav.tabs a.on { border-color:var(--blue); font-weight:600; }
.queue-page section.card { margin-bottom:16px; }
.queue-page .table-head form { margin:0; }
.queue-page td.actions { display:table-cell; }
.queue-page td.actions form { display:inline-block; margin:0 6px 4px 0; }
pre.payload { margin:6px 0 0; padding:8px; background:var(--bg); border-radius:6px; max-width:420px; max-height:240px; overflow:auto; white-space:pre-wrap; overflow-wrap:anywhere; }
.queue-page .schedule p { margin:4px 0; }
"#;

/// "Try auto refresh" without a page load: shows progress, then swaps in the inbox's new rows.
/// Forms with `data-confirm` (the queue page's "Discard all") ask first.
const SCRIPT: &str = r#"
document.addEventListener('submit', function (ev) {
  var form = ev.target;
  if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) ev.preventDefault();
});
document.addEventListener('submit', async function (ev) {
  var form = ev.target;
  if (!form || !form.dataset || !form.dataset.refresh) return;
  ev.preventDefault();
  var button = form.querySelector('button');
  var out = document.getElementById('result-' + form.dataset.refresh);
  button.disabled = true;
  out.className = 'result progress';
  out.textContent = form.dataset.progress;
  try {
    var resp = await fetch(form.action, { method: 'POST', credentials: 'same-origin', headers: { 'Accept': 'application/json' } });
    var body = await resp.json();
    var block = document.getElementById('inbox-' + form.dataset.refresh);
    if (body.html && block) {
      block.outerHTML = body.html;
    } else {
      out.className = 'result error';
      out.textContent = body.message || form.dataset.failed;
      button.disabled = false;
    }
  } catch (e) {
    out.className = 'result error';
    out.textContent = form.dataset.failed;
    button.disabled = false;
  }
});
"#;

/// A whole HTML page around `body`.
pub fn page(status: StatusCode, locale: Locale, title: &str, body: Markup) -> Response {
    let nonce: String = rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect();
    let html = html! {
        (PreEscaped("<!doctype html>\n"))
        html lang=(locale.html_lang()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
            }
            body {
                (body)
                script nonce=(nonce) { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string();
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    no_store(&mut resp);
    resp
}

/// Headers every dashboard answer carries: never cached, never sniffed, never framed.
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie, Accept-Language"));
}

/// The top bar: title, language switch, and (signed in) who and "Sign out".
pub fn top_bar(locale: Locale, who: Option<&str>, here: &str) -> Markup {
    let t = locale.t();
    let sep = if here.contains('?') { '&' } else { '?' };
    let (en, vi) = match locale.lang {
        super::locale::Lang::En => (Some("on"), None),
        super::locale::Lang::Vi => (None, Some("on")),
    };
    html! {
        header.top {
            h1 { (t.title) small { (t.subtitle) } }
            span.langs {
                a href={ (here) (sep) "lang=en" } class=[en] { "English" }
                " · "
                a href={ (here) (sep) "lang=vi" } class=[vi] { "Tiếng Việt" }
            }
            @if let Some(who) = who {
                span.who { (who) }
                form method="post" action=(locale.link("/logout")) { button type="submit" { (t.sign_out) } }
            }
        }
    }
}
