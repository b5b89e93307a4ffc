//! Escaping of untrusted text, shared by the landing page, the alerts section, emails and reports. Every string that
//! came from upstream (agent names, versions, error messages) passes through here before it meets markup or a line
//! of plain text a reader trusts.

/// Returns `s` with `&`, `<`, `>`, `"` and `'` replaced by entities, safe in element content and in quoted
/// attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An untrusted value for HTML text: control characters shown as escapes (as [`text_safe`] does), then HTML-escaped,
/// so the HTML part of an email shows the same characters as its text part.
pub fn html_text(s: &str) -> String {
    escape(&text_safe(s))
}

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
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            super::escape("<b a=\"x\">'&'</b>"),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn control_characters_are_shown_as_escapes_in_text_and_in_html() {
        assert_eq!(
            super::text_safe("a\r\nBcc: x\u{7}é"),
            "a\\r\\nBcc: x\\u{7}é"
        );
        assert_eq!(super::html_text("<i>\n"), "&lt;i&gt;\\n");
    }
}
