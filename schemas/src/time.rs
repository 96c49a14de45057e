//! Event time: nanoseconds since the Unix epoch, as OTLP carries it.

use chrono::{DateTime, SecondsFormat, Utc};

/// Nanoseconds since the Unix epoch (UTC).
pub type TimestampNs = u64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The latest time Devloom represents (2262-04-11T23:47:16.854Z, `i64::MAX` ns): a span
/// time beyond it is rejected at decode, never clamped.
pub const MAX_TIMESTAMP_NS: TimestampNs = i64::MAX as u64;

/// Why a span's times cannot be used, if they cannot: `(field, reason)`.
pub fn check_span_times(
    start_ns: TimestampNs,
    end_ns: TimestampNs,
) -> Result<(), (&'static str, &'static str)> {
    const OUT_OF_RANGE: &str = "out of range: after 2262-04-11, the latest time Devloom represents";
    if start_ns > MAX_TIMESTAMP_NS {
        return Err(("startTimeUnixNano", OUT_OF_RANGE));
    }
    if end_ns > MAX_TIMESTAMP_NS {
        return Err(("endTimeUnixNano", OUT_OF_RANGE));
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp (`2026-11-27T09:00:00Z`, any offset, any precision), and
/// the ISO 8601 form with a colon-less offset (`+0000`) that PagerDuty documents.
pub fn parse_rfc3339(text: &str) -> Result<TimestampNs, String> {
    let t = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map_err(|e| format!("not an RFC 3339 timestamp ({e}): {text:?}"))?;
    t.timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("timestamp out of range: {text:?}"))
}

/// Formats nanoseconds as RFC 3339 UTC with millisecond precision.
pub fn format_rfc3339(ns: TimestampNs) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX));
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let ns = parse_rfc3339("2026-11-27T09:00:00.250+01:00").unwrap();
        assert_eq!(format_rfc3339(ns), "2026-11-27T08:00:00.250Z");
        assert_eq!(
            parse_rfc3339("2026-11-27T03:10:05.000+0000").unwrap(),
            parse_rfc3339("2026-11-27T03:10:05Z").unwrap()
        );
        assert!(parse_rfc3339("yesterday").unwrap_err().contains("yesterday"));
        // Alertmanager's "no end" sentinel is before the epoch: rejected, not wrapped.
        assert!(parse_rfc3339("0001-01-01T00:00:00Z").is_err());
    }
}
