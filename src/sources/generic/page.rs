//! Reading one page of a generic source along the configured paths: the trie of field paths ([`Plan`]), the
//! serde_json walk that fills each record's mapped values and skips everything else unread, and the checks that a
//! page has the fields the config names. See [`super`] for the rules.

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use url::Url;

use crate::config::generic::{FieldPath, GenericConfig, Offline, Pagination};
use crate::domain::{Agent, Label, TokenDateSource};
use crate::sources::UpstreamError;
use crate::sources::http::display_url;
use crate::sources::record::{MAX_STRING_BYTES, Scalar, array_elements, describe, object_members};

/// The longest value of an extra label, bytes; a longer one is cut on a character boundary and marked with `…`.
/// Extra labels sit on every agent's info series, so they are kept shorter than names and versions.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

/// The magnitude from which an epoch number is read as milliseconds rather than seconds.
pub const MILLISECONDS_FROM: f64 = 1e11;

/// The fixed slots of a record's values; labels follow from [`LABELS`].
const ID: usize = 0;
const NAME: usize = 1;
const HEARTBEAT: usize = 2;
const OFFLINE: usize = 3;
const VERSION: usize = 4;
const TOKEN_ROTATED: usize = 5;
const CREATED: usize = 6;
const LABELS: usize = 7;

// Which slots a record had is kept in a `u32`.
const _: () = assert!(LABELS + crate::config::generic::MAX_LABELS <= 32);

/// The configured field paths as a trie over their segments, so a record is walked once whatever the number of
/// fields, and two fields may read the same path (an `offline` value list and a `status` label, say).
#[derive(Debug)]
pub struct Plan {
    root: Node,
    /// Slots in use: [`LABELS`] plus the labels.
    slots: usize,
    /// The label names, in the order of their slots.
    labels: Vec<Label>,
    /// The offline rule, with its values.
    offline: Option<Offline>,
}

/// One segment of the trie.
#[derive(Debug, Default)]
struct Node {
    /// The slots whose path ends here.
    slots: Vec<usize>,
    /// The next segments.
    children: Vec<(String, Node)>,
}

impl Node {
    fn insert(&mut self, path: &FieldPath, slot: usize) {
        let mut node = self;
        for segment in &path.segments {
            let at = match node.children.iter().position(|(k, _)| k == segment) {
                Some(at) => at,
                None => {
                    node.children.push((segment.clone(), Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node.slots.push(slot);
    }
}

impl Plan {
    /// The trie of a generic block's fields.
    pub fn new(config: &GenericConfig) -> Plan {
        let f = &config.fields;
        let mut root = Node::default();
        root.insert(&f.id, ID);
        root.insert(&f.name, NAME);
        let optional = [
            (&f.heartbeat, HEARTBEAT),
            (&f.version, VERSION),
            (&f.token_rotated_at, TOKEN_ROTATED),
            (&f.created_at, CREATED),
        ];
        for (path, slot) in optional {
            if let Some(path) = path {
                root.insert(path, slot);
            }
        }
        match &f.offline {
            Some(Offline::Flag(path)) | Some(Offline::Values { field: path, .. }) => {
                root.insert(path, OFFLINE)
            }
            None => {}
        }
        for (i, (_, path)) in f.labels.iter().enumerate() {
            root.insert(path, LABELS + i);
        }
        Plan {
            root,
            slots: LABELS + f.labels.len(),
            labels: f.labels.iter().map(|(name, _)| *name).collect(),
            offline: f.offline.clone(),
        }
    }
}

/// The mapped values of one record, and which of its paths the record had at all (whatever the value, `null`
/// included), for the "no record has" check.
struct Values<'de> {
    values: Vec<Option<Scalar<'de>>>,
    /// Bit `slot` is set when the record had the slot's path. At most [`LABELS`] + 16 slots.
    present: u32,
}

impl<'de> Values<'de> {
    fn new(slots: usize) -> Values<'de> {
        Values {
            values: vec![None; slots],
            present: 0,
        }
    }

    fn set(&mut self, slots: &[usize], value: &Scalar<'de>) {
        for slot in slots {
            self.present |= 1 << slot;
            self.values[*slot] = Some(value.clone());
        }
    }

    fn take(&mut self, slot: usize) -> Option<Scalar<'de>> {
        self.values.get_mut(slot).and_then(Option::take)
    }

    /// The agent, or `None` when the record has no usable id (a non-empty string or a whole number).
    fn into_agent(mut self, plan: &Plan) -> Option<Agent> {
        let id = self.take(ID).and_then(scalar_text)?;
        let id = cut(id, MAX_STRING_BYTES);
        let name = self.take(NAME).and_then(Scalar::text).unwrap_or_default();
        let mut agent = Agent::new(id, name.into_owned());
        agent.version = self
            .take(VERSION)
            .and_then(Scalar::text)
            .map(Cow::into_owned);
        agent.last_heartbeat = self.take(HEARTBEAT).and_then(timestamp);
        agent.created_at = self.take(CREATED).and_then(timestamp);
        match self.take(TOKEN_ROTATED).and_then(timestamp) {
            Some(rotated) => {
                agent.token_rotated = Some(rotated);
                agent.token_rotated_source = TokenDateSource::Rotation;
            }
            // As for Celigo: a token never rotated is as old as the agent.
            None => {
                agent.token_rotated = agent.created_at;
                agent.token_rotated_source = TokenDateSource::Created;
            }
        }
        let offline = self.take(OFFLINE);
        agent.offline = match (&plan.offline, offline) {
            (Some(Offline::Flag(_)), Some(value)) => value.bool() == Some(true),
            (Some(Offline::Values { values, .. }), Some(value)) => scalar_text(value)
                .is_some_and(|v| values.iter().any(|o| o.eq_ignore_ascii_case(v.trim()))),
            _ => false,
        };
        agent.info = plan
            .labels
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = self.take(LABELS + i).and_then(scalar_text);
                let value = value
                    .map(|v| cut(v, MAX_LABEL_VALUE_BYTES))
                    .unwrap_or_default();
                (name.as_str(), value)
            })
            .collect();
        Some(agent)
    }
}

/// A scalar as text: a non-empty string, a whole number in decimal, a finite number as Rust prints it, or `true` or
/// `false`. `null`, an empty string, an object or an array give `None`.
fn scalar_text(value: Scalar<'_>) -> Option<String> {
    match value {
        Scalar::Str(s) if !s.is_empty() => Some(s.into_owned()),
        Scalar::Num(n) if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 => {
            Some(format!("{n:.0}"))
        }
        Scalar::Num(n) if n.is_finite() => Some(n.to_string()),
        Scalar::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `s` cut to at most `max` bytes on a character boundary, the cut marked with `…` (marker included in `max`).
fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    const MARK: &str = "…";
    let mut end = max - MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(MARK);
    s
}

/// Reads a timestamp field; see the module documentation for the accepted forms. Never logs the value: the path
/// may look like a secret's (`__accessTokenLastModifiedAt`).
pub fn timestamp(value: Scalar<'_>) -> Option<Timestamp> {
    match value {
        Scalar::Str(s) => {
            let s = s.trim();
            if let Ok(t) = s.parse::<Timestamp>() {
                return Some(t);
            }
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse::<f64>().ok().and_then(epoch);
            }
            None
        }
        Scalar::Num(n) => epoch(n),
        _ => None,
    }
}

/// Seconds or milliseconds since the Unix epoch (see [`MILLISECONDS_FROM`]) as an instant; `None` when out of range.
fn epoch(n: f64) -> Option<Timestamp> {
    // Whole and fractional parts apart: 1e11 seconds times 1e9 is past f64's exact integers, and would move a whole
    // number of seconds by microseconds.
    if !n.is_finite() || n.abs() > 1e20 {
        return None;
    }
    let per_unit: i128 = if n.abs() >= MILLISECONDS_FROM {
        1_000_000
    } else {
        1_000_000_000
    };
    let whole = n.trunc();
    let fraction = ((n - whole) * per_unit as f64).round() as i128;
    Timestamp::from_nanosecond(whole as i128 * per_unit + fraction).ok()
}

/// What reading one page gives besides the agents.
#[derive(Debug, Default, PartialEq)]
pub struct PageRead {
    /// The next cursor, for cursor pagination.
    pub cursor: Option<String>,
    /// Records skipped as unusable.
    pub skipped: u64,
}

/// What the page walk collects.
struct PageOut<'a> {
    plan: &'a Plan,
    account: &'a str,
    page: &'a Url,
    agents: &'a mut Vec<Agent>,
    skipped: u64,
    /// Records that were objects.
    objects: u64,
    /// The union of the records' `present` bits.
    present: u32,
    /// Whether the items path led to an array.
    found_items: bool,
    cursor: Option<String>,
    index: usize,
}

impl PageOut<'_> {
    fn record(&mut self, record: Option<Values<'_>>) {
        let index = self.index;
        self.index += 1;
        let agent = match record {
            Some(values) => {
                self.objects += 1;
                self.present |= values.present;
                values.into_agent(self.plan)
            }
            None => None,
        };
        match agent {
            Some(agent) => self.agents.push(agent),
            None => {
                self.skipped += 1;
                tracing::debug!(
                    account = self.account,
                    page = %display_url(self.page),
                    index,
                    "skipping an agent record that is not an object with a usable id"
                );
            }
        }
    }

    fn skip_undecodable(&mut self, e: &serde_json::Error) {
        tracing::debug!(
            account = self.account,
            page = %display_url(self.page),
            index = self.index,
            error = %describe(e, "an agent record"),
            "skipping an agent record that does not decode"
        );
        self.index += 1;
        self.skipped += 1;
    }
}

/// Reads one page onto the end of `agents`. On error `agents` holds what it held before.
///
/// Fails when the body is not what the config describes (not JSON, no array at `items`), and when a page with
/// records has no record carrying `fields.id`, `fields.name` or `fields.heartbeat`: a path that matches nothing is a
/// wrong config, and reporting a fleet without heartbeats would page everyone.
pub fn read_page(
    body: &[u8],
    url: &Url,
    account: &str,
    plan: &Plan,
    config: &GenericConfig,
    agents: &mut Vec<Agent>,
) -> Result<PageRead, UpstreamError> {
    let before = agents.len();
    let expected = match &config.items {
        Some(items) => format!("a JSON object with an array at {:?}", items.text),
        None => "a JSON array of agent records".to_string(),
    };
    let next = match &config.pagination {
        Pagination::Cursor { next, .. } => Some(next.segments.as_slice()),
        _ => None,
    };
    let items = config
        .items
        .as_ref()
        .map_or(&[][..], |i| i.segments.as_slice());
    let mut out = PageOut {
        plan,
        account,
        page: url,
        agents,
        skipped: 0,
        objects: 0,
        present: 0,
        found_items: false,
        cursor: None,
        index: 0,
    };
    let mut reader = serde_json::Deserializer::from_slice(body);
    let whole = PageSeed {
        items: Some(items),
        next,
        out: &mut out,
    }
    .deserialize(&mut reader)
    .and_then(|()| reader.end());
    if let Err(e) = whole {
        out.agents.truncate(before);
        out.skipped = 0;
        out.objects = 0;
        out.present = 0;
        out.index = 0;
        out.cursor = None;
        out.found_items = false;
        let failed = || UpstreamError::Decode {
            url: display_url(url),
            message: describe(&e, &expected),
        };
        if read_page_slowly(body, items, next, &mut out).is_none() {
            out.agents.truncate(before);
            return Err(failed());
        }
    }
    if !out.found_items {
        out.agents.truncate(before);
        let message = match &config.items {
            Some(items) => format!(
                "{}.items: the body has no array at {:?}",
                config.key, items.text
            ),
            None => format!("expected {expected}"),
        };
        return Err(UpstreamError::Decode {
            url: display_url(url),
            message,
        });
    }
    if out.objects > 0 {
        let f = &config.fields;
        let required = [
            (ID, "id", Some(&f.id)),
            (NAME, "name", Some(&f.name)),
            (HEARTBEAT, "heartbeat", f.heartbeat.as_ref()),
        ];
        for (slot, name, path) in required {
            if let Some(path) = path
                && out.present & (1 << slot) == 0
            {
                out.agents.truncate(before);
                return Err(UpstreamError::MissingField {
                    url: display_url(url),
                    key: format!("{}.fields.{name}", config.key),
                    path: path.text.clone(),
                });
            }
        }
    }
    Ok(PageRead {
        cursor: out.cursor,
        skipped: out.skipped,
    })
}

/// The slow path of [`read_page`]: the envelope taken apart with [`object_members`] down to the items and the cursor,
/// the array with [`array_elements`], and each record decoded on its own. `None` when the body is not well-formed
/// JSON of the expected shape.
fn read_page_slowly(
    body: &[u8],
    items: &[String],
    next: Option<&[String]>,
    out: &mut PageOut<'_>,
) -> Option<()> {
    let find = |mut at: &[u8], path: &[String]| -> Option<Option<Vec<u8>>> {
        for segment in path {
            let members = object_members(at)?;
            match members.into_iter().find(|(k, _)| k == segment) {
                Some((_, value)) => at = value,
                None => return Some(None),
            }
        }
        Some(Some(at.to_vec()))
    };
    if let Some(next) = next
        && let Some(raw) = find(body, next)?
    {
        let cursor: Scalar<'_> = serde_json::from_slice(&raw).ok()?;
        out.cursor = cursor_text(cursor);
    }
    let Some(array) = find(body, items)? else {
        return Some(());
    };
    let elements = array_elements(&array)?;
    out.found_items = true;
    for element in elements {
        let mut reader = serde_json::Deserializer::from_slice(element);
        let decoded = RecordSeed { plan: out.plan }
            .deserialize(&mut reader)
            .and_then(|r| reader.end().map(|()| r));
        match decoded {
            Ok(record) => out.record(record),
            Err(e) => out.skip_undecodable(&e),
        }
    }
    Some(())
}

/// The text of a cursor: a non-empty string, or a whole number as its decimal text; anything else ends the list.
fn cursor_text(c: Scalar<'_>) -> Option<String> {
    match c {
        Scalar::Str(s) if !s.is_empty() => Some(s.into_owned()),
        Scalar::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{n:.0}")),
        _ => None,
    }
}

/// Walks a page body towards the items array and the cursor. `items` and `next` are what remains of their paths
/// below this value (`None`: not below it); an empty remainder means this value is the array or the cursor.
struct PageSeed<'p, 'o, 'a> {
    items: Option<&'p [String]>,
    next: Option<&'p [String]>,
    out: &'o mut PageOut<'a>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.next.is_some_and(<[String]>::is_empty) {
            let cursor = Scalar::deserialize(deserializer)?;
            self.out.cursor = cursor_text(cursor);
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the agent list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.items.is_some_and(<[String]>::is_empty) {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        self.out.found_items = true;
        let plan = self.out.plan;
        while let Some(record) = seq.next_element_seed(RecordSeed { plan })? {
            self.out.record(record);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let paths = PathKey {
            items: self.items,
            next: self.next,
        };
        while let Some((items, next)) = map.next_key_seed(paths)? {
            if items.is_some() || next.is_some() {
                map.next_value_seed(PageSeed {
                    items,
                    next,
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads a key of an object on the way to the items or the cursor and returns what remains of each path below it
/// (`None`: the path does not go through this key). Matching on the borrowed key keeps other keys from being
/// allocated.
#[derive(Clone, Copy)]
struct PathKey<'p> {
    items: Option<&'p [String]>,
    next: Option<&'p [String]>,
}

/// What remains of the items path and of the cursor path below a key.
type Below<'p> = (Option<&'p [String]>, Option<&'p [String]>);

impl<'de, 'p> DeserializeSeed<'de> for PathKey<'p> {
    type Value = Below<'p>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Below<'p>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'p> Visitor<'_> for PathKey<'p> {
    type Value = Below<'p>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Below<'p>, E> {
        let below = |path: Option<&'p [String]>| match path {
            Some([first, rest @ ..]) if first == key => Some(rest),
            _ => None,
        };
        Ok((below(self.items), below(self.next)))
    }
}

/// Reads one element of the items array: `Some` with its mapped values for an object, `None` for anything else.
struct RecordSeed<'p> {
    plan: &'p Plan,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Option<Values<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let mut values = Values::new(self.plan.slots);
        let object = NodeSeed {
            node: &self.plan.root,
            out: &mut values,
        }
        .deserialize(deserializer)?;
        Ok(object.then_some(values))
    }
}

/// Reads the value at one node of the trie: a scalar fills the node's slots, an object is walked along the node's
/// children (anything else in it skipped unread). Returns whether the value was an object.
struct NodeSeed<'p, 'v, 'de> {
    node: &'p Node,
    out: &'v mut Values<'de>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl NodeSeed<'_, '_, '_> {
    fn other(self) -> bool {
        self.out.set(&self.node.slots, &Scalar::Other);
        false
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<bool, E> {
        self.out
            .set(&self.node.slots, &Scalar::Str(Cow::Borrowed(v)));
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        // Only a string with an escape gets here; cut it before it is copied for every slot.
        let kept = crate::sources::record::cap(Cow::Borrowed(v)).into_owned();
        self.out
            .set(&self.node.slots, &Scalar::Str(Cow::Owned(kept)));
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.out.set(&self.node.slots, &Scalar::Bool(v));
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.out.set(&self.node.slots, &Scalar::Num(v as f64));
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.out.set(&self.node.slots, &Scalar::Num(v as f64));
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.out.set(&self.node.slots, &Scalar::Num(v));
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let (node, out) = (self.node, self.out);
        out.set(&node.slots, &Scalar::Other);
        while let Some(key) = map.next_key_seed(ChildKey(&node.children))? {
            match key {
                Some(child) => {
                    map.next_value_seed(NodeSeed {
                        node: &node.children[child].1,
                        out: &mut *out,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }
}

/// Reads a map key and returns the position of the child it names, or `None` for a key on no configured path.
/// Matching on the borrowed key keeps unknown keys from being allocated.
struct ChildKey<'p>(&'p [(String, Node)]);

impl<'de> DeserializeSeed<'de> for ChildKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for ChildKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(k, _)| k == key))
    }
}
