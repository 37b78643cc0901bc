//! Opaque `/me/accounts` cursors: URL-safe base64 of a grant sequence number.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PREFIX: &str = "sim-page-cursor:";

pub(crate) fn encode(seq: u64) -> String {
    base64(format!("{PREFIX}{seq}").as_bytes())
}

/// `None` for anything that is not a cursor this simulator made.
pub(crate) fn decode(cursor: &str) -> Option<u64> {
    let bytes = unbase64(cursor.trim_end_matches('='))?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix(PREFIX)?.parse().ok()
}

fn base64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = ((n >> (18 - 6 * i)) & 0x3f) as usize;
            out.push(char::from(ALPHABET[idx]));
        }
    }
    out
}

fn unbase64(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in input.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        for n in [0, 1, 25, 99_999, u64::MAX] {
            assert_eq!(decode(&encode(n)), Some(n));
        }
        assert_eq!(decode("not a cursor!"), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode(&base64(b"other:5")), None);
    }
}
