//! Lenient decoding of vendor JSON records, shared by the Celigo, Planasonix and Calyptia parsers.
//!
//! A provider describes the fields it reads with [`Fields`]: a list of key names and a setter. [`Record`] then reads
//! one element of a list: an object fills the provider's fields (every other key, secrets included, is skipped by the
//! parser without being stored), and anything else (a string, a number, `null`, an array) becomes `None`, so the
//! caller can skip and count it instead of losing the page. [`Scalar`] holds one field's value whatever its JSON type,
//! so that a wrongly typed field drops only itself.
//!
//! Strings are borrowed from the body whenever they hold no escape, so a field read only to be parsed (a timestamp)
//! costs no allocation. Top-level lists of records, the bulk of every poll, are read by the faster
//! [`super::list::each_record`] into the same [`Fields`]; the serde path here serves envelopes and single documents.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use url::Url;

use crate::sources::http::display_url;

/// The fields of one record that a provider reads. `'de` is the lifetime of the body, which strings may borrow from.
pub trait Fields<'de>: Default {
    /// The JSON keys read, in any order; a key's position is the index [`Fields::set`] receives.
    const KEYS: &'static [&'static str];
    /// Stores the value of `KEYS[index]`.
    fn set(&mut self, index: usize, value: Scalar<'de>);
}

/// The value of a field we read, whatever its JSON type. Objects and arrays are skipped unread. A string is borrowed
/// from the body unless it holds an escape.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'de> {
    Str(Cow<'de, str>),
    Bool(bool),
    Num(f64),
    /// `null`, an object or an array.
    Other,
}

impl<'de> Scalar<'de> {
    /// The string, if and only if the value is a non-empty string.
    pub fn string(self) -> Option<String> {
        self.text().map(Cow::into_owned)
    }

    /// The string, still borrowed where it could be, if and only if the value is a non-empty string.
    pub fn text(self) -> Option<Cow<'de, str>> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The boolean, if and only if the value is `true` or `false`.
    pub fn bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The number, if the value is a finite number or a string holding one (`"34.2"`): some APIs quote numbers.
    pub fn number(self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(n),
            Scalar::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|n| n.is_finite())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar<'a>, D::Error> {
        struct ScalarVisitor<'a>(PhantomData<Scalar<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'a>, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor(PhantomData))
    }
}

/// One element of a record list: `Some` for an object, `None` for anything else.
pub struct Record<F>(pub Option<F>);

impl<'de, F: Fields<'de>> Deserialize<'de> for Record<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Record<F>, D::Error> {
        deserializer.deserialize_any(RecordVisitor(PhantomData))
    }
}

struct RecordVisitor<F>(PhantomData<F>);

impl<'de, F: Fields<'de>> Visitor<'de> for RecordVisitor<F> {
    type Value = Record<F>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<F>, A::Error> {
        let mut fields = F::default();
        while let Some(key) = map.next_key_seed(KeyIndex(F::KEYS))? {
            match key {
                Some(index) => fields.set(index, map.next_value::<Scalar>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Record(Some(fields)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record<F>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Record(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Record<F>, E> {
        Ok(Record(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Record<F>, E> {
        Ok(Record(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Record<F>, E> {
        Ok(Record(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Record<F>, E> {
        Ok(Record(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Record<F>, E> {
        Ok(Record(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Record<F>, E> {
        Ok(Record(None))
    }
}

/// A single-record document: the record's fields either inside a `data` object (`{"data":{...}}`, the documented
/// envelope) or at the top level (a bare object). Assumed: both shapes occur, as with Planasonix's lists; when both
/// are present, `data` wins.
pub struct Document<F>(pub F);

impl<'de, F: Fields<'de>> Deserialize<'de> for Document<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Document<F>, D::Error> {
        struct DocumentVisitor<F>(PhantomData<F>);
        impl<'de, F: Fields<'de>> Visitor<'de> for DocumentVisitor<F> {
            type Value = Document<F>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document<F>, A::Error> {
                let mut top = F::default();
                let mut data = None;
                while let Some(key) = map.next_key_seed(DataKey(F::KEYS))? {
                    match key {
                        KeyOrData::Data => data = map.next_value::<Record<F>>()?.0,
                        KeyOrData::Key(index) => top.set(index, map.next_value::<Scalar>()?),
                        KeyOrData::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Document(data.unwrap_or(top)))
            }
        }
        deserializer.deserialize_map(DocumentVisitor(PhantomData))
    }
}

/// A key of a [`Document`]: `data`, one of the record's keys, or another.
enum KeyOrData {
    Data,
    Key(usize),
    Other,
}

/// Reads a [`Document`] key.
struct DataKey(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for DataKey {
    type Value = KeyOrData;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyOrData, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for DataKey {
    type Value = KeyOrData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<KeyOrData, E> {
        Ok(match key {
            "data" => KeyOrData::Data,
            _ => match self.0.iter().position(|k| *k == key) {
                Some(index) => KeyOrData::Key(index),
                None => KeyOrData::Other,
            },
        })
    }
}

/// Reads a map key and returns its position in a key list, or `None` for a key we do not read. Matching on the
/// borrowed key keeps unknown keys from being allocated.
pub struct KeyIndex(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyIndex {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeyIndex {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|k| *k == key))
    }
}

/// Parses an RFC 3339 timestamp, with or without fractional seconds. A value that does not parse drops only this
/// field (logged at debug, cut to 64 characters); the rest of the record stays.
pub fn timestamp(id: &str, field: &'static str, value: Option<&str>) -> Option<Timestamp> {
    let value = value?;
    match utc_timestamp(value).map_or_else(|| value.parse(), Ok) {
        Ok(t) => Some(t),
        Err(_) => {
            let shown: String = value.chars().take(64).collect();
            tracing::debug!(agent_id = %id, field, value = ?shown, "ignoring a timestamp that does not parse");
            None
        }
    }
}

/// The fast path of [`timestamp`] for the one shape the upstreams send, `YYYY-MM-DDTHH:MM:SS[.f…]Z` (up to nine
/// fraction digits). Parsing three timestamps per agent was the largest single cost of a poll, so this shape is
/// read by hand; `None` means "not this exact shape, or not a valid date", and the caller falls back to jiff's full
/// RFC 3339 parser, which has the last word on everything else (offsets, lower-case `t`/`z`, a space separator, a
/// comma before the fraction, leap second `:60`). Where this path answers, it answers as jiff would; a test holds
/// the two together.
fn utc_timestamp(text: &str) -> Option<Timestamp> {
    let (head, fraction) = match text.as_bytes() {
        [head @ .., b'Z'] if head.len() >= 19 => head.split_at(19),
        _ => return None,
    };
    let head: &[u8; 19] = head.try_into().ok()?;
    // `YYYY-MM-DDTHH:MM:SS`, read as two-digit pairs; a byte that is not a digit makes `pair` fail.
    let pair = |i: usize| -> Option<i64> {
        let (tens, ones) = (head[i].wrapping_sub(b'0'), head[i + 1].wrapping_sub(b'0'));
        (tens < 10 && ones < 10).then(|| i64::from(tens * 10 + ones))
    };
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let year = pair(0)? * 100 + pair(2)?;
    let (month, day) = (pair(5)?, pair(8)?);
    let (hour, minute, second) = (pair(11)?, pair(14)?, pair(17)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut nanos = 0i32;
            for &digit in digits {
                let digit = digit.wrapping_sub(b'0');
                if digit >= 10 {
                    return None;
                }
                nanos = nanos * 10 + i32::from(digit);
            }
            nanos * SCALE[digits.len()]
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Timestamp::new(seconds, nanos).ok()
}

/// What a fraction of n digits is multiplied by to give nanoseconds.
const SCALE: [i32; 10] = [
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// Days in `month` (1–12) of the proleptic Gregorian `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative before it), counted in 400-year eras that
/// start on 1 March, so that the leap day falls at the end of each era's year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Years are 0–9999 here (four digits), so the era arithmetic stays in non-negative numbers.
    let year = (if month <= 2 { year - 1 } else { year }) + 400;
    let (era, year_of_era) = (year / 400, year % 400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era - 1) * 146_097 + day_of_era - 719_468
}

/// Keeps a decoded record, or counts it as skipped and says so at debug: a record that is not an object with a usable
/// id costs only itself, never the page. `index` is its position in the page, for the log line; the record itself
/// is never logged.
pub fn keep_or_skip<T>(
    record: Option<T>,
    kept: &mut Vec<T>,
    skipped: &mut u64,
    account: &str,
    page: &Url,
    index: usize,
) {
    match record {
        Some(record) => kept.push(record),
        None => {
            *skipped += 1;
            tracing::debug!(
                account,
                page = %display_url(page),
                index,
                "skipping an agent record that is not an object with a usable id"
            );
        }
    }
}

/// What was wrong with a body that did not decode, in the categories both readers share (serde_json's, and
/// [`super::list`]'s), so that a decode error reads the same whichever reader met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Bytes that are not JSON.
    Syntax,
    /// The body ended inside the document, or was empty.
    Eof,
    /// Well-formed JSON of the wrong shape.
    Data,
    /// The body could not be read.
    Io,
}

/// A decode problem in words that never quote the body: `expected` says what the body should have been, e.g. "a
/// JSON array of agent records"; `line` and `column` count from 1.
pub fn decode_message(problem: Problem, expected: &str, line: usize, column: usize) -> String {
    let what = match problem {
        Problem::Syntax => "malformed JSON".to_string(),
        Problem::Eof => "truncated or empty JSON".to_string(),
        Problem::Data => format!("expected {expected}"),
        Problem::Io => "cannot read the body".to_string(),
    };
    format!("{what} (line {line}, column {column})")
}

/// A serde_json decode error in words that never quote the body: serde_json's own messages can repeat a value from
/// it. `expected` says what the body should have been.
pub fn describe(e: &serde_json::Error, expected: &str) -> String {
    use serde_json::error::Category;
    let problem = match e.classify() {
        Category::Syntax => Problem::Syntax,
        Category::Eof => Problem::Eof,
        Category::Data => Problem::Data,
        Category::Io => Problem::Io,
    };
    decode_message(problem, expected, e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Two {
        id: Option<String>,
        n: Option<f64>,
    }

    impl Fields<'_> for Two {
        const KEYS: &'static [&'static str] = &["id", "n"];
        fn set(&mut self, index: usize, value: Scalar<'_>) {
            match index {
                0 => self.id = value.string(),
                _ => self.n = value.number(),
            }
        }
    }

    #[test]
    fn records_read_their_keys_skip_the_rest_and_odd_elements_become_none() {
        let records: Vec<Record<Two>> = serde_json::from_str(
            r#"[{"id":"a","n":"2.5","secret":"hunter2","x":{"y":[1]}}, {"id":5,"n":true}, "s", 1, null, [1]]"#,
        )
        .unwrap();
        let got: Vec<Option<Two>> = records.into_iter().map(|r| r.0).collect();
        assert_eq!(
            got,
            vec![
                Some(Two {
                    id: Some("a".into()),
                    n: Some(2.5)
                }),
                Some(Two::default()),
                None,
                None,
                None,
                None
            ]
        );
    }

    /// jiff's own parser, the reference the fast path must agree with.
    fn jiff(text: &str) -> Option<Timestamp> {
        text.parse().ok()
    }

    #[test]
    fn the_fast_timestamp_path_agrees_with_jiff_wherever_it_answers() {
        let mut checked = 0;
        // Every day of years around the edges that matter: leap rules (1900, 2000, 2024, 2100), the epoch, year 0
        // and the largest four-digit year; a spread of times and fraction lengths.
        for year in [
            0, 1, 399, 400, 1900, 1969, 1970, 2000, 2024, 2025, 2026, 2100, 9999,
        ] {
            for month in 1..=12 {
                for day in 1..=31 {
                    for (time, fraction) in [
                        ("00:00:00", ""),
                        ("23:59:59", ".999999999"),
                        ("12:34:56", ".5"),
                        ("07:21:58", ".458"),
                        ("01:02:03", ".000001"),
                    ] {
                        let text = format!("{year:04}-{month:02}-{day:02}T{time}{fraction}Z");
                        let fast = utc_timestamp(&text);
                        let reference = jiff(&text);
                        if day <= 28 {
                            assert!(fast.is_some(), "{text} took the slow path");
                        }
                        if fast.is_some() {
                            assert_eq!(fast, reference, "{text}");
                            checked += 1;
                        } else {
                            // Not answered here (the 31st of a 30-day month, say): jiff decides, and rejects it.
                            assert_eq!(
                                reference, None,
                                "{text} is valid but the fast path refused it"
                            );
                        }
                    }
                }
            }
        }
        assert!(checked > 20_000, "only {checked} dates compared");
    }

    #[test]
    fn other_shapes_fall_back_to_jiff_and_garbage_drops_only_the_field() {
        for (text, fast_answers) in [
            ("2026-11-22T07:21:58Z", true),
            ("2026-11-22T07:21:58.123456789Z", true),
            ("2026-11-22t07:21:58z", false),
            ("2026-11-22 07:21:58Z", false),
            ("2026-11-22T07:21:58+01:00", false),
            ("2026-11-22T07:21:58,5Z", false),
            ("2026-11-22T07:21:58.Z", false),
            ("2026-11-22T07:21:58.1234567890Z", false),
            ("2016-12-31T23:59:60Z", false),
            ("2026-02-29T00:00:00Z", false),
            ("2026-13-01T00:00:00Z", false),
            ("2026-11-22T24:00:00Z", false),
            ("2026-11-22T07:60:00Z", false),
            ("+2026-11-22T07:21:58Z", false),
            ("2026-1a-22T07:21:58Z", false),
            ("2026-11-22T07:21:58", false),
            ("yesterday", false),
            ("", false),
        ] {
            assert_eq!(utc_timestamp(text).is_some(), fast_answers, "{text:?}");
            assert_eq!(
                timestamp("agent", "field", Some(text)),
                jiff(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn describe_never_quotes_the_body() {
        for body in [r#"[{"id":"a""#, r#""hunter2""#, ""] {
            let Err(e) = serde_json::from_str::<Vec<Record<Two>>>(body) else {
                panic!("{body:?} parsed");
            };
            let message = describe(&e, "a list");
            assert!(!message.contains("hunter2"), "{body:?} gave {message:?}");
        }
    }
}
