//! Trace and span identifiers: fixed-size integers in memory, lowercase hex on the wire.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A W3C / OpenTelemetry trace id (16 bytes), big-endian in a `u128`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub u128);

/// An OpenTelemetry span id (8 bytes), big-endian in a `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub u64);

impl TraceId {
    /// Reads the 16 raw bytes of an OTLP `trace_id`; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(u128::from_be_bytes(bytes.try_into().ok()?)))
    }

    /// Parses 32 hex digits, either case.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 {
            return None;
        }
        const_hex::decode_to_array(hex).ok().map(|bytes| Self(u128::from_be_bytes(bytes)))
    }
}

impl SpanId {
    /// Reads the 8 raw bytes of an OTLP `span_id`; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(u64::from_be_bytes(bytes.try_into().ok()?)))
    }

    /// Parses 16 hex digits, either case.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 16 {
            return None;
        }
        const_hex::decode_to_array(hex).ok().map(|bytes| Self(u64::from_be_bytes(bytes)))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

macro_rules! hex_serde {
    ($ty:ident, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(d)?;
                // The empty string is the all-zero (invalid) id, as in OTLP JSON.
                if text.is_empty() {
                    return Ok($ty(0));
                }
                $ty::from_hex(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("invalid ", $what, " {:?}"), text))
                })
            }
        }
    };
}

hex_serde!(TraceId, "trace id (want 32 hex digits)");
hex_serde!(SpanId, "span id (want 16 hex digits)");

/// A short, stable hex digest (FNV-1a 64) of `parts`, for deterministic ids: the same
/// parts always give the same 16 hex digits, on every machine and run.
pub fn stable_digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case_insensitive() {
        let t = TraceId::from_hex("5B8EFFF798038103D269B633813FC60C").unwrap();
        assert_eq!(t.to_string(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(SpanId::from_hex("EEE19B7EC3C1B174").unwrap().to_string(), "eee19b7ec3c1b174");
        assert!(TraceId::from_hex("xyz").is_none());
        assert!(TraceId::from_hex("0x8efff798038103d269b633813fc60c").is_none());
        assert!(SpanId::from_hex("+ee19b7ec3c1b174").is_none());
        assert!(SpanId::from_bytes(&[1, 2, 3]).is_none());
        assert_eq!(SpanId::from_bytes(&[0, 0, 0, 0, 0, 0, 1, 2]), Some(SpanId(258)));
    }

    #[test]
    fn written_as_all_their_digits_leading_zeros_included() {
        let (t, s) = (TraceId(0xab_0001), SpanId(0xc0_ffee));
        assert_eq!(t.to_string(), "00000000000000000000000000ab0001");
        assert_eq!(s.to_string(), "0000000000c0ffee");
        let json = serde_json::to_string(&(t, s)).unwrap();
        assert_eq!(json, r#"["00000000000000000000000000ab0001","0000000000c0ffee"]"#);
        assert_eq!(serde_json::from_str::<(TraceId, SpanId)>(&json).unwrap(), (t, s));
        assert_eq!(TraceId(u128::MAX).to_string(), "f".repeat(32));
    }
}
