//! Lenient decoding of vendor JSON records, shared by the Celigo, Planasonix and Calyptia parsers.
//!
//! A provider describes the fields it reads with [`Fields`]: a list of key names and a setter. [`Record`] then reads
//! one element of a list: an object fills the provider's fields (every other key, secrets included, is skipped by the
//! parser without being stored), and anything else (a string, a number, `null`, an array) becomes `None`, so the
//! caller can skip and count it instead of losing the page. [`Scalar`] holds one field's value whatever its JSON type,
//! so that a wrongly typed field drops only itself.

use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields of one record that a provider reads.
pub trait Fields: Default {
    /// The JSON keys read, in any order; a key's position is the index [`Fields::set`] receives.
    const KEYS: &'static [&'static str];
    /// Stores the value of `KEYS[index]`.
    fn set(&mut self, index: usize, value: Scalar);
}

/// The value of a field we read, whatever its JSON type. Objects and arrays are skipped unread.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Bool(bool),
    Num(f64),
    /// `null`, an object or an array.
    Other,
}

impl Scalar {
    /// The string, if and only if the value is a non-empty string.
    pub fn string(self) -> Option<String> {
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

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// One element of a record list: `Some` for an object, `None` for anything else.
pub struct Record<F>(pub Option<F>);

impl<'de, F: Fields> Deserialize<'de> for Record<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Record<F>, D::Error> {
        deserializer.deserialize_any(RecordVisitor(PhantomData))
    }
}

struct RecordVisitor<F>(PhantomData<F>);

impl<'de, F: Fields> Visitor<'de> for RecordVisitor<F> {
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

impl<'de, F: Fields> Deserialize<'de> for Document<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Document<F>, D::Error> {
        struct DocumentVisitor<F>(PhantomData<F>);
        impl<'de, F: Fields> Visitor<'de> for DocumentVisitor<F> {
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
pub fn timestamp(id: &str, field: &'static str, value: Option<String>) -> Option<Timestamp> {
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

/// A decode error in words that never quote the body: serde_json's own messages can repeat a value from it.
/// `expected` says what the body should have been, e.g. "a JSON array of agent records".
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Two {
        id: Option<String>,
        n: Option<f64>,
    }

    impl Fields for Two {
        const KEYS: &'static [&'static str] = &["id", "n"];
        fn set(&mut self, index: usize, value: Scalar) {
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
}
