//! A second, schema-free read of a config file that failed to load, so that an error serde places badly can be
//! placed and explained: the line of a key path (a missing key is reported at its parent's line, where the key
//! belongs) and the scalar written where a list was expected (so the message can show the list to write instead).
//!
//! The tree is read by serde-saphyr itself, with [`Spanned`] keys and values; only a file that already failed is
//! read twice.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node: a mapping (keys with their lines), a sequence, or a scalar as written.
#[derive(Debug)]
pub enum Node {
    /// A mapping; keys that are not scalars are kept as an empty string.
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    /// A sequence.
    Seq(Vec<Spanned<Node>>),
    /// A scalar, as its text (`null` for an empty value).
    Scalar(String),
}

/// One step of a key path as serde_path_to_error writes it (`alerting.email.to`, `sources[0].name`).
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `alerting.routes[2].to` into `alerting`, `routes`, `2`, `to`. Keys that contain `.` or `[` are not
/// written by this config, so the split needs no escaping.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Step::Index(i));
            }
            rest = after.trim_start_matches('[');
        }
    }
    out
}

impl Node {
    /// Reads `text` as a tree; `None` if it is not YAML.
    pub fn read(text: &str) -> Option<Spanned<Node>> {
        serde_saphyr::from_str(text).ok()
    }
}

/// The node at key `path` of `root` and the line where it is named: a mapping key's own line (`alerting:`), a
/// sequence item's first line. The empty path is the document, at line 1.
pub fn find<'a>(root: &'a Spanned<Node>, path: &str) -> Option<(u64, &'a Node)> {
    let mut line = 1;
    let mut node = &root.value;
    for step in steps(path) {
        let next = match (step, node) {
            (Step::Key(k), Node::Map(entries)) => {
                let (key, value) = entries.iter().find(|(key, _)| key.value == k)?;
                line = key.referenced.line();
                value
            }
            (Step::Index(i), Node::Seq(items)) => {
                let item = items.get(i)?;
                line = item.referenced.line();
                item
            }
            _ => return None,
        };
        node = &next.value;
    }
    Some((line, node))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar("null".to_string()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar("null".to_string()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Spanned<KeyText>, Spanned<Node>>()? {
            let key = Spanned::new(key.value.0, key.referenced, key.defined);
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text; a key that is not a scalar reads as the empty string.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        Ok(KeyText(match Node::deserialize(d)? {
            Node::Scalar(s) => s,
            _ => String::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_find_the_line_that_names_them() {
        let text = "sources:\n  - name: x\n    provider: celigo\nalerting:\n  email:\n    to: ops@example.com\n";
        let root = Node::read(text).unwrap();
        let line = |p: &str| find(&root, p).map(|(l, _)| l);
        assert_eq!(line(""), Some(1));
        assert_eq!(line("sources"), Some(1));
        assert_eq!(line("sources[0]"), Some(2));
        assert_eq!(line("sources[0].provider"), Some(3));
        assert_eq!(line("alerting"), Some(4));
        assert_eq!(line("alerting.email.to"), Some(6));
        assert_eq!(line("alerting.nothing"), None);
        assert!(matches!(
            find(&root, "alerting.email.to"),
            Some((6, Node::Scalar(s))) if s == "ops@example.com"
        ));
    }
}
