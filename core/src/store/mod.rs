//! How the embedded (sled) engine lays out what it keeps: the inbox's entries
//! ([`entry`]) and the index's values ([`value`]). Each reads bytes from disk that a torn
//! write or a hostile disk may have changed, so each decoder gives an error, never a panic
//! (fuzzed under `fuzz/`).

pub mod entry;
pub mod value;

/// What went wrong encoding or decoding.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The bytes are none of the layouts.
    #[error("{0}")]
    Corrupt(String),
    /// What was asked cannot be encoded (too large for a length field).
    #[error("{0}")]
    Invalid(String),
}

impl From<serde_json::Error> for CodecError {
    fn from(err: serde_json::Error) -> Self {
        CodecError::Corrupt(err.to_string())
    }
}

pub type Result<T, E = CodecError> = std::result::Result<T, E>;

/// Where an entry is: segment number, offset of its header, payload length. Locations
/// order as the inbox holds their entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub const ENCODED: usize = 20;
    /// Where the inbox begins.
    pub const START: Location = Location {
        segment: 0,
        offset: 0,
        len: 0,
    };

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.segment.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }

    pub fn decode(bytes: &[u8]) -> Option<Location> {
        let bytes: &[u8; Self::ENCODED] = bytes.get(..Self::ENCODED)?.try_into().ok()?;
        Some(Location {
            segment: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
            offset: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            len: u32::from_le_bytes(bytes[16..20].try_into().ok()?),
        })
    }
}
