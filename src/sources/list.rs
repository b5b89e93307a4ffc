//! A strict JSON reader for the one document shape that dominates a poll: a top-level array of records.
//!
//! At 100k agents a poll reads about 21 MiB of JSON, and reading it through serde's visitor machinery cost more CPU
//! than the simulator spends writing it. This reader walks the bytes once and hands each record's fields straight to
//! the provider's [`Fields`], with strings borrowed from the body unless they hold an escape. Keys and values we do
//! not read are validated and skipped; nothing of them is stored, secrets included.
//!
//! It accepts exactly what `serde_json::from_slice` accepts for such a document (RFC 8259: no comments, no trailing
//! commas, no control characters inside strings, every escape checked, a number's grammar checked, one document with
//! nothing but whitespace after it; UTF-8 and surrogate pairs are checked in the strings it decodes, that is keys and
//! the values read, so a stray byte in a field nobody reads does not cost the page); a test compares the two on
//! thousands of damaged bodies. One deliberate difference, on input no real API sends: nesting deeper than
//! [`MAX_DEPTH`] is an error wherever it occurs, where serde_json skips an unread value of any depth.

use std::borrow::Cow;
use std::fmt;

use url::Url;

use crate::model::Agent;
use crate::sources::UpstreamError;
use crate::sources::http::display_url;
use crate::sources::record::{Fields, Problem, Scalar, decode_message, keep_or_skip};

/// How deeply arrays and objects may nest, counting the top-level array: the deepest serde_json reads.
pub const MAX_DEPTH: usize = 127;

/// Why a body is not a list of records, and where (line and column, both from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    problem: Problem,
    line: usize,
    column: usize,
}

impl ListError {
    /// The error in words that never quote the body. `expected` says what the body should have been, e.g. "a JSON
    /// array of agent records".
    pub fn describe(&self, expected: &str) -> String {
        decode_message(self.problem, expected, self.line, self.column)
    }
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("a JSON array"))
    }
}

impl std::error::Error for ListError {}

/// Reads a JSON array of records, handing each element to `each` as soon as it is read: `Some` for an object (its
/// keys in `F::KEYS` set, every other key skipped), `None` for any other value, so the caller can skip and count it
/// without losing the page. Anything but an array, or malformed JSON anywhere in the body, is an error; records
/// already handed over before the error was found are then the caller's to throw away.
pub fn each_record<'de, F: Fields<'de>>(
    body: &'de [u8],
    mut each: impl FnMut(Option<F>),
) -> Result<(), ListError> {
    let mut reader = Reader::new(body);
    reader
        .list(&mut each)
        .map_err(|problem| error_at(body, reader.at, problem))
}

/// Reads a page that is a JSON array of agent records onto the end of `agents`, and returns how many records were
/// skipped: `into_agent` turns a record into an agent, or refuses it (no usable id) and the record is counted (see
/// [`keep_or_skip`]). A body that is not such an array fails the page with a [`UpstreamError::Decode`] that never
/// quotes it; what was appended before is then the caller's to throw away with the poll.
pub fn read_agents<'de, F: Fields<'de>>(
    body: &'de [u8],
    page: &Url,
    account: &str,
    into_agent: impl Fn(F) -> Option<Agent>,
    agents: &mut Vec<Agent>,
) -> Result<u64, UpstreamError> {
    let mut skipped = 0;
    let mut index = 0;
    each_record(body, |record: Option<F>| {
        let agent = record.and_then(&into_agent);
        keep_or_skip(agent, agents, &mut skipped, account, page, index);
        index += 1;
    })
    .map_err(|e| UpstreamError::Decode {
        url: display_url(page),
        message: e.describe("a JSON array of agent records"),
    })?;
    Ok(skipped)
}

/// The line and column (both from 1) of a byte offset.
fn error_at(body: &[u8], offset: usize, problem: Problem) -> ListError {
    let before = &body[..offset.min(body.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    ListError {
        problem,
        line,
        column,
    }
}

/// Bytes that end the fast scan of a string: the closing quote, a backslash, and the control characters JSON forbids.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

type Step<T> = Result<T, Problem>;

/// A cursor over the body. On error, `at` is where the problem was found.
struct Reader<'de> {
    bytes: &'de [u8],
    /// The whole body as text, when all of it is UTF-8 (as it should be): strings are then slices of it with no
    /// further check. Otherwise each string we decode is checked on its own, as serde_json does.
    text: Option<&'de str>,
    at: usize,
}

impl<'de> Reader<'de> {
    fn new(bytes: &'de [u8]) -> Reader<'de> {
        Reader {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
            at: 0,
        }
    }

    /// `bytes[start..end]` as text; an error at the first bad byte if it is not UTF-8.
    fn text(&mut self, start: usize, end: usize) -> Step<&'de str> {
        // Strings start and end next to ASCII bytes (quotes, escapes), so the slice falls on character boundaries.
        if let Some(text) = self.text.and_then(|t| t.get(start..end)) {
            return Ok(text);
        }
        std::str::from_utf8(&self.bytes[start..end]).map_err(|e| {
            self.at = start + e.valid_up_to();
            Problem::Syntax
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The next byte after any whitespace, not consumed; `Eof` at the end.
    fn peek_token(&mut self) -> Step<u8> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.at += 1,
                _ => return Ok(b),
            }
        }
        Err(Problem::Eof)
    }

    /// The whole document: one array, then only whitespace.
    fn list<F: Fields<'de>>(&mut self, each: &mut impl FnMut(Option<F>)) -> Step<()> {
        match self.peek_token()? {
            b'[' => self.at += 1,
            b'{' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                // Valid JSON of the wrong type is a data error, as long as it is JSON at all.
                let start = self.at;
                self.skip_value(1)?;
                self.end()?;
                self.at = start;
                return Err(Problem::Data);
            }
            _ => return Err(Problem::Syntax),
        }
        if self.peek_token()? == b']' {
            self.at += 1;
            return self.end();
        }
        let mut follows = vec![0; F::KEYS.len() + 1];
        loop {
            match self.peek_token()? {
                b'{' => {
                    self.at += 1;
                    each(Some(self.record::<F>(&mut follows)?));
                }
                _ => {
                    // Read, not just skipped, as serde_json reads it: a string element is decoded and a number's
                    // range checked, although the value itself is then dropped.
                    self.scalar(2)?;
                    each(None);
                }
            }
            match self.peek_token()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return self.end();
                }
                _ => return Err(Problem::Syntax),
            }
        }
    }

    /// Only whitespace may follow the document.
    fn end(&mut self) -> Step<()> {
        match self.peek_token() {
            Err(Problem::Eof) => Ok(()),
            _ => Err(Problem::Syntax),
        }
    }

    /// The members of a record, after its `{`, through its `}`.
    ///
    /// Records of one list share their key order, so each key is first tested against the one that followed the
    /// previous key last time: `follows[i]` is the key seen after key `i`, and `follows[KEYS.len()]` the first key.
    fn record<F: Fields<'de>>(&mut self, follows: &mut [usize]) -> Step<F> {
        let mut fields = F::default();
        let mut previous = F::KEYS.len();
        if self.peek_token()? == b'}' {
            self.at += 1;
            return Ok(fields);
        }
        loop {
            if self.peek_token()? != b'"' {
                return Err(Problem::Syntax);
            }
            self.at += 1;
            let index = self.key(F::KEYS, follows[previous])?;
            if let Some(index) = index {
                follows[previous] = index;
                previous = index;
            }
            self.colon()?;
            match index {
                Some(index) => {
                    let value = self.scalar(3)?;
                    fields.set(index, value);
                }
                None => self.skip_value(3)?,
            }
            match self.peek_token()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(fields);
                }
                _ => return Err(Problem::Syntax),
            }
        }
    }

    /// A record's key, after its opening quote: its index in `keys`, or `None` for a key we do not read. A key
    /// without escapes (every real one) is matched on its bytes, trying `keys[guess]` first; as serde_json decodes
    /// every key of a record, one we do not read still has its UTF-8 checked.
    fn key(&mut self, keys: &[&str], guess: usize) -> Step<Option<usize>> {
        let start = self.at;
        // The likely key, tested in place: its bytes, then the closing quote.
        if let Some(k) = keys.get(guess) {
            let end = start + k.len();
            if self.bytes.get(start..end) == Some(k.as_bytes())
                && self.bytes.get(end) == Some(&b'"')
            {
                self.at = end + 1;
                return Ok(Some(guess));
            }
        }
        let end = self.stop(start);
        if self.bytes.get(end) != Some(&b'"') {
            // An escape (or an error): decode it in full, then match.
            let key = self.string(true)?;
            return Ok(keys.iter().position(|k| *k == key));
        }
        let raw = &self.bytes[start..end];
        let index = keys.iter().position(|k| k.as_bytes() == raw);
        if index.is_none() {
            self.text(start, end)?;
        }
        self.at = end + 1;
        Ok(index)
    }

    /// The first byte at or after `from` that ends the fast scan of a string (see [`STRING_STOP`]), or the end of
    /// the body. Eight bytes are tested at a time: a quote, a backslash or a byte below 0x20 sets its top bit in
    /// `found`, and the lowest set bit marks the first such byte (bits above it may be false alarms, never below).
    fn stop(&self, from: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let rest = &self.bytes[from..];
        let mut chunks = rest.chunks_exact(8);
        let mut i = from;
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let found = zero_byte(word ^ (ONES * u64::from(b'"')))
                | zero_byte(word ^ (ONES * u64::from(b'\\')))
                | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
            if found != 0 {
                return i + (found.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        let tail = chunks.remainder();
        i + tail
            .iter()
            .position(|&b| STRING_STOP[b as usize])
            .unwrap_or(tail.len())
    }

    fn colon(&mut self) -> Step<()> {
        if self.peek_token()? != b':' {
            return Err(Problem::Syntax);
        }
        self.at += 1;
        Ok(())
    }

    /// A value we read; `depth` as for [`Reader::skip_value`], should it be an array or an object (which are
    /// skipped).
    fn scalar(&mut self, depth: usize) -> Step<Scalar<'de>> {
        Ok(match self.peek_token()? {
            b'"' => {
                self.at += 1;
                Scalar::Str(self.string(true)?)
            }
            b't' => {
                self.literal(b"true")?;
                Scalar::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Scalar::Bool(false)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                self.number()?;
                // serde_json refuses a number it reads that overflows an f64; so do we.
                match self.text(start, self.at)?.parse::<f64>() {
                    Ok(n) if n.is_finite() => Scalar::Num(n),
                    _ => {
                        self.at = start;
                        return Err(Problem::Syntax);
                    }
                }
            }
            _ => {
                self.skip_value(depth)?;
                Scalar::Other
            }
        })
    }

    /// Skips one value of any type, checking it; `depth` is the nesting level the value opens if it is an array or
    /// an object (the top-level array is level 1, a record level 2).
    fn skip_value(&mut self, depth: usize) -> Step<()> {
        match self.peek_token()? {
            b'"' => {
                self.at += 1;
                self.string(false).map(drop)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            open @ (b'[' | b'{') => {
                if depth > MAX_DEPTH {
                    return Err(Problem::Syntax);
                }
                self.at += 1;
                let close = if open == b'[' { b']' } else { b'}' };
                if self.peek_token()? == close {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        if self.peek_token()? != b'"' {
                            return Err(Problem::Syntax);
                        }
                        self.at += 1;
                        // Keys inside a skipped value are skipped like strings, as serde_json skips them.
                        self.string(false)?;
                        self.colon()?;
                    }
                    self.skip_value(depth + 1)?;
                    match self.peek_token()? {
                        b',' => self.at += 1,
                        b if b == close => {
                            self.at += 1;
                            return Ok(());
                        }
                        _ => return Err(Problem::Syntax),
                    }
                }
            }
            _ => Err(Problem::Syntax),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        let end = self.at + word.len();
        match self.bytes.get(self.at..end) {
            Some(found) if found == word => {
                self.at = end;
                Ok(())
            }
            Some(_) => Err(Problem::Syntax),
            None if word.starts_with(&self.bytes[self.at..]) => {
                self.at = self.bytes.len();
                Err(Problem::Eof)
            }
            None => Err(Problem::Syntax),
        }
    }

    /// A number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Step<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            Some(_) => return Err(Problem::Syntax),
            None => return Err(Problem::Eof),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// At least one digit.
    fn some_digits(&mut self) -> Step<()> {
        match self.peek() {
            Some(b) if b.is_ascii_digit() => {
                self.digits();
                Ok(())
            }
            Some(_) => Err(Problem::Syntax),
            None => Err(Problem::Eof),
        }
    }

    /// The rest of a string, after its opening quote, through its closing one. Borrowed from the body unless it
    /// holds an escape. `decode` says whether the value is used: serde_json then refuses bytes that are not UTF-8 and
    /// a lone surrogate (`\ud800`), while in a value it skips it checks only the escapes' shape (and so do we). A
    /// string that is not decoded comes back empty.
    fn string(&mut self, decode: bool) -> Step<Cow<'de, str>> {
        let bytes = self.bytes;
        let mut owned: Option<String> = None;
        let mut run = self.at;
        let mut i = self.at;
        loop {
            i = self.stop(i);
            match bytes.get(i) {
                Some(b'"') if !decode => {
                    self.at = i + 1;
                    return Ok(Cow::Borrowed(""));
                }
                Some(b'"') => {
                    let tail = self.text(run, i)?;
                    self.at = i + 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    if decode {
                        let run_text = self.text(run, i)?;
                        self.at = i + 1;
                        let s = owned.get_or_insert_with(String::new);
                        s.push_str(run_text);
                        self.escape(Some(s))?;
                    } else {
                        self.at = i + 1;
                        self.escape(None)?;
                    }
                    run = self.at;
                    i = self.at;
                }
                Some(_) => {
                    self.at = i;
                    return Err(Problem::Syntax);
                }
                None => {
                    self.at = i;
                    return Err(Problem::Eof);
                }
            }
        }
    }

    /// One escape, after its backslash, appended to `out` when there is one to decode into.
    fn escape(&mut self, out: Option<&mut String>) -> Step<()> {
        let Some(b) = self.peek() else {
            return Err(Problem::Eof);
        };
        self.at += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if out.is_none() {
                    return Ok(());
                }
                match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by an escaped trailing one.
                        match self.bytes.get(self.at..self.at + 2) {
                            Some(b"\\u") => self.at += 2,
                            Some(_) => return Err(Problem::Syntax),
                            None => return Err(Problem::Eof),
                        }
                        let trail = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&trail) {
                            return Err(Problem::Syntax);
                        }
                        let c = 0x10000
                            + ((u32::from(unit) - 0xD800) << 10)
                            + (u32::from(trail) - 0xDC00);
                        char::from_u32(c).ok_or(Problem::Syntax)?
                    }
                    0xDC00..=0xDFFF => return Err(Problem::Syntax),
                    _ => char::from_u32(u32::from(unit)).ok_or(Problem::Syntax)?,
                }
            }
            _ => {
                self.at -= 1;
                return Err(Problem::Syntax);
            }
        };
        if let Some(out) = out {
            out.push(c);
        }
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Step<u16> {
        let mut value = 0u16;
        for _ in 0..4 {
            let Some(b) = self.peek() else {
                return Err(Problem::Eof);
            };
            let digit = (b as char).to_digit(16).ok_or(Problem::Syntax)?;
            value = value * 16 + digit as u16;
            self.at += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::record::Record;

    /// Records every field it is given, in order, so two readers can be compared value for value.
    #[derive(Default, Debug, PartialEq)]
    struct Seen(Vec<(usize, String)>);

    impl<'de> Fields<'de> for Seen {
        const KEYS: &'static [&'static str] = &["_id", "name", "n", "ok", "at"];
        fn set(&mut self, index: usize, value: Scalar<'de>) {
            // serde_json's float parsing may differ from a correctly rounded one in the last bit; nine significant
            // digits are plenty to tell values apart.
            let shown = match value {
                Scalar::Num(n) => format!("Num({n:.9e})"),
                other => format!("{other:?}"),
            };
            self.0.push((index, shown));
        }
    }

    fn ours(body: &[u8]) -> Result<Vec<Option<Seen>>, ListError> {
        let mut got = Vec::new();
        each_record(body, |r| got.push(r))?;
        Ok(got)
    }

    /// The reference: serde_json reading the same records through the serde path of [`Record`].
    fn reference(body: &[u8]) -> Option<Vec<Option<Seen>>> {
        let records: Vec<Record<Seen>> = serde_json::from_slice(body).ok()?;
        Some(records.into_iter().map(|r| r.0).collect())
    }

    const SEEDS: &[&str] = &[
        r#"[{"_id":"a1","name":"db-gw \"east\"\\ \u00e9\ud83d\ude00\n","n":-1.5e3,"ok":true,"at":"2026-11-22T07:21:58.458Z",
            "accessToken":"tok\"en","x":{"k":[1,2.0,{"z":null,"w":false}],"e":"\u0000"}},
           7,"s",null,[1,[2,{}]],{},{"_\u0069d":"b","name":"","ok":"yes","n":0},{"_id":42,"name":null,"at":[]}]"#,
        "[]",
        " [ { } , [ ] , \"\" , 0 , -0.0e-0 , 1E+2 , true , false , null ] \n",
        r#"[{"name":"caf\u00E9","n":123456789012345678901234567890,"ok":false,"skip":"\ud800\udc00\udbff"}]"#,
    ];

    /// A small deterministic generator, so a failure reproduces.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn reads_every_element_decodes_escapes_and_skips_what_it_does_not_read() {
        let got = ours(SEEDS[0].as_bytes()).unwrap();
        assert_eq!(got.len(), 8, "{got:?}");
        let first = got[0].as_ref().unwrap();
        assert_eq!(
            first.0,
            vec![
                (0, r#"Str("a1")"#.to_string()),
                (1, format!("Str({:?})", "db-gw \"east\"\\ é😀\n")),
                (2, "Num(-1.500000000e3)".to_string()),
                (3, "Bool(true)".to_string()),
                (4, r#"Str("2026-11-22T07:21:58.458Z")"#.to_string()),
            ]
        );
        assert!(got[1..5].iter().all(Option::is_none), "{got:?}");
        assert_eq!(got[5], Some(Seen::default()));
        // An escaped key is decoded before it is matched, as serde_json does.
        assert_eq!(
            got[6].as_ref().unwrap().0[0],
            (0, r#"Str("b")"#.to_string())
        );
        assert_eq!(
            got[7].as_ref().unwrap().0,
            vec![
                (0, "Num(4.200000000e1)".to_string()),
                (1, "Other".to_string()),
                (4, "Other".to_string())
            ]
        );
        assert_eq!(Some(got), reference(SEEDS[0].as_bytes()));
    }

    #[test]
    fn what_is_not_a_list_fails_with_its_position_and_without_quoting_the_body() {
        for (body, message) in [
            (r#"{"_id":"hunter2"}"#, "expected a list (line 1, column 1)"),
            (r#""hunter2""#, "expected a list (line 1, column 1)"),
            ("", "truncated or empty JSON (line 1, column 1)"),
            (
                "[{\"_id\":\"hunter2\"",
                "truncated or empty JSON (line 1, column 18)",
            ),
            (
                "[\n {\"_id\":\"hunter2\",}]",
                "malformed JSON (line 2, column 19)",
            ),
            ("[1]\n[2]", "malformed JSON (line 2, column 1)"),
            (
                "[{\"_id\":\"hunter\x012\"}]",
                "malformed JSON (line 1, column 16)",
            ),
            ("[tru]", "malformed JSON (line 1, column 2)"),
            ("[01]", "malformed JSON (line 1, column 3)"),
        ] {
            let e = ours(body.as_bytes()).expect_err(body);
            assert_eq!(e.describe("a list"), message, "{body:?}");
            assert!(
                reference(body.as_bytes()).is_none(),
                "serde_json took {body:?}"
            );
        }
        let deep = format!("[{}{}]", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(ours(deep.as_bytes()).is_err());
        let fits = format!(
            "[{}{}]",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(ours(fits.as_bytes()).is_ok());
    }

    #[test]
    fn the_word_at_a_time_scan_finds_the_same_byte_as_the_table() {
        for stop_at in 0..20 {
            for byte in 0..=255u8 {
                for filler in [b'a', 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
                    let mut body = vec![filler; 24];
                    body[stop_at] = byte;
                    let reader = Reader::new(&body);
                    let want = body
                        .iter()
                        .position(|&b| STRING_STOP[b as usize])
                        .unwrap_or(body.len());
                    assert_eq!(
                        reader.stop(0),
                        want,
                        "byte {byte:#x} at {stop_at} among {filler:#x}"
                    );
                    assert_eq!(reader.stop(stop_at.min(3)), want.max(stop_at.min(3)));
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_only_where_a_string_is_decoded() {
        let unread = b"[{\"_id\":\"a\",\"accessToken\":\"\xff\xfe\"}]";
        assert_eq!(ours(unread).unwrap().len(), 1);
        assert!(reference(unread).is_some());
        for read in [
            &b"[{\"_id\":\"a\xff\"}]"[..],
            b"[{\"_\xffid\":\"a\"}]",
            b"[\xff]",
        ] {
            assert!(ours(read).is_err(), "{read:?}");
            assert!(reference(read).is_none(), "{read:?}");
        }
    }

    #[test]
    fn accepts_and_reads_exactly_what_serde_json_does_on_damaged_bodies() {
        const ALPHABET: &[u8] =
            b"{}[]\",:\\ \t\n0123456789-+.eEtrufalsnbu/xX\x00\x1f\x7f\xc3\xa9\xff";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut rejected) = (0, 0);
        for round in 0..40_000 {
            let seed = SEEDS[round % SEEDS.len()].as_bytes();
            let mut body = seed.to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(body.len() + 1);
                match rng.below(4) {
                    0 if at < body.len() => body[at] = ALPHABET[rng.below(ALPHABET.len())],
                    1 => body.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                    2 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => body.truncate(at),
                }
            }
            let got = ours(&body).ok();
            let want = reference(&body);
            assert_eq!(got, want, "body {:?}", String::from_utf8_lossy(&body));
            if want.is_some() {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        // Both outcomes must be well represented, or the comparison proves little.
        assert!(
            accepted > 2_000 && rejected > 2_000,
            "{accepted} accepted, {rejected} rejected"
        );
    }
}
