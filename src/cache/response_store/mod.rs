//! Responses in the cache: the key a request is stored under, and the split of a response body into a
//! per-key envelope and a shared, deduplicated payload.
//!
//! This module owns the canonical request form and the envelope/payload byte forms (both described in
//! `docs/keys.md`). It knows OpenAI's JSON shapes but nothing of HTTP, tiers or storage.

mod canonical;
mod envelope;
mod record;
mod request_key;

use thiserror::Error;

pub(crate) use envelope::unique_hex;
pub use envelope::{ENVELOPE_FIELDS, Envelope, Payload, join_response, split_response};
pub use record::{join_record, split_record};
pub use request_key::{
    CanonicalRequest, EXCLUDED_FIELDS, Endpoint, KEY_PREFIX, ModelIdentity, NUMERIC_FIELDS,
    canonical_request, is_deterministic, namespace_of, response_key,
};

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
