//! Responses in the cache: the key a request is stored under, the stored record, and the split of a record's
//! bytes into per-key parts and a shared, deduplicated payload.
//!
//! This module owns the canonical request form and the envelope/payload split (both described in
//! `docs/keys.md`). It knows OpenAI's JSON shapes but nothing of HTTP or tiers: it hands the [`Manager`]
//! bytes and the byte ranges that belong to a key, and the manager stores them.
//!
//! [`Manager`]: crate::cache::Manager

mod canonical;
mod envelope;
pub mod legacy;
mod request_key;
mod scan;
mod store;

use thiserror::Error;

pub(crate) use envelope::unique_hex;
pub use envelope::{ENVELOPE_FIELDS, Fresh, per_key_ranges, response_range, splice_fresh};
pub use request_key::{
    CanonicalRequest, EXCLUDED_FIELDS, Endpoint, KEY_PREFIX, ModelIdentity, NUMERIC_FIELDS,
    canonical_request, is_deterministic, namespace_of, response_key,
};
pub use store::{fresh_response, get_fresh, put, record_bytes, stored_response};

/// Why a request could not be keyed or a stored response could not be rebuilt.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The request body is not a JSON object, so it has no fields to key on.
    #[error("the request body is {found}, not a JSON object")]
    RequestNotObject {
        /// What the body is instead, e.g. "an array".
        found: &'static str,
    },
    /// Stored payload bytes are not JSON; the entry is corrupt and should be dropped.
    #[error("stored response payload is not valid JSON; drop the entry")]
    Payload(#[source] serde_json::Error),
    /// Stored envelope bytes are not a JSON object; the entry is corrupt and should be dropped.
    #[error("stored response envelope is not a JSON object; drop the entry")]
    Envelope(#[source] serde_json::Error),
    /// Stored envelope bytes hold a field that is not an envelope field.
    #[error("stored response envelope has unexpected field {field:?}; drop the entry")]
    UnknownEnvelopeField {
        /// The unexpected field name.
        field: String,
    },
}
