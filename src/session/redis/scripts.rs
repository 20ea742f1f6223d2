//! The store's Lua scripts. Each touches one session key and its index,
//! which share a hash slot in a cluster, so each runs atomically on one
//! server.

use redis::Script;

/// Sessions one SWEEP call removes at most.
pub const SWEEP_BATCH: usize = 1000;

/// Creates a session unless the index holds `cap` ids already (a negative
/// cap: no check, the cluster's counter holds it).
/// KEYS: session key, index. ARGV: value, now, ttl, cap, id.
/// Returns 1 when created, 0 when full, -1 when the id is taken.
const CREATE: &str = r"
local cap = tonumber(ARGV[4])
if cap >= 0 and redis.call('ZCARD', KEYS[2]) >= cap then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
return 1
";

/// Reads a live session and marks it seen; removes it if expired.
/// KEYS: session key, index. ARGV: now, ttl, id, want value ('1' or '0').
/// Returns the value (or 1 when not wanted) for a live session; 0 for an
/// unknown one; -1 when an expired one was removed from the index.
const GET: &str = r"
local seen = redis.call('ZSCORE', KEYS[2], ARGV[3])
local v = redis.call('GET', KEYS[1])
if (not seen) or (not v) or (tonumber(ARGV[1]) - tonumber(seen) > tonumber(ARGV[2])) then
  redis.call('DEL', KEYS[1])
  return -redis.call('ZREM', KEYS[2], ARGV[3])
end
redis.call('ZADD', KEYS[2], 'GT', ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] == '1' then return v end
return 1
";

/// Writes back an updated session if it still exists.
/// KEYS: session key, index. ARGV: value, ttl, id.
const PUT: &str = r"
if not redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) then return 0 end
return 1
";

/// Writes back an updated session only if it is still exactly as read
/// (compare-and-set). KEYS: session key, index. ARGV: value read, new
/// value, ttl, id. Returns 1 when written, 0 when the session is gone,
/// -1 when another write changed it since it was read.
const SWAP: &str = r"
if not redis.call('ZSCORE', KEYS[2], ARGV[4]) then return 0 end
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'XX', 'PX', ARGV[3])
return 1
";

/// Deletes a session. KEYS: session key, index. ARGV: id.
/// Returns how many ids left the index (0 or 1).
const REMOVE: &str = r"
redis.call('DEL', KEYS[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
";

/// Removes up to 1000 expired sessions of one index.
/// KEYS: index. ARGV: cutoff, the sessions' key prefix.
const SWEEP: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do redis.call('DEL', ARGV[2] .. id) end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
";

pub struct Scripts {
    pub create: Script,
    pub get: Script,
    pub put: Script,
    pub swap: Script,
    pub remove: Script,
    pub sweep: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            create: Script::new(CREATE),
            get: Script::new(GET),
            put: Script::new(PUT),
            swap: Script::new(SWAP),
            remove: Script::new(REMOVE),
            sweep: Script::new(SWEEP),
        }
    }
}
