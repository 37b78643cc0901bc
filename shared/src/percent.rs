//! Percent-encoding of everything but RFC 3986's unreserved characters: the one encoding for a
//! value placed in a URL, whether a database name in `DATABASE_URL` or a search in a dashboard link.

pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
