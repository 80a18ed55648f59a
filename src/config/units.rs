//! Sizes and durations as people write them in `.inferno.toml`, env vars and flags.
//!
//! A key's name carries its unit (`max_size_gb`, `ttl_hours`): a bare number is read in that unit, and a
//! string may name any unit (`"512MB"`, `"2GiB"`, `"90m"`, `"7d"`). Parsing is done by `bytesize` and
//! `humantime`; this module only adds the key's default unit and the serde glue.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One byte, the unit of keys such as `chunk_size`.
pub const BYTE: u64 = 1;
/// One kilobyte (10^3 bytes), the unit of `*_kb` keys. `KiB` in a string means 1024.
pub const KB: u64 = 1_000;
/// One gigabyte (10^9 bytes), the unit of `*_gb` keys. `GiB` in a string means 2^30.
pub const GB: u64 = 1_000_000_000;
/// Seconds per second, the unit of `*_seconds` keys.
pub const SECOND: u64 = 1;
/// Seconds per minute, the unit of `*_minutes` keys.
pub const MINUTE: u64 = 60;
/// Seconds per hour, the unit of `*_hours` keys.
pub const HOUR: u64 = 3_600;
/// Seconds per day, the unit of `*_days` keys.
pub const DAY: u64 = 86_400;

/// Parses a size such as `10GB`, `512KB`, `2GiB` or `4096` (a bare number is taken in `unit`).
pub fn parse_size(text: &str, unit: u64) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<f64>() {
        return number_to_units(number, unit, "size");
    }
    if text.starts_with('-') {
        return Err(format!("size {text:?} is negative"));
    }
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("{text:?} is not a size; write e.g. 512KB, 10GB or 2GiB"))
}

/// Parses a duration such as `24h`, `7d`, `300s` or `90m` (a bare number is taken in `unit` seconds).
pub fn parse_duration(text: &str, unit: u64) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<f64>() {
        return number_to_units(number, unit, "duration").map(Duration::from_secs);
    }
    humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 300s, 90m, 24h or 7d"))
}

fn number_to_units(number: f64, unit: u64, what: &str) -> Result<u64, String> {
    if !number.is_finite() || number < 0.0 {
        return Err(format!("{what} {number} must be a finite number of zero or more"));
    }
    let scaled = number * unit as f64;
    if scaled > u64::MAX as f64 {
        return Err(format!("{what} {number} is too large"));
    }
    Ok(scaled.round() as u64)
}

/// A size in bytes whose bare-number form is read in `UNIT` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size<const UNIT: u64>(pub u64);

impl<const UNIT: u64> Size<UNIT> {
    /// A size of `n` whole units.
    pub const fn units(n: u64) -> Self {
        Self(n * UNIT)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl<const UNIT: u64> fmt::Display for Size<UNIT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().si())
    }
}

impl<const UNIT: u64> Serialize for Size<UNIT> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(UNIT) {
            serializer.serialize_u64(self.0 / UNIT)
        } else {
            serializer.serialize_str(&format!("{}B", self.0))
        }
    }
}

impl<'de, const UNIT: u64> Deserialize<'de> for Size<UNIT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UnitVisitor::<UNIT, u64>::new(parse_size, "a size such as 10GB"))
            .map(Size)
    }
}

/// A duration whose bare-number form is read in `UNIT` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span<const UNIT: u64>(pub Duration);

impl<const UNIT: u64> Span<UNIT> {
    /// A duration of `n` whole units.
    pub const fn units(n: u64) -> Self {
        Self(Duration::from_secs(n * UNIT))
    }

    /// The duration.
    pub const fn duration(self) -> Duration {
        self.0
    }
}

impl<const UNIT: u64> fmt::Display for Span<UNIT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<const UNIT: u64> Serialize for Span<UNIT> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() == 0 && secs.is_multiple_of(UNIT) {
            serializer.serialize_u64(secs / UNIT)
        } else {
            serializer.serialize_str(&humantime::format_duration(self.0).to_string())
        }
    }
}

impl<'de, const UNIT: u64> Deserialize<'de> for Span<UNIT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UnitVisitor::<UNIT, Duration>::new(parse_duration, "a duration such as 24h"))
            .map(Span)
    }
}

/// Accepts an integer, a float or a string and hands its text to `parse` with the key's unit.
struct UnitVisitor<const UNIT: u64, T> {
    parse: fn(&str, u64) -> Result<T, String>,
    expecting: &'static str,
    _out: PhantomData<T>,
}

impl<const UNIT: u64, T> UnitVisitor<UNIT, T> {
    fn new(parse: fn(&str, u64) -> Result<T, String>, expecting: &'static str) -> Self {
        Self { parse, expecting, _out: PhantomData }
    }
}

impl<const UNIT: u64, T> Visitor<'_> for UnitVisitor<UNIT, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.parse)(&v.to_string(), UNIT).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.parse)(&v.to_string(), UNIT).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.parse)(&v.to_string(), UNIT).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v, UNIT).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_people_write_them() {
        assert_eq!(parse_size("10GB", GB), Ok(10_000_000_000));
        assert_eq!(parse_size("512KB", BYTE), Ok(512_000));
        assert_eq!(parse_size("1MB", BYTE), Ok(1_000_000));
        assert_eq!(parse_size("2GiB", GB), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("4 KiB", BYTE), Ok(4096));
        assert_eq!(parse_size("10gb", GB), Ok(10_000_000_000));
        assert_eq!(parse_size("10", GB), Ok(10_000_000_000));
        assert_eq!(parse_size("0.5", GB), Ok(500_000_000));
        assert_eq!(parse_size("64", KB), Ok(64_000));
        assert_eq!(parse_size("0", GB), Ok(0));
    }

    #[test]
    fn bad_sizes_are_rejected_with_a_hint() {
        for bad in ["10XB", "GB", "", "ten", "-5GB", "-1", "1e400", "NaN"] {
            let err = parse_size(bad, GB).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(parse_size("10XB", GB).unwrap_err().contains("512KB"));
    }

    #[test]
    fn durations_parse_as_people_write_them() {
        let h = Duration::from_secs(3600);
        assert_eq!(parse_duration("24h", HOUR), Ok(24 * h));
        assert_eq!(parse_duration("7d", DAY), Ok(7 * 24 * h));
        assert_eq!(parse_duration("300s", SECOND), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5s", SECOND), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1h", HOUR), Ok(h));
        assert_eq!(parse_duration("90m", HOUR), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m", SECOND), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24", HOUR), Ok(24 * h));
        assert_eq!(parse_duration("1.5", HOUR), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7", DAY), Ok(7 * 24 * h));
    }

    #[test]
    fn bad_durations_are_rejected_with_a_hint() {
        for bad in ["24x", "h", "", "-1", "-3h", "soon"] {
            assert!(parse_duration(bad, HOUR).is_err(), "{bad}");
        }
        assert!(parse_duration("24x", HOUR).unwrap_err().contains("24h"));
    }

    #[test]
    fn serialize_keeps_whole_units_as_numbers() {
        let v = toml::Value::try_from(Size::<GB>(10 * GB)).unwrap();
        assert_eq!(v, toml::Value::Integer(10));
        let v = toml::Value::try_from(Size::<GB>(512_000_000)).unwrap();
        assert_eq!(v, toml::Value::String("512000000B".into()));
        let v = toml::Value::try_from(Span::<HOUR>(Duration::from_secs(5400))).unwrap();
        assert_eq!(v, toml::Value::String("1h 30m".into()));
        let back: Span<HOUR> = v.try_into().unwrap();
        assert_eq!(back.duration(), Duration::from_secs(5400));
    }
}
