//! The cache's clock and the one liveness rule: an entry's expiry is a wall-clock instant in milliseconds
//! since the Unix epoch, `0` meaning "never". Every tier, the index and the reports ask [`Expiry::is_live`]
//! instead of comparing numbers themselves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// When an entry stops being served: an instant in milliseconds since the Unix epoch, or never.
///
/// Stored on disk and in Redis as the raw `u64` ([`Expiry::as_ms`]), `0` for never (docs/format.md).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Expiry(u64);

impl Expiry {
    /// An entry that never expires.
    pub const NEVER: Expiry = Expiry(0);

    /// The expiry stored as `ms` (0 = never).
    pub const fn from_ms(ms: u64) -> Self {
        Self(ms)
    }

    /// `ttl` after `now_ms`; never when `ttl` is `None` or zero (a TTL of 0 means "no expiry" in the
    /// configuration).
    pub fn after(now_ms: u64, ttl: Option<Duration>) -> Self {
        match ttl {
            Some(ttl) if !ttl.is_zero() => Self(now_ms.saturating_add(ttl.as_millis() as u64)),
            _ => Self::NEVER,
        }
    }

    /// The raw value: milliseconds since the epoch, 0 for never.
    pub const fn as_ms(self) -> u64 {
        self.0
    }

    /// Whether the entry never expires.
    pub const fn is_never(self) -> bool {
        self.0 == 0
    }

    /// Whether an entry with this expiry may still be served at `now_ms`.
    pub const fn is_live(self, now_ms: u64) -> bool {
        self.0 == 0 || self.0 > now_ms
    }

    /// The time left at `now_ms`: `None` for never, zero once expired.
    pub fn remaining(self, now_ms: u64) -> Option<Duration> {
        (!self.is_never()).then(|| Duration::from_millis(self.0.saturating_sub(now_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_always_live_and_an_instant_is_live_until_it_passes() {
        assert!(Expiry::NEVER.is_live(u64::MAX));
        let at = Expiry::from_ms(1_000);
        assert!(at.is_live(999));
        assert!(!at.is_live(1_000));
        assert!(!at.is_live(5_000));
        assert_eq!(at.remaining(400), Some(Duration::from_millis(600)));
        assert_eq!(at.remaining(4_000), Some(Duration::ZERO));
        assert_eq!(Expiry::NEVER.remaining(4_000), None);
    }

    #[test]
    fn a_ttl_counts_from_now_and_none_or_zero_means_never() {
        assert_eq!(Expiry::after(10, None), Expiry::NEVER);
        assert_eq!(Expiry::after(10, Some(Duration::from_secs(2))).as_ms(), 2_010);
        assert!(Expiry::after(10, Some(Duration::ZERO)).is_never());
    }
}
