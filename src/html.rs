//! HTML escaping, shared by the landing page, the alerts section and the HTML part of emails. Every string that
//! came from upstream (agent names, versions, error messages) passes through here before it meets markup.

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

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            super::escape("<b a=\"x\">'&'</b>"),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }
}
