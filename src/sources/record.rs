//! Lenient decoding of vendor JSON records through serde_json, shared by the Celigo, Planasonix, Calyptia and generic
//! sources.
//!
//! A provider describes the fields it reads with [`Fields`]: a list of key names and a setter. [`Record`] then reads
//! one element of a list: an object fills the provider's fields, and anything else (a string, a number, `null`, an
//! array) becomes `None`, so the caller can skip and count it instead of losing the page. Every key not in the list,
//! secrets included, is skipped as [`IgnoredAny`]: its value is checked as JSON but never copied or stored. [`Scalar`]
//! holds one field's value whatever its JSON type, so that a wrongly typed field drops only itself.
//!
//! Strings are borrowed from the body whenever they hold no escape, so a field read only to be parsed (a timestamp)
//! costs no allocation. [`read_agents`] reads a page that is a top-level array of records, the bulk of every poll,
//! turning each record into an agent as it is read; [`Document`] reads single documents. Decode errors are reworded by
//! [`describe`], which never quotes the body.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use url::Url;

use crate::sources::UpstreamError;
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

    /// The string, still borrowed where it could be, if and only if the value is a non-empty string; cut to
    /// [`MAX_STRING_BYTES`] (see [`cap`]), since every string read ends up in a label, a page, an alert or a mail.
    pub fn text(self) -> Option<Cow<'de, str>> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(cap(s)),
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

/// The longest upstream string kept, bytes. A name of a megabyte would otherwise become a label value repeated in
/// every per-agent family, in alerts, in the state file and in mails; 1,024 bytes holds any real name or version.
pub const MAX_STRING_BYTES: usize = 1024;

/// Cuts `s` to at most [`MAX_STRING_BYTES`] bytes on a character boundary and marks the cut with `…`, so the result
/// (marker included) is never longer than the cap. A string within the cap is returned as it is, unallocated.
pub fn cap(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.len() <= MAX_STRING_BYTES {
        return s;
    }
    const MARK: &str = "…";
    let mut end = MAX_STRING_BYTES - MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + MARK.len());
    cut.push_str(&s[..end]);
    cut.push_str(MARK);
    Cow::Owned(cut)
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

/// Parses an RFC 3339 timestamp (jiff's parser: `Z` or a numeric offset, with or without fractional seconds). A
/// value that does not parse drops only this field (logged at debug, cut to 64 characters); the rest of the record
/// stays.
pub fn timestamp(id: &str, field: &'static str, value: Option<&str>) -> Option<Timestamp> {
    let value = value?;
    match value.parse() {
        Ok(t) => Some(t),
        Err(_) => {
            let shown: String = value.chars().take(64).collect();
            tracing::debug!(agent_id = %id, field, value = ?shown, "ignoring a timestamp that does not parse");
            None
        }
    }
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

/// A serde_json decode error in words that never quote the body: serde_json's own messages can repeat a value from
/// it (`invalid type: string "…", expected …`), so only its category and position are kept. `expected` says what the
/// body should have been, e.g. "a JSON array of agent records"; `line` and `column` count from 1.
pub fn describe(e: &serde_json::Error, expected: &str) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "malformed JSON".to_string(),
        Category::Eof => "truncated or empty JSON".to_string(),
        Category::Data => format!("expected {expected}"),
        Category::Io => "cannot read the body".to_string(),
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// Reads a page that is a JSON array of agent records onto the end of `agents`, and returns how many records were
/// skipped: `into_agent` turns a record into an agent, or refuses it (no usable id) and the record is counted (see
/// [`keep_or_skip`]). Each record becomes an agent as soon as it is read, so the page's records are never held as a
/// list of their own.
///
/// One bad record costs only itself: when the page fails to decode in one pass, it is read again record by record
/// (`read_agents_one_by_one`), and a record with invalid UTF-8 in a field we read, or a value serde_json refuses
/// (`1e999`), is skipped and counted. Only a body that is not a JSON array at all fails the page, with an
/// [`UpstreamError::Decode`] that never quotes it; `agents` then holds what it held before the call.
///
/// Generic over what a record becomes (`T`): a [`crate::domain::Agent`] for most sources, or an agent with what the source needs
/// besides (Planasonix's status flags).
pub fn read_agents<'de, F: Fields<'de>, T>(
    body: &'de [u8],
    page: &Url,
    account: &str,
    into_agent: impl Fn(F) -> Option<T>,
    agents: &mut Vec<T>,
) -> Result<u64, UpstreamError> {
    let before = agents.len();
    let mut skipped = 0;
    let mut index = 0;
    let mut each = |record: Option<F>| {
        let agent = record.and_then(&into_agent);
        keep_or_skip(agent, agents, &mut skipped, account, page, index);
        index += 1;
    };
    // A body that is valid UTF-8 throughout (every real page) is checked once here, in one fast pass, and read as a
    // `str`: serde_json then skips the check of each string it reads, a tenth of the decode. Any other body is read
    // as bytes, which checks the strings we read one by one, so that one bad record costs only itself (below).
    let whole = match std::str::from_utf8(body) {
        Ok(text) => {
            let mut reader = serde_json::Deserializer::from_str(text);
            EachRecord(&mut each, PhantomData)
                .deserialize(&mut reader)
                .and_then(|()| reader.end())
        }
        Err(_) => {
            let mut reader = serde_json::Deserializer::from_slice(body);
            EachRecord(&mut each, PhantomData)
                .deserialize(&mut reader)
                .and_then(|()| reader.end())
        }
    };
    let Err(e) = whole else {
        return Ok(skipped);
    };
    agents.truncate(before);
    read_agents_one_by_one(body, page, account, &into_agent, agents).map_err(|()| {
        UpstreamError::Decode {
            url: display_url(page),
            message: describe(&e, "a JSON array of agent records"),
        }
    })
}

/// The slow path of [`read_agents`]: finds each element of the top-level array by skipping it as [`IgnoredAny`]
/// (which checks the JSON's structure but not the UTF-8 or the range of values it does not read), then decodes each
/// element on its own, so an error inside one costs only that one. `Err(())` when the body is not a well-formed
/// array; the caller then reports the one-pass error, which says where.
fn read_agents_one_by_one<'de, F: Fields<'de>, T>(
    body: &'de [u8],
    page: &Url,
    account: &str,
    into_agent: &impl Fn(F) -> Option<T>,
    agents: &mut Vec<T>,
) -> Result<u64, ()> {
    let before = agents.len();
    let skip_space = |mut at: usize| {
        while body.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        at
    };
    let mut at = skip_space(0);
    if body.get(at) != Some(&b'[') {
        return Err(());
    }
    at = skip_space(at + 1);
    let mut skipped = 0;
    let mut index = 0;
    if body.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            let mut values =
                serde_json::Deserializer::from_slice(&body[at..]).into_iter::<IgnoredAny>();
            if !matches!(values.next(), Some(Ok(_))) {
                agents.truncate(before);
                return Err(());
            }
            let end = at + values.byte_offset();
            let record = match serde_json::from_slice::<Record<F>>(&body[at..end]) {
                Ok(record) => record.0.and_then(into_agent),
                Err(e) => {
                    tracing::debug!(
                        account,
                        page = %display_url(page),
                        index,
                        error = %describe(&e, "an agent record"),
                        "skipping an agent record that does not decode"
                    );
                    None
                }
            };
            keep_or_skip(record, agents, &mut skipped, account, page, index);
            index += 1;
            at = skip_space(end);
            match body.get(at) {
                Some(b',') => at = skip_space(at + 1),
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => {
                    agents.truncate(before);
                    return Err(());
                }
            }
        }
    }
    if skip_space(at) != body.len() {
        agents.truncate(before);
        return Err(());
    }
    Ok(skipped)
}

/// The members of a top-level JSON object as `(key, the value's raw bytes)`, in order, found without decoding the
/// values: each is skipped as [`IgnoredAny`], which checks the JSON's structure but not the UTF-8 or the range of
/// values. An envelope (`{"data":[...],"meta":{...}}`) whose one record holds a byte that is not UTF-8 can so still be
/// taken apart, and its `data` read record by record with [`read_agents`]. `None` when the body is not a well-formed
/// object.
///
/// Hand-written on serde_json's stream reader (as `read_agents_one_by_one` is) because serde_json has no way to hand
/// out a value's raw bytes without checking them: its `RawValue` insists on UTF-8.
pub fn object_members(body: &[u8]) -> Option<Vec<(String, &[u8])>> {
    let skip_space = |mut at: usize| {
        while body.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        at
    };
    let mut at = skip_space(0);
    if body.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(at + 1);
    let mut members = Vec::new();
    if body.get(at) == Some(&b'}') {
        return (skip_space(at + 1) == body.len()).then_some(members);
    }
    loop {
        let mut keys = serde_json::Deserializer::from_slice(&body[at..]).into_iter::<String>();
        let key = keys.next()?.ok()?;
        at = skip_space(at + keys.byte_offset());
        if body.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(at + 1);
        let mut values =
            serde_json::Deserializer::from_slice(&body[at..]).into_iter::<IgnoredAny>();
        values.next()?.ok()?;
        let end = at + values.byte_offset();
        members.push((key, &body[at..end]));
        at = skip_space(end);
        match body.get(at) {
            Some(b',') => at = skip_space(at + 1),
            Some(b'}') => return (skip_space(at + 1) == body.len()).then_some(members),
            _ => return None,
        }
    }
}

/// The elements of a top-level JSON array as raw bytes, in order, found without decoding them (each is skipped as
/// [`IgnoredAny`], as in `read_agents_one_by_one`), so that a page whose array lies inside an envelope can still be
/// read record by record when one record holds a byte that is not UTF-8. `None` when the body is not a well-formed
/// array.
pub fn array_elements(body: &[u8]) -> Option<Vec<&[u8]>> {
    let skip_space = |mut at: usize| {
        while body.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        at
    };
    let mut at = skip_space(0);
    if body.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_space(at + 1);
    let mut elements = Vec::new();
    if body.get(at) == Some(&b']') {
        return (skip_space(at + 1) == body.len()).then_some(elements);
    }
    loop {
        let mut values =
            serde_json::Deserializer::from_slice(&body[at..]).into_iter::<IgnoredAny>();
        values.next()?.ok()?;
        let end = at + values.byte_offset();
        elements.push(&body[at..end]);
        at = skip_space(end);
        match body.get(at) {
            Some(b',') => at = skip_space(at + 1),
            Some(b']') => return (skip_space(at + 1) == body.len()).then_some(elements),
            _ => return None,
        }
    }
}

/// Reads a JSON array and hands each element to the closure as soon as it is read, as a [`Record`] would hold it:
/// `Some` for an object, `None` for anything else.
struct EachRecord<'c, F, C>(&'c mut C, PhantomData<F>);

impl<'de, F: Fields<'de>, C: FnMut(Option<F>)> DeserializeSeed<'de> for EachRecord<'_, F, C> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: Fields<'de>, C: FnMut(Option<F>)> Visitor<'de> for EachRecord<'_, F, C> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Record<F>>()? {
            (self.0)(record.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Agent;

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

    /// Reads `body` as a page through [`read_agents`], with `Two` as the record and its `id` as the agent id.
    fn page(body: &[u8]) -> Result<(Vec<Agent>, u64), String> {
        let url = Url::parse("https://api.example.test/v1/agents?skip=5").unwrap();
        let mut agents = Vec::new();
        let into_agent = |two: Two| Some(Agent::new(two.id?, ""));
        match read_agents(body, &url, "test", into_agent, &mut agents) {
            Ok(skipped) => Ok((agents, skipped)),
            Err(UpstreamError::Decode { message, .. }) => Err(message),
            Err(other) => panic!("not a decode error: {other}"),
        }
    }

    #[test]
    fn a_page_keeps_records_with_an_id_and_skips_and_counts_the_rest() {
        let (agents, skipped) = page(
            br#"[{"id":"a","accessToken":"hunter2"}, {"n":1}, {"id":7}, "s", 1, null, [1,[2]], {"id":"b\u00e9"}]"#,
        )
        .unwrap();
        let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!((ids, skipped), (vec!["a", "b\u{e9}"], 6));
        assert!(!format!("{agents:?}").contains("hunter2"));
        assert_eq!(page(b" [ ] \n").map(|(a, s)| (a.len(), s)), Ok((0, 0)));
    }

    #[test]
    fn what_is_not_a_list_fails_with_its_position_and_without_quoting_the_body() {
        for (body, message) in [
            // Positions are serde_json's: where it noticed the problem.
            (
                r#"{"id":"hunter2"}"#,
                "expected a JSON array of agent records (line 1, column 0)",
            ),
            (
                r#""hunter2""#,
                "expected a JSON array of agent records (line 1, column 9)",
            ),
            ("", "truncated or empty JSON (line 1, column 0)"),
            (
                "[{\"id\":\"hunter2\"",
                "truncated or empty JSON (line 1, column 16)",
            ),
            (
                "[\n {\"id\":\"hunter2\",}]",
                "malformed JSON (line 2, column 18)",
            ),
            ("[1]\n[2]", "malformed JSON (line 2, column 1)"),
            (
                "[{\"id\":\"hunter\x012\"}]",
                "malformed JSON (line 1, column 15)",
            ),
            ("[tru]", "malformed JSON (line 1, column 5)"),
            ("[01]", "malformed JSON (line 1, column 3)"),
        ] {
            assert_eq!(
                page(body.as_bytes()).map(|_| ()),
                Err(message.to_string()),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deeply_nested_values_are_skipped_without_recursion_and_cost_only_their_record() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // Arrays and objects are never read, only skipped as `IgnoredAny`, which serde_json does without recursing:
        // no depth can overflow the stack. Where an id was expected, the record is skipped and counted.
        for (body, kept, skipped) in [
            (format!(r#"[{{"id":"a","x":{}}}]"#, nested(100_000)), 1, 0),
            (format!(r#"[{{"id":{}}}]"#, nested(100_000)), 0, 1),
            (format!("[{}, {{\"id\":\"a\"}}]", nested(100_000)), 1, 1),
        ] {
            assert_eq!(
                page(body.as_bytes()).map(|(a, s)| (a.len(), s)),
                Ok((kept, skipped))
            );
        }
    }

    #[test]
    fn a_record_with_invalid_utf8_or_an_invalid_value_is_skipped_and_the_rest_of_the_page_kept() {
        assert_eq!(
            page(b"[{\"id\":\"a\",\"accessToken\":\"\xff\xfe\"}]").map(|(a, s)| (a.len(), s)),
            Ok((1, 0))
        );
        for (body, kept, skipped) in [
            (&b"[{\"id\":\"a\xff\"}, {\"id\":\"b\"}]"[..], vec!["b"], 1),
            (
                b"[{\"\xffid\":\"a\"},{\"id\":\"b\"} , {\"id\":\"c\"}]",
                vec!["b", "c"],
                1,
            ),
            (b"[\"\xff\", {\"id\":\"b\"}]", vec!["b"], 1),
            (
                b" [ {\"id\":\"a\"}, {\"id\":\"x\",\"n\":1e999}, {\"id\":\"c\"} ] ",
                vec!["a", "c"],
                1,
            ),
            (b"[{\"id\":\"a\"},1e999]", vec!["a"], 1),
        ] {
            let (agents, got_skipped) = page(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
            let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
            assert_eq!((ids, got_skipped), (kept, skipped), "{body:?}");
        }
        // What is not a well-formed array still fails the whole page.
        for body in [
            &b"[{\"id\":\"a\xff\"} {\"id\":\"b\"}]"[..],
            b"[{\"id\":\"a\xff\"},]",
            b"[{\"id\":\"\xff\"}] x",
        ] {
            assert!(page(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn strings_longer_than_the_cap_are_cut_on_a_character_boundary_and_marked() {
        let long = "é".repeat(MAX_STRING_BYTES);
        let cut = cap(Cow::Borrowed(&long));
        assert!(
            cut.len() <= MAX_STRING_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(
            cut.len(),
            MAX_STRING_BYTES - 1,
            "1021 bytes of é round down to 1020"
        );
        let exact = "a".repeat(MAX_STRING_BYTES);
        assert!(matches!(cap(Cow::Borrowed(&exact)), Cow::Borrowed(_)));
        let body = format!(r#"[{{"id":"{}"}}]"#, "n".repeat(1_000_000));
        let (agents, _) = page(body.as_bytes()).unwrap();
        assert_eq!(agents[0].id.len(), MAX_STRING_BYTES);
    }

    #[test]
    fn timestamps_parse_as_rfc_3339_and_garbage_drops_only_the_field() {
        let utc = |s: &str| s.parse::<Timestamp>().unwrap();
        for (text, want) in [
            ("2026-11-22T07:21:58Z", Some(utc("2026-11-22T07:21:58Z"))),
            (
                "2026-11-22T07:21:58.123456789Z",
                Some(utc("2026-11-22T07:21:58Z") + jiff::SignedDuration::from_nanos(123_456_789)),
            ),
            (
                "2026-11-22T08:21:58+01:00",
                Some(utc("2026-11-22T07:21:58Z")),
            ),
            ("2026-11-22T07:21:58", None),
            ("2026-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("yesterday", None),
            ("", None),
        ] {
            assert_eq!(timestamp("agent", "field", Some(text)), want, "{text:?}");
        }
        assert_eq!(timestamp("agent", "field", None), None);
    }

    #[test]
    fn object_members_hand_out_raw_values_even_when_one_is_not_utf8() {
        let body = b" {\"data\": [{\"id\":\"caf\xe9\"}, 1] , \"meta\":{\"page\":null}}\n";
        let members = object_members(body).expect("an object");
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["data", "meta"]);
        assert_eq!(members[0].1, b"[{\"id\":\"caf\xe9\"}, 1]");
        assert_eq!(members[1].1, b"{\"page\":null}");
        assert_eq!(object_members(b"{}").map(|m| m.len()), Some(0));
        for bad in [&b"[1]"[..], b"{\"a\" 1}", b"{\"a\":1", b"{\"a\":1} x", b""] {
            assert!(
                object_members(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
