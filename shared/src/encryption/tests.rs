//! Checked against column values that real Rails wrote (and read) with Chatwoot's settings.

use std::io::Read as _;
use std::sync::{Arc, OnceLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use super::keys::Digest;
use super::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/rails_vectors.json");

#[derive(Deserialize)]
struct Fixture {
    key_sets: Vec<KeySet>,
    rails_boots: Vec<RailsBoot>,
    vectors: Vec<Vector>,
    python_envelopes_read_by_rails: Vec<RailsRead>,
    passthrough_reads: Vec<RailsRead>,
}

#[derive(Deserialize)]
struct KeySet {
    name: String,
    primary_key: String,
    deterministic_key: String,
    key_derivation_salt: String,
    derived: Derived,
}

#[derive(Deserialize)]
struct Derived {
    #[serde(rename = "SHA1")]
    sha1: DerivedHex,
    #[serde(rename = "SHA256")]
    sha256: DerivedHex,
}

#[derive(Deserialize)]
struct DerivedHex {
    key_hex: String,
    key_id: String,
}

#[derive(Deserialize)]
struct RailsBoot {
    key_set: String,
    digest_actually_used_for_primary_key: String,
    encryption_key_hex: String,
    encryption_key_id: String,
}

#[derive(Deserialize)]
struct Vector {
    id: String,
    case: String,
    role: String,
    digest: String,
    key_set: String,
    store_key_references: bool,
    plaintext: String,
    plaintext_bytesize: usize,
    header_keys: Vec<String>,
    compressed: bool,
    stored: String,
}

#[derive(Deserialize)]
struct RailsRead {
    case: String,
    kind: String,
    key_set: String,
    stored: String,
    expected_read: String,
    rails_read_ok: bool,
}

fn fixture() -> &'static Fixture {
    static FIXTURE_DATA: OnceLock<Fixture> = OnceLock::new();
    FIXTURE_DATA.get_or_init(|| {
        let json = std::fs::read_to_string(FIXTURE).expect("the Rails vectors are in tests/fixtures");
        serde_json::from_str(&json).expect("the Rails vectors parse")
    })
}

fn key_set(name: &str) -> &'static KeySet {
    fixture().key_sets.iter().find(|set| set.name == name).expect("a key set the vectors name")
}

/// PBKDF2 is slow in debug builds: each key set is derived once per test process (`for_keys` memoizes).
fn codec(name: &str) -> Codec {
    let set = key_set(name);
    Codec::for_keys(&Secret::new(&set.primary_key), &Secret::new(&set.key_derivation_salt))
}

fn ks1() -> Codec {
    codec("ks1")
}

/// Keys Chatwoot never had.
fn other_keys() -> Codec {
    Codec::for_keys(&Secret::new("a-different-primary-key-0123456789"), &Secret::new("a-different-salt-0123456789ab"))
}

fn keys_of(codec: &Codec) -> &Keys {
    codec.keys.as_deref().expect("a codec with keys")
}

fn digest(name: &str) -> Digest {
    match name {
        "SHA1" => Digest::Sha1,
        "SHA256" => Digest::Sha256,
        other => panic!("unknown digest {other}"),
    }
}

fn expected_hex<'a>(set: &'a KeySet, digest: &str) -> &'a DerivedHex {
    match digest {
        "SHA1" => &set.derived.sha1,
        _ => &set.derived.sha256,
    }
}

fn json(stored: &str) -> Value {
    serde_json::from_str(stored).expect("an envelope is JSON")
}

fn header<'a>(stored: &'a Value, name: &str) -> Option<&'a Value> {
    stored["h"].get(name)
}

fn b64(value: &Value) -> Vec<u8> {
    STANDARD.decode(value.as_str().expect("a string header")).expect("strict base64")
}

/// The column value rebuilt from its parts in Rails' layout: comparing it with the original string checks key order
/// and compactness, which a JSON parse would hide.
fn rails_layout(stored: &str) -> String {
    let value = json(stored);
    let mut out = format!(r#"{{"p":{},"h":{{"iv":{},"at":{}"#, value["p"], value["h"]["iv"], value["h"]["at"]);
    if let Some(i) = header(&value, "i") {
        out.push_str(&format!(r#","i":{i}"#));
    }
    if let Some(c) = header(&value, "c") {
        out.push_str(&format!(r#","c":{c}"#));
    }
    out.push_str("}}");
    out
}

fn header_names(stored: &str) -> Vec<String> {
    let mut names: Vec<String> = json(stored)["h"].as_object().expect("an object header").keys().cloned().collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    names.sort();
    names
}

/// An envelope whose header map was edited, laid out like Rails would.
fn edit_headers(stored: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut value = json(stored);
    edit(value["h"].as_object_mut().expect("an object header"));
    value.to_string()
}

/// What Chatwoot writes: a short token (uncompressed) or a 200-char one (compressed), with or without "i".
fn a_rails_vector(skr: bool, compressed: bool) -> &'static Vector {
    let case = if compressed { "fb_token_200" } else { "short" };
    fixture()
        .vectors
        .iter()
        .find(|v| v.role == "chatwoot_pinned" && v.store_key_references == skr && v.case == case)
        .expect("the vectors cover this case")
}

fn malformed(result: Result<Secret, Unreadable>) -> &'static str {
    match result {
        Err(Unreadable::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn derived_keys_and_key_ids_match_rails() {
    for set in &fixture().key_sets {
        let codec = codec(&set.name);
        let keys = keys_of(&codec);
        for (name, expected) in [("SHA1", &set.derived.sha1), ("SHA256", &set.derived.sha256)] {
            let key = keys.by_digest(digest(name));
            assert_eq!(hex::encode(key.secret()), expected.key_hex, "{} {name} key", set.name);
            assert_eq!(key.id(), expected.key_id, "{} {name} key id", set.name);
        }
        assert_eq!(keys.key_id(), set.derived.sha1.key_id, "we write with SHA1, as Chatwoot does");
    }
    assert_eq!(keys_of(&ks1()).key_id(), "059a");
    for boot in &fixture().rails_boots {
        let codec = codec(&boot.key_set);
        let key = keys_of(&codec).by_digest(digest(&boot.digest_actually_used_for_primary_key));
        assert_eq!(hex::encode(key.secret()), boot.encryption_key_hex);
        assert_eq!(key.id(), boot.encryption_key_id);
    }
}

#[test]
fn rails_vectors_have_the_documented_layout() {
    for v in &fixture().vectors {
        assert_eq!(v.plaintext.len(), v.plaintext_bytesize, "{}", v.id);
        assert_eq!(v.compressed, v.plaintext.len() > COMPRESS_OVER, "{}", v.id);
        assert_eq!(v.header_keys.iter().any(|k| k == "i"), v.store_key_references, "{}", v.id);
        assert_eq!(rails_layout(&v.stored), v.stored, "{}: compact, Rails' key order", v.id);
        let value = json(&v.stored);
        let in_order: Vec<&str> = ["iv", "at", "i", "c"].into_iter().filter(|k| header(&value, k).is_some()).collect();
        assert_eq!(in_order, v.header_keys, "{}", v.id);
        if let Some(i) = header(&value, "i") {
            assert_eq!(b64(i), expected_hex(key_set(&v.key_set), &v.digest).key_id.as_bytes(), "{}", v.id);
        }
        assert_eq!(header(&value, "c"), v.compressed.then_some(&Value::Bool(true)), "{}", v.id);
        assert!(is_envelope(&v.stored), "{}", v.id);
    }
}

#[test]
fn every_rails_vector_decrypts_sha256_ones_too() {
    let vectors = &fixture().vectors;
    assert_eq!(vectors.len(), 96);
    for v in vectors {
        let read = codec(&v.key_set).read(&v.stored).unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(read.expose(), v.plaintext, "{}", v.id);
    }
    assert!(vectors.iter().any(|v| v.digest == "SHA256"));
}

#[test]
fn vectors_without_key_reference_decrypt() {
    let without_i: Vec<&Vector> = fixture().vectors.iter().filter(|v| !v.store_key_references).collect();
    assert_eq!(without_i.len(), 48);
    for v in without_i {
        assert!(!v.header_keys.iter().any(|k| k == "i"), "{}", v.id);
        assert_eq!(
            codec(&v.key_set).read(&v.stored).map(|s| s.expose().to_owned()),
            Ok(v.plaintext.clone()),
            "{}",
            v.id
        );
    }
}

#[test]
fn envelopes_rails_read_from_an_independent_codec_read_the_same() {
    let reads = &fixture().python_envelopes_read_by_rails;
    assert_eq!(reads.len(), 102);
    for r in reads {
        assert!(r.rails_read_ok, "{}", r.case);
        assert_eq!(
            codec(&r.key_set).read(&r.stored).map(|s| s.expose().to_owned()),
            Ok(r.expected_read.clone()),
            "{}",
            r.case
        );
    }
}

/// Rails returned all of these unchanged. For plain text we agree. The "wrong digest" envelopes were passed through
/// only because each Rails boot held one digest's key; we hold both, so we decrypt them.
#[test]
fn passthrough_reads_plain_text_as_is_and_other_digest_envelopes_decrypted() {
    let reads = &fixture().passthrough_reads;
    assert_eq!(reads.len(), 30);
    for r in reads {
        assert!(r.rails_read_ok, "{}", r.case);
        assert_eq!(r.expected_read, r.stored, "{}: Rails passed it through", r.case);
        let read = codec(&r.key_set).read(&r.stored).unwrap_or_else(|e| panic!("{}: {e}", r.case));
        match r.kind.as_str() {
            "unencrypted_passthrough" => {
                assert!(!is_envelope(&r.stored), "{}", r.case);
                assert_eq!(read.expose(), r.stored, "{}", r.case);
            }
            "wrong_digest_passthrough" => {
                assert!(is_envelope(&r.stored), "{}", r.case);
                assert_eq!(read.expose(), "EAABwrongdigest", "{}: the token the harness encrypted", r.case);
            }
            kind => panic!("unknown kind {kind}"),
        }
    }
}

/// Where Rails would pass an envelope it cannot decrypt through as the token, we refuse.
#[test]
fn envelopes_under_other_keys_are_errors_not_tokens() {
    let other = other_keys();
    let envelopes = fixture()
        .vectors
        .iter()
        .map(|v| v.stored.as_str())
        .chain(fixture().passthrough_reads.iter().map(|r| r.stored.as_str()).filter(|s| is_envelope(s)));
    for stored in envelopes {
        let expected = match header(&json(stored), "i") {
            Some(i) => Unreadable::UnknownKey { key_id: String::from_utf8(b64(i)).expect("a hex id") },
            None => Unreadable::Undecryptable,
        };
        assert_eq!(other.read(stored).map(|_| ()), Err(expected));
    }
}

#[test]
fn write_then_read_gives_the_token_back() {
    let codec = ks1();
    let boundary = ["A".repeat(140), "A".repeat(141), String::new(), "é".repeat(5000)];
    for token in fixture().vectors.iter().map(|v| v.plaintext.clone()).chain(boundary) {
        let stored = codec.write(&Secret::new(&token));
        assert_eq!(codec.read(stored.expose()).map(|s| s.expose().to_owned()), Ok(token));
    }
}

#[test]
fn written_envelopes_have_rails_layout() {
    let codec = ks1();
    for v in &fixture().vectors {
        let stored = codec.write(&Secret::new(&v.plaintext));
        let stored = stored.expose();
        assert_eq!(rails_layout(stored), stored, "{}: compact, Rails' key order", v.id);
        let value = json(stored);
        let mut top: Vec<&String> = value.as_object().expect("an object").keys().collect();
        top.sort();
        assert_eq!(top, ["h", "p"]);
        let compressed = v.plaintext.len() > COMPRESS_OVER;
        let expected = if compressed { sorted(&["iv", "at", "i", "c"]) } else { sorted(&["iv", "at", "i"]) };
        assert_eq!(header_names(stored), expected, "{}", v.id);
        assert_eq!(b64(header(&value, "i").expect("i")), b"059a");
        assert_eq!(b64(header(&value, "iv").expect("iv")).len(), 12);
        assert_eq!(b64(header(&value, "at").expect("at")).len(), 16);
        assert!(is_envelope(stored));
    }
}

#[test]
fn compresses_only_over_140_bytes() {
    let codec = ks1();
    let at_140 = codec.write(&Secret::new("A".repeat(140)));
    let at_141 = codec.write(&Secret::new("A".repeat(141)));
    assert_eq!(header_names(at_140.expose()), sorted(&["iv", "at", "i"]));
    assert_eq!(header(&json(at_141.expose()), "c"), Some(&Value::Bool(true)));
    assert!(at_141.expose().ends_with(r#","c":true}}"#));
}

#[test]
fn every_write_has_a_fresh_iv() {
    let codec = ks1();
    let token = Secret::new("EAAGm0PX4ZCpsBAshort-token-123");
    let first = json(codec.write(&token).expose());
    let second = json(codec.write(&token).expose());
    assert_ne!(first["h"]["iv"], second["h"]["iv"]);
    assert_ne!(first["p"], second["p"]);
}

/// Same plaintext, same structure, so the same length as what Rails stored. (Compressed ones may differ: our deflater
/// is not Ruby's zlib.)
#[test]
fn uncompressed_envelopes_are_as_long_as_rails_ones() {
    let codec = ks1();
    let rails_with_i = fixture().vectors.iter().filter(|v| v.digest == "SHA1" && v.store_key_references);
    let mut checked = 0;
    for v in rails_with_i.filter(|v| !v.compressed) {
        assert_eq!(codec.write(&Secret::new(&v.plaintext)).expose().len(), v.stored.len(), "{}", v.id);
        checked += 1;
    }
    assert_eq!(checked, 20);
}

/// Decrypting what we wrote with the key Rails derived and a plain AEAD call, not through our code.
#[test]
fn our_envelopes_decrypt_with_the_rails_key_independently() {
    let codec = ks1();
    let key_hex = &key_set("ks1").derived.sha1.key_hex;
    let key = hex::decode(key_hex).expect("hex");
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
    for v in fixture().vectors.iter().filter(|v| v.role == "chatwoot_pinned") {
        let value = json(codec.write(&Secret::new(&v.plaintext)).expose());
        let mut sealed = b64(&value["p"]);
        sealed.extend(b64(&value["h"]["at"]));
        let iv = b64(&value["h"]["iv"]);
        let opened = cipher.decrypt(Nonce::from_slice(&iv), Payload { msg: &sealed, aad: b"" }).expect("opens");
        let plaintext = if header(&value, "c") == Some(&Value::Bool(true)) {
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(opened.as_slice()).read_to_end(&mut inflated).expect("zlib");
            inflated
        } else {
            opened
        };
        assert_eq!(plaintext, v.plaintext.as_bytes(), "{}", v.id);
    }
}

#[test]
fn without_keys_plain_text_passes_and_envelopes_are_refused() {
    let codec = Codec::plaintext();
    assert!(!codec.encrypts());
    assert!(ks1().encrypts());
    let token = Secret::new("EAABlegacyPlaintextToken0123456789");
    assert_eq!(codec.write(&token), token);
    assert_eq!(codec.read(token.expose()), Ok(token));
    for v in &fixture().vectors {
        assert_eq!(codec.read(&v.stored), Err(Unreadable::KeysUnset), "{}", v.id);
    }
}

#[test]
fn tampered_envelopes_are_undecryptable() {
    let codec = ks1();
    let v = a_rails_vector(true, false);
    let flip = |stored: &str, field: &str| {
        let mut value = json(stored);
        let slot = if field == "p" { &mut value["p"] } else { &mut value["h"][field] };
        let mut bytes = b64(slot);
        bytes[0] ^= 1;
        *slot = Value::String(STANDARD.encode(bytes));
        value.to_string()
    };
    for field in ["p", "iv", "at"] {
        assert_eq!(codec.read(&flip(&v.stored, field)), Err(Unreadable::Undecryptable), "{field}");
    }
    let without_i = a_rails_vector(false, false);
    assert_eq!(codec.read(&flip(&without_i.stored, "p")), Err(Unreadable::Undecryptable));
}

#[test]
fn malformed_envelopes_are_errors() {
    let codec = ks1();
    let v = a_rails_vector(true, false);
    let set = |name: &'static str, to: Value| edit_headers(&v.stored, move |h| drop(h.insert(name.into(), to)));
    let remove = |name: &'static str| edit_headers(&v.stored, move |h| drop(h.remove(name)));
    let b64v = |bytes: &[u8]| Value::String(STANDARD.encode(bytes));
    let payload = json(&v.stored)["p"].as_str().expect("p").to_owned();
    let with_payload = |p: &str| v.stored.replacen(&payload, p, 1);
    let cases = [
        with_payload("@@@@"),
        with_payload(&payload[1..]),
        with_payload(&format!("{}\\n{}", &payload[..8], &payload[8..])),
        with_payload(&format!("-_{}", &payload[2..])),
        set("iv", b64v(&[0; 8])),
        set("iv", b64v(&[0; 16])),
        set("iv", Value::Null),
        remove("iv"),
        set("at", b64v(&[0; 12])),
        set("at", Value::from(json(&v.stored)["h"]["at"].as_str().expect("at").trim_end_matches('='))),
        remove("at"),
        set("at", Value::from(16)),
        set("k", json(&v.stored)),
        set("i", b64v(b"not-a-key-id")),
        set("i", b64v(b"05")),
        set("i", Value::from("MDU5YQ")),
        set("c", Value::from("dHJ1ZQ==")),
        set("e", b64v(b"UTF-16LE")),
        set("e", Value::from(true)),
    ];
    for stored in &cases {
        assert!(is_envelope(stored), "{stored}");
        malformed(codec.read(stored));
    }
    assert_eq!(
        malformed(codec.read(&set("k", json(&v.stored)))),
        "envelope encryption (\"k\") is not used by Chatwoot"
    );
}

#[test]
fn tolerated_headers_still_read() {
    let codec = ks1();
    let v = a_rails_vector(true, false);
    let edits: [(&str, Value); 5] = [
        ("e", Value::from(STANDARD.encode("UTF-8"))),
        ("e", Value::from(STANDARD.encode("US-ASCII"))),
        ("c", Value::Bool(false)),
        ("c", Value::Null),
        ("x-unknown", Value::from("anything")),
    ];
    for (name, to) in edits {
        let stored = edit_headers(&v.stored, |h| drop(h.insert(name.into(), to)));
        assert_eq!(codec.read(&stored).map(|s| s.expose().to_owned()), Ok(v.plaintext.clone()), "{name}");
    }
}

#[test]
fn strings_that_are_not_envelopes_are_plain_tokens() {
    let plain = [
        "",
        "x",
        "EAABlegacyPlaintextToken0123456789",
        "{",
        "{}",
        "{\"p\":\"iA==\"}",
        "{\"h\":{}}",
        "{\"p\":1,\"h\":{}}",
        "{\"p\":\"iA==\",\"h\":\"iv\"}",
        "{\"p\":\"iA==\",\"h\":[]}",
        "{\"p\":\"iA==\",\"h\":{}",
        "{\"not\":\"an envelope\"}",
        "[\"p\",\"h\"]",
        "\"{\\\"p\\\":\\\"\\\"}\"",
        "null",
    ];
    for stored in plain {
        assert!(!is_envelope(stored), "{stored}");
        assert_eq!(ks1().read(stored).map(|s| s.expose().to_owned()), Ok(stored.to_owned()));
        assert_eq!(Codec::plaintext().read(stored).map(|s| s.expose().to_owned()), Ok(stored.to_owned()));
    }
}

/// Sealed with the real write key, so only the inflate step can object.
fn sealed_with(codec: &Codec, payload: Vec<u8>, compressed: bool) -> String {
    let key = keys_of(codec).writer();
    envelope::format(&key.seal(payload), key.id(), compressed)
}

#[test]
fn bad_compressed_payloads_are_malformed() {
    let codec = ks1();
    let bomb = deflate(&vec![0u8; 4 * 1024 * 1024]);
    assert!(bomb.len() < 8 * 1024);
    assert_eq!(
        malformed(codec.read(&sealed_with(&codec, bomb, true))),
        "the compressed payload inflates beyond 64 KiB"
    );
    let just_fits = deflate(&vec![b'A'; INFLATE_LIMIT]);
    assert_eq!(codec.read(&sealed_with(&codec, just_fits, true)).map(|s| s.expose().len()), Ok(INFLATE_LIMIT));
    malformed(codec.read(&sealed_with(&codec, b"not zlib at all".to_vec(), true)));
    let mut truncated = deflate(&[b'A'; 300]);
    truncated.truncate(truncated.len() - 4);
    malformed(codec.read(&sealed_with(&codec, truncated, true)));
    let uncompressed_but_flagged =
        edit_headers(&a_rails_vector(true, false).stored, |h| drop(h.insert("c".into(), Value::Bool(true))));
    malformed(codec.read(&uncompressed_but_flagged));
}

#[test]
fn a_plaintext_that_is_not_utf8_is_malformed() {
    let codec = ks1();
    assert_eq!(
        malformed(codec.read(&sealed_with(&codec, vec![0xff, 0xfe, b'a'], false))),
        "the decrypted token is not UTF-8"
    );
}

#[test]
fn error_messages_guide_the_operator_and_hold_no_secrets() {
    let set = key_set("ks1");
    let v = a_rails_vector(true, true);
    let value = json(&v.stored);
    let forbidden = [
        set.primary_key.as_str(),
        set.deterministic_key.as_str(),
        set.key_derivation_salt.as_str(),
        set.derived.sha1.key_hex.as_str(),
        set.derived.sha256.key_hex.as_str(),
        &set.derived.sha1.key_hex[..16],
        v.plaintext.as_str(),
        &v.plaintext[..12],
        value["p"].as_str().expect("p"),
        value["h"]["iv"].as_str().expect("iv"),
        value["h"]["at"].as_str().expect("at"),
    ];
    let errors = [
        Codec::plaintext().read(&v.stored),
        other_keys().read(&v.stored),
        other_keys().read(&a_rails_vector(false, true).stored),
        ks1().read(&edit_headers(&v.stored, |h| drop(h.insert("iv".into(), Value::from("x"))))),
    ]
    .map(|result| result.expect_err("an error"));
    for error in &errors {
        let message = error.to_string();
        for secret in forbidden {
            assert!(!message.contains(secret), "{message}");
        }
        assert!(
            message.contains("ACTIVE_RECORD_ENCRYPTION_") || matches!(error, Unreadable::Malformed(_)),
            "{message}"
        );
    }
    let keys_unset = errors[0].to_string();
    for var in ["PRIMARY_KEY", "DETERMINISTIC_KEY", "KEY_DERIVATION_SALT"] {
        assert!(keys_unset.contains(&format!("ACTIVE_RECORD_ENCRYPTION_{var}")), "{keys_unset}");
    }
    assert!(keys_unset.contains("Chatwoot's .env"));
    assert!(errors[1].to_string().contains("059a"), "the key id names which keys Chatwoot used");
}

#[test]
fn debug_shows_no_key_material() {
    let set = key_set("ks1");
    let codec = ks1();
    let keys = keys_of(&codec);
    let secret_bytes = format!("{:?}", keys.writer().secret());
    let shown = [format!("{codec:?}"), format!("{keys:?}"), format!("{:?}", Codec::plaintext())];
    for debug in &shown {
        for secret in
            [&set.primary_key, &set.key_derivation_salt, &set.derived.sha1.key_hex, &set.derived.sha256.key_hex]
        {
            assert!(!debug.contains(secret.as_str()), "{debug}");
        }
        assert!(!debug.contains(&secret_bytes[1..12]), "{debug}");
    }
    assert!(shown[0].contains("059a") && shown[0].contains("039e"), "{}", shown[0]);
}

#[test]
fn for_keys_derives_once_per_key_pair() {
    assert!(Arc::ptr_eq(ks1().keys.as_ref().expect("keys"), ks1().keys.as_ref().expect("keys")));
    assert!(!Arc::ptr_eq(ks1().keys.as_ref().expect("keys"), other_keys().keys.as_ref().expect("keys")));
    assert_ne!(fingerprint(&Secret::new("ab"), &Secret::new("c")), fingerprint(&Secret::new("a"), &Secret::new("bc")),);
}

/// Every one-character edit of real envelopes: whatever comes back, nothing panics, and a value that still reads
/// either is the token or is not an envelope any more.
#[test]
fn never_panics_on_edited_envelopes() {
    let codec = ks1();
    for v in [a_rails_vector(true, false), a_rails_vector(false, true)] {
        for at in v.stored.char_indices().map(|(at, _)| at) {
            for replacement in ["", "A", "\"", "{", "}", "=", "1", "é", "\\", "\u{0}"] {
                let mut edited = v.stored.clone();
                edited.replace_range(at..at + 1, replacement);
                if let Ok(read) = codec.read(&edited) {
                    assert!(read.expose() == v.plaintext || !is_envelope(&edited), "{edited}");
                }
            }
        }
    }
    let deep = format!("{}{}", "{\"p\":".repeat(10_000), "}".repeat(10_000));
    assert_eq!(codec.read(&deep).map(|s| s.expose().len()), Ok(deep.len()));
}
