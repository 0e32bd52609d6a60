//! The engine's snapshot as bytes: the state, the open baskets and the input offsets they correspond to.
//! Format: magic, format version, CRC-32 of the body, body (postcard). Files, atomic writes and where they live
//! are the serving crate's; this module only encodes and decodes, so the decoder can be fuzzed on its own.

use crate::baskets::OpenBasket;
use crate::data::{CustomerIdx, CustomerKey, Day};
use crate::state::State;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"SRCK";
/// Bump on any change to [`Checkpoint`]'s layout; older files are refused with a clear error.
pub const FORMAT_VERSION: u32 = 7;
/// Magic, version and CRC before the body.
const HEADER: usize = 12;

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    pub state: State,
    pub customer_keys: Vec<CustomerKey>,
    pub open_baskets: Vec<OpenBasket>,
    pub open_day: Day,
    /// The seq of the latest purchase in the state (None: none yet): where the state stands in the input's
    /// order, whichever partitions it came from.
    pub seq: Option<u64>,
    /// Next transactions offset to read, per partition.
    pub tx_offsets: Vec<(i32, i64)>,
    /// Next offsets of the reference topics: (topic, partition, offset).
    pub ref_offsets: Vec<(String, i32, i64)>,
    pub recommendations_sent: u64,
    /// The Kafka cluster the offsets belong to (None: the broker reports no id). A checkpoint restored against
    /// another cluster is refused: its offsets would skip purchases that cluster never gave us.
    pub cluster_id: Option<String>,
}

/// Format 6: open baskets without their shard, no `seq` (read as shard 0: one engine wrote it).
#[derive(Deserialize)]
struct CheckpointV6 {
    state: State,
    customer_keys: Vec<CustomerKey>,
    open_baskets: Vec<(CustomerIdx, u64)>,
    open_day: Day,
    tx_offsets: Vec<(i32, i64)>,
    ref_offsets: Vec<(String, i32, i64)>,
    recommendations_sent: u64,
    cluster_id: Option<String>,
}

/// Format 5: format 6 without `cluster_id` (read, then checked by offsets alone).
#[derive(Deserialize)]
struct CheckpointV5 {
    state: State,
    customer_keys: Vec<CustomerKey>,
    open_baskets: Vec<(CustomerIdx, u64)>,
    open_day: Day,
    tx_offsets: Vec<(i32, i64)>,
    ref_offsets: Vec<(String, i32, i64)>,
    recommendations_sent: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not a streamrec checkpoint or damaged: {0}")]
    Corrupt(String),
    #[error("format version {0}, this build reads {FORMAT_VERSION}; remove it to start fresh")]
    Version(u32),
}

/// The checkpoint as bytes (header and body).
pub fn encode(c: &Checkpoint) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_stdvec(c)?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The checkpoint `bytes` hold, checked: header, version (this one or 5), checksum, body, and a state whose
/// parts agree with each other.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
    let corrupt = |reason: &str| DecodeError::Corrupt(reason.to_string());
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(corrupt("bad header"));
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(4);
    if version != FORMAT_VERSION && version != 6 && version != 5 {
        return Err(DecodeError::Version(version));
    }
    let body = &bytes[HEADER..];
    if crc32fast::hash(body) != word(8) {
        return Err(corrupt("checksum mismatch"));
    }
    decode_body(version, body)
}

/// The body of a checkpoint of `version`, without the checksum (the fuzzer reaches the decoder through this).
pub fn decode_body(version: u32, body: &[u8]) -> Result<Checkpoint, DecodeError> {
    let corrupt = |reason: &str| DecodeError::Corrupt(reason.to_string());
    let shard0 = |open: Vec<(CustomerIdx, u64)>| open.into_iter().map(|(customer, seq)| OpenBasket { customer, seq, shard: 0 }).collect();
    let mut c: Checkpoint = match version {
        5 => {
            let v: CheckpointV5 = postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
            let CheckpointV5 { state, customer_keys, open_baskets, open_day, tx_offsets, ref_offsets, recommendations_sent } = v;
            Checkpoint { state, customer_keys, open_baskets: shard0(open_baskets), open_day, seq: None, tx_offsets, ref_offsets, recommendations_sent, cluster_id: None }
        }
        6 => {
            let v: CheckpointV6 = postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
            let CheckpointV6 { state, customer_keys, open_baskets, open_day, tx_offsets, ref_offsets, recommendations_sent, cluster_id } = v;
            Checkpoint { state, customer_keys, open_baskets: shard0(open_baskets), open_day, seq: None, tx_offsets, ref_offsets, recommendations_sent, cluster_id }
        }
        _ => postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?,
    };
    let keys = std::mem::take(&mut c.customer_keys);
    c.state.check(keys.len()).map_err(|e| corrupt(&e))?;
    c.state.restore_ids(&keys).map_err(|e| corrupt(&e))?;
    if c.open_baskets.iter().any(|b| b.customer as usize >= c.state.users.len()) {
        return Err(corrupt("an open basket names a customer the state does not have"));
    }
    Ok(c)
}
