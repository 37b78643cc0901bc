//! Scrubbing Graph's error text. Graph quotes a token it cannot parse ("Malformed access token
//! EAAG…"), so its text is scrubbed where it enters, before any log, table, Redis value, API body,
//! dashboard or webhook sees it: the secrets a call presented become `[redacted]`, and so does
//! anything shaped like a Facebook token, whoever's it is.
//!
//! A hand-written scanner rather than the `regex` crate: the one pattern is
//! `\b(EA|IG)[A-Za-z0-9]{20,}`, a dozen lines to scan, and not worth a new dependency (and its
//! compile time) in every binary.

/// What a secret is replaced by.
pub const REDACTED: &str = "[redacted]";

/// Alphanumerics after the `EA`/`IG` prefix for a word to count as a token. Real tokens have well
/// over a hundred; twenty keeps ordinary words such as "EASTERN" or "IGNORED" readable.
const MIN_TOKEN_TAIL: usize = 20;

/// `text` with every non-empty secret in `secrets` replaced, then with every token-shaped word
/// masked. Longer secrets go first, so the `APP_ID|SECRET` app token disappears whole instead of
/// leaving its app id around a redacted secret.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut ordered: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in ordered {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    mask_token_shapes(&out)
}

/// Masks `\b(EA|IG)[A-Za-z0-9]{20,}`: Facebook user and page tokens start with `EA`, Instagram
/// ones with `IG`.
pub fn mask_token_shapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied` is where the text not yet copied to `out` starts; `i` only ever stops on ASCII
    // bytes, which are char boundaries, so every slice below is valid UTF-8.
    let (mut copied, mut i) = (0, 0);
    while i + 1 < bytes.len() {
        let prefix = matches!(&bytes[i..i + 2], b"EA" | b"IG");
        if prefix && starts_word(text, i) {
            let tail = bytes[i + 2..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
            if tail >= MIN_TOKEN_TAIL {
                out.push_str(&text[copied..i]);
                out.push_str(REDACTED);
                i += 2 + tail;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// `\b` before position `at`: the text starts there, or the character before is not a word
/// character (alphanumeric or `_`, Unicode-aware like the regex).
fn starts_word(text: &str, at: usize) -> bool {
    text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "EAAGtP3OOrS4BAKzZCZBq9dXyZA1oZBtT1ZCv0ZBZBwZDZD";

    #[test]
    fn graph_malformed_token_message_loses_the_token() {
        let message = format!("Malformed access token {PAGE}");
        assert_eq!(scrub(&message, &[PAGE]), "Malformed access token [redacted]");
        // The backstop alone catches it too.
        assert_eq!(scrub(&message, &[]), "Malformed access token [redacted]");
    }

    #[test]
    fn presented_secrets_are_replaced_whatever_their_shape() {
        let message = "token not-an-EA-token-42 and secret s3cr3t and app 1234|s3cr3t, again not-an-EA-token-42";
        let out = scrub(message, &["not-an-EA-token-42", "s3cr3t", "1234|s3cr3t", ""]);
        assert_eq!(out, "token [redacted] and secret [redacted] and app [redacted], again [redacted]");
    }

    #[test]
    fn the_app_token_goes_whole_before_its_secret() {
        assert_eq!(scrub("bad app token 99|abc", &["abc", "99|abc"]), "bad app token [redacted]");
    }

    #[test]
    fn token_shapes_are_masked_only_as_whole_words() {
        let ig = format!("IG{}", "a1".repeat(15));
        let cases: &[(&str, String)] = &[
            (&format!("({PAGE})"), "([redacted])".into()),
            (&format!("{PAGE}."), "[redacted].".into()),
            (&format!("x{PAGE}"), format!("x{PAGE}")),
            (&format!("_{PAGE}"), format!("_{PAGE}")),
            (&format!("é{PAGE}"), format!("é{PAGE}")),
            (&format!("token={ig}&x"), "token=[redacted]&x".into()),
            (&format!("{PAGE} {PAGE}"), "[redacted] [redacted]".into()),
            ("EASTERN IGNORED EA IG E", "EASTERN IGNORED EA IG E".into()),
            (&format!("EA{}", "b".repeat(19)), format!("EA{}", "b".repeat(19))),
            (&format!("EA{}", "b".repeat(20)), "[redacted]".into()),
            ("", String::new()),
            ("…E", "…E".into()),
        ];
        for (input, want) in cases {
            assert_eq!(&mask_token_shapes(input), want, "{input}");
        }
    }

    #[test]
    fn non_ascii_text_around_tokens_survives() {
        let text = format!("Mã truy cập không hợp lệ: «{PAGE}» — thử lại");
        assert_eq!(scrub(&text, &[]), "Mã truy cập không hợp lệ: «[redacted]» — thử lại");
    }
}
