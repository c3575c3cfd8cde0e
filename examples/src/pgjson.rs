//! PostgreSQL values as JSON, decoded from the binary wire format.
//!
//! tokio-postgres receives every result column in PostgreSQL's binary
//! format. [`Cell`] accepts any column type and turns the common ones into
//! JSON without extra crates (no chrono, uuid or rust_decimal features on
//! tokio-postgres, so the workspace's library crates build exactly as
//! before):
//!
//! | PostgreSQL type | JSON |
//! |---|---|
//! | `NULL` (any type) | `null` |
//! | `bool` | `true` / `false` |
//! | `int2`, `int4`, `int8`, `oid` | number |
//! | `float4`, `float8` | number; `NaN`, `Infinity`, `-Infinity` as strings |
//! | `numeric` | string, exactly PostgreSQL's text (`"12.50"`), so no precision is lost |
//! | `text`, `varchar`, `bpchar`, `name`, `unknown` | string |
//! | `json`, `jsonb` | the JSON value itself |
//! | `timestamptz` | RFC 3339 string in UTC: `"2026-11-26T11:20:00.123456Z"` |
//! | `timestamp` | the same without an offset (it has none): `"2026-11-26T11:20:00"` |
//! | `date` | `"2026-11-26"` |
//! | `uuid` | `"0e6f8c9a-..."` |
//! | `bytea` | `"\\x0102ff"` (PostgreSQL's hex text form) |
//! | anything else | `{"unsupported_type": "<type name>"}` |
//!
//! Timestamps and dates `infinity`/`-infinity` are those strings; years
//! outside 0000–9999 are written with a sign (ISO 8601 expanded years), which
//! RFC 3339 cannot express. Fractional seconds are printed only when non-zero,
//! without trailing zeros.
//!
//! The last row is a safety net: [`crate::query`] first asks PostgreSQL to
//! cast columns of other types to `text` (see its module docs), so the
//! marker only appears for statements that cannot be wrapped that way.

use std::error::Error;

use pool_pg::tokio_postgres::types::{FromSql, Type};
use serde_json::{json, Value};

type DecodeError = Box<dyn Error + Sync + Send>;

/// One result value as JSON; reads any column type (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Self, DecodeError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether [`Cell`] decodes `ty` itself (rather than with the
/// `unsupported_type` marker).
pub fn is_supported(ty: &Type) -> bool {
    SUPPORTED.contains(ty)
}

const SUPPORTED: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::OID,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::UNKNOWN,
    Type::JSON,
    Type::JSONB,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMP,
    Type::DATE,
    Type::UUID,
    Type::BYTEA,
];

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, DecodeError> {
    Ok(match *ty {
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => json!(i16::from_sql(ty, raw)?),
        Type::INT4 => json!(i32::from_sql(ty, raw)?),
        Type::INT8 => json!(i64::from_sql(ty, raw)?),
        Type::OID => json!(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
        Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
        Type::NUMERIC => Value::String(numeric_text(raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::String(<&str>::from_sql(ty, raw)?.to_owned())
        }
        Type::JSON => serde_json::from_slice(raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => serde_json::from_slice(text)?,
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::TIMESTAMPTZ => Value::String(timestamp_text(i64::from_sql(&Type::INT8, raw)?, true)),
        Type::TIMESTAMP => Value::String(timestamp_text(i64::from_sql(&Type::INT8, raw)?, false)),
        Type::DATE => Value::String(date_text(i32::from_sql(&Type::INT4, raw)?)),
        Type::UUID => Value::String(uuid_text(raw)?),
        Type::BYTEA => Value::String(bytea_text(raw)),
        _ => json!({ "unsupported_type": ty.name() }),
    })
}

/// JSON has no NaN or infinities: those become strings.
fn float(value: f64) -> Value {
    match serde_json::Number::from_f64(value) {
        Some(number) => Value::Number(number),
        None if value.is_nan() => Value::from("NaN"),
        None if value > 0.0 => Value::from("Infinity"),
        None => Value::from("-Infinity"),
    }
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `timestamp[tz]`: microseconds since 2000-01-01 00:00:00 (UTC for
/// `timestamptz`).
fn timestamp_text(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY) + PG_EPOCH_DAYS;
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let seconds = of_day / 1_000_000;
    let fraction = of_day % 1_000_000;
    let mut text = format!(
        "{}T{:02}:{:02}:{:02}",
        civil_date(days),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    if utc {
        text.push('Z');
    }
    text
}

/// `date`: days since 2000-01-01.
fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => civil_date(i64::from(days) + PG_EPOCH_DAYS),
    }
}

/// `YYYY-MM-DD` for days since 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if (0..=9999).contains(&year) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:+05}-{month:02}-{day:02}")
    }
}

fn uuid_text(raw: &[u8]) -> Result<String, DecodeError> {
    if raw.len() != 16 {
        return Err(format!("a uuid has 16 bytes, got {}", raw.len()).into());
    }
    let mut text = String::with_capacity(36);
    for (i, byte) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    Ok(text)
}

fn bytea_text(raw: &[u8]) -> String {
    let mut text = String::with_capacity(2 + raw.len() * 2);
    text.push_str("\\x");
    for byte in raw {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

const NUMERIC_NEGATIVE: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// `numeric` as PostgreSQL prints it. The binary form is a header (digit
/// count, weight of the first digit, sign, display scale) and base-10000
/// digits; the text has every integer digit and exactly `dscale` decimals.
fn numeric_text(raw: &[u8]) -> Result<String, DecodeError> {
    let word = |i: usize| -> Result<u16, DecodeError> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<_>, _>>()?;
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    let mut text = String::new();
    if sign == NUMERIC_NEGATIVE {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0).to_string());
        for i in 1..=weight {
            text.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for word in [digits.len() as u16, weight as u16, sign, dscale] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        for digit in digits {
            raw.extend_from_slice(&digit.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_print_like_postgresql() {
        assert_eq!(numeric_text(&numeric(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(
            numeric_text(&numeric(1, 0, 2, &[1, 2345])).unwrap(),
            "12345.00"
        );
        assert_eq!(
            numeric_text(&numeric(0, 0x4000, 2, &[12, 5000])).unwrap(),
            "-12.50"
        );
        assert_eq!(
            numeric_text(&numeric(-2, 0, 5, &[1000])).unwrap(),
            "0.00001"
        );
        assert_eq!(numeric_text(&numeric(2, 0, 0, &[1])).unwrap(), "100000000");
        assert_eq!(
            numeric_text(&numeric(0, NUMERIC_NAN, 0, &[])).unwrap(),
            "NaN"
        );
        assert!(
            numeric_text(&[0, 1]).is_err(),
            "a truncated value is an error"
        );
    }

    #[test]
    fn timestamps_are_rfc_3339() {
        assert_eq!(timestamp_text(0, true), "2000-01-01T00:00:00Z");
        assert_eq!(timestamp_text(1_500_000, false), "2000-01-01T00:00:01.5");
        assert_eq!(timestamp_text(-1, true), "1999-12-31T23:59:59.999999Z");
        assert_eq!(timestamp_text(i64::MAX, true), "infinity");
        assert_eq!(date_text(-730_485), "0000-01-01");
        assert_eq!(date_text(365 * 26 + 7 + 329), "2026-11-26");
    }

    #[test]
    fn floats_without_a_json_number_become_strings() {
        assert_eq!(float(f64::NAN), json!("NaN"));
        assert_eq!(float(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(float(1.5), json!(1.5));
    }
}
