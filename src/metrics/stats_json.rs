//! `stats_json()`: a limiter's name and counts as one JSON object, written by hand (the
//! crate has no JSON dependency, and this is the only JSON it writes).

use std::fmt::Write;

/// `{"name":<name>,"<field>":<count>,...}`, the name escaped as JSON requires.
pub fn stats_json(name: &str, fields: &[(&str, u64)]) -> String {
    let mut out = String::from("{\"name\":");
    push_json_string(&mut out, name);
    for (field, count) in fields {
        let _ = write!(out, ",\"{field}\":{count}");
    }
    out.push('}');
    out
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::stats_json;

    #[test]
    fn names_are_escaped_and_counts_follow_in_order() {
        assert_eq!(
            stats_json("a\"b\\c\n\u{1}é", &[("allowed", 3), ("blocked", 0)]),
            "{\"name\":\"a\\\"b\\\\c\\n\\u0001é\",\"allowed\":3,\"blocked\":0}"
        );
    }
}
