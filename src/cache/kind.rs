//! What a cache entry is: a response, a model, model metadata, a saved KV state or a semantic-cache vector.
//! The numeric codes are stored in every disk record (docs/format.md) and must never change (6 is taken by
//! the cache's internal zstd dictionaries).

use std::fmt;
use std::str::FromStr;

/// The kind of a cache entry; `--type` filters speak about these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An inference response (`[cache.response]`).
    Response,
    /// A model entry (`[cache.model]`).
    Model,
    /// Model metadata (`[cache.metadata]`).
    Metadata,
    /// A model's saved KV state for a prompt prefix (`[cache.kv]`, docs/kv-cache.md).
    Kv,
    /// The embedding of a cached request's last user message, under the request's response key
    /// (`[cache.semantic]`, docs/semantic-cache.md).
    Semantic,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 5] = [Kind::Response, Kind::Model, Kind::Metadata, Kind::Kv, Kind::Semantic];

    /// The code stored on disk.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Response => 1,
            Kind::Model => 2,
            Kind::Metadata => 3,
            Kind::Kv => 4,
            Kind::Semantic => 5,
        }
    }

    /// The kind for a code stored on disk.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Kind::Response),
            2 => Some(Kind::Model),
            3 => Some(Kind::Metadata),
            4 => Some(Kind::Kv),
            5 => Some(Kind::Semantic),
            _ => None,
        }
    }

    /// The lowercase name used by `--type` and in output.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Response => "response",
            Kind::Model => "model",
            Kind::Metadata => "metadata",
            Kind::Kv => "kv",
            Kind::Semantic => "semantic",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown cache type {s:?}; use response, model, metadata, kv or semantic"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
            assert_eq!(kind.name().parse::<Kind>(), Ok(kind));
        }
        assert_eq!(Kind::from_code(0), None);
        assert_eq!((Kind::Kv.code(), "KV".parse::<Kind>()), (4, Ok(Kind::Kv)));
        assert_eq!((Kind::Semantic.code(), Kind::from_code(6)), (5, None));
        assert!("models".parse::<Kind>().is_err());
    }
}
