//! Leases: a key per channel naming who holds it, until when. The channel locks and the pending
//! markers are both leases.
//!
//! A lease's value is `OWNER@DEADLINE_MS` (Redis `TIME`), so that a batch can take, renew and drop
//! the leases of all its channels with one `MGET` and one `MSET` or `DEL`: Redis has no multi-key
//! command that sets an expiry, and one `SET … PX` per channel was most of a healthy channel's
//! Redis cost. A lease taken alone also gets the native expiry, so a crashed holder's key goes
//! away by itself; a batch's keys stay until they are dropped or taken over, at most one per
//! channel. A value without `@` (written by hand, or by an older version with a native expiry) is
//! held until that key expires or is deleted.

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};

use crate::redis_ops::millis;

/// Lua: `held(value, now_ms)` → the owner when the lease is still held, else `nil`; and `now_ms()`.
/// Prepended to every script that reads a lease (the flag counter checks the channel lock so).
pub const LUA_HELPERS: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function held(value, now)
  if not value then return nil end
  local owner, deadline = string.match(value, '^(.*)@(%d+)$')
  if not owner then return value end
  if tonumber(deadline) > now then return owner end
  return nil
end
"#;

/// Lua: `claim(keep)`, the one body of `TAKE` and `RENEW`. KEYS: the leases. ARGV: ttl ms, whether
/// to set the native expiry too, then one owner per key. Writes `OWNER@DEADLINE` to each lease for
/// which `keep(holder, owner)` holds, with one `MGET` and one `MSET`; returns 1 where written.
const CLAIM: &str = r#"
local function claim(keep)
  local now = now_ms()
  local ttl = tonumber(ARGV[1])
  local values = redis.call('MGET', unpack(KEYS))
  local out, writes = {}, {}
  for i, key in ipairs(KEYS) do
    local owner = ARGV[i + 2]
    if keep(held(values[i], now), owner) then
      out[i] = 1
      writes[#writes + 1] = key
      writes[#writes + 1] = owner .. '@' .. (now + ttl)
    else
      out[i] = 0
    end
  end
  if #writes > 0 then
    redis.call('MSET', unpack(writes))
    if ARGV[2] == '1' then
      for i = 1, #writes, 2 do redis.call('PEXPIRE', writes[i], ttl) end
    end
  end
  return out
end
"#;

/// Takes each lease that is free (absent or lapsed).
const TAKE: &str = "return claim(function(holder, owner) return not holder end)";

/// Extends each lease its owner still holds.
const RENEW: &str = "return claim(function(holder, owner) return holder == owner end)";

/// KEYS: the leases. ARGV: one owner per key. Deletes each lease its owner still holds (or that
/// has lapsed while naming it); returns 1 where deleted.
const DROP: &str = r#"
local values = redis.call('MGET', unpack(KEYS))
local out, dels = {}, {}
for i, key in ipairs(KEYS) do
  local v = values[i]
  local owner = v and (string.match(v, '^(.*)@%d+$') or v)
  if owner == ARGV[i] then
    out[i] = 1
    dels[#dels + 1] = key
  else
    out[i] = 0
  end
end
if #dels > 0 then redis.call('DEL', unpack(dels)) end
return out
"#;

/// KEYS: one lease. ARGV: from, to, ttl ms. The lease passes from `from` to `to` (or is taken by
/// `to` when free), with the native expiry; 1 when it did.
const HAND_OVER: &str = r#"
local now = now_ms()
local owner = held(redis.call('GET', KEYS[1]), now)
if owner == ARGV[1] or not owner then
  redis.call('SET', KEYS[1], ARGV[2] .. '@' .. (now + tonumber(ARGV[3])), 'PX', ARGV[3])
  return 1
end
return 0
"#;

/// KEYS: one lease. Its holder now, or nil.
const HOLDER: &str = "return held(redis.call('GET', KEYS[1]), now_ms())";

/// A batch larger than this is sent in several scripts (Lua's `unpack` has a stack limit).
const PER_SCRIPT: usize = 1_000;

/// Each script's source and hash, built once per process rather than on every call.
static SCRIPTS: std::sync::LazyLock<[Script; 5]> = std::sync::LazyLock::new(|| {
    [TAKE, RENEW, DROP, HAND_OVER, HOLDER].map(|body| Script::new(&format!("{LUA_HELPERS}{CLAIM}{body}")))
});

#[derive(Clone, Copy)]
enum Op {
    Take,
    Renew,
    Drop,
    HandOver,
    Holder,
}

fn script(op: Op) -> &'static Script {
    &SCRIPTS[op as usize]
}

/// Native expiry for a lease taken alone; a batch's leases rely on their deadline (one `PEXPIRE`
/// per key would cost what the `MSET` saves).
fn native_expiry(n: usize) -> bool {
    n == 1
}

/// Takes each `(key, owner)` lease that is free; `true` where taken.
pub async fn take(
    redis: &mut ConnectionManager,
    leases: &[(String, String)],
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    run(redis, Op::Take, leases, Some(ttl)).await
}

/// Extends each lease its owner still holds; `false` where it was lost.
pub async fn renew(
    redis: &mut ConnectionManager,
    leases: &[(String, String)],
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    run(redis, Op::Renew, leases, Some(ttl)).await
}

/// Deletes each lease its owner still holds; `true` where deleted.
pub async fn drop(redis: &mut ConnectionManager, leases: &[(String, String)]) -> redis::RedisResult<Vec<bool>> {
    run(redis, Op::Drop, leases, None).await
}

/// Passes the lease from `from` to `to` (or gives it to `to` when free) for `ttl`.
pub async fn hand_over(
    redis: &mut ConnectionManager,
    key: &str,
    from: &str,
    to: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let done: i64 = script(Op::HandOver).key(key).arg(from).arg(to).arg(millis(ttl)).invoke_async(redis).await?;
    Ok(done == 1)
}

/// Who holds the lease now.
pub async fn holder(redis: &mut ConnectionManager, key: &str) -> redis::RedisResult<Option<String>> {
    script(Op::Holder).key(key).invoke_async(redis).await
}

async fn run(
    redis: &mut ConnectionManager,
    op: Op,
    leases: &[(String, String)],
    ttl: Option<Duration>,
) -> redis::RedisResult<Vec<bool>> {
    let script = script(op);
    let mut out = Vec::with_capacity(leases.len());
    for part in leases.chunks(PER_SCRIPT) {
        let mut call = script.prepare_invoke();
        if let Some(ttl) = ttl {
            call.arg(millis(ttl)).arg(if native_expiry(part.len()) { "1" } else { "0" });
        }
        for (key, owner) in part {
            call.key(key).arg(owner);
        }
        let answers: Vec<i64> = call.invoke_async(redis).await?;
        out.extend(answers.into_iter().map(|a| a == 1));
    }
    Ok(out)
}
