//! Untrusted text in plain-text output: an agent name or an upstream error message shown in the text part of an
//! email or a row of the report's table. HTML needs nothing from here: the page, the emails and the report are
//! written with `maud`, which escapes every interpolated string.

/// Shows control characters of an untrusted value as escapes (`\n`), so that a name cannot forge lines of the text
/// part of an email or rows of the report's table.
pub fn text_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(
            super::text_safe("a\r\nBcc: x\u{7}é"),
            "a\\r\\nBcc: x\\u{7}é"
        );
    }
}
