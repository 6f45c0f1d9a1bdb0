//! Client text quoted back in error messages, bounded: a message names what was
//! wrong, it never hands a megabyte of the request back.
//!
//! [`quoted`] is what every message that echoes a client's string uses (a target,
//! a tensor or model name, a datatype); [`bound_message`] is the net under them,
//! applied to every 4xx body: it bounds each quoted part of a message (serde's
//! messages quote values in `"..."` or backticks) and the message as a whole.
//! A leaf module, so `model` and `api` both use it.

/// Most characters of one piece of client text a message quotes.
pub const MAX_QUOTED: usize = 100;

/// Most characters of a whole error message (the longest kiln writes, an import
/// listing a dozen mismatched tensors, is well under this).
pub const MAX_MESSAGE: usize = 4096;

/// `text` in double quotes with escapes (as `{:?}` writes it), cut after
/// [`MAX_QUOTED`] characters; a cut is marked after the closing quote with the
/// text's full length.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// `text` as it is when it is short and printable (a tensor name such as
/// `fc1.weight`, read best without quotes), else [`quoted`].
pub fn bare(text: &str) -> String {
    let plain = text.chars().nth(MAX_QUOTED).is_none()
        && !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() && c != '"' && c != '`');
    if plain {
        text.to_string()
    } else {
        quoted(text)
    }
}

/// `message` with every quoted part (`"..."`, backslash escapes respected, or
/// `` `...` ``) cut after [`MAX_QUOTED`] characters, and the whole cut after
/// [`MAX_MESSAGE`]; each cut is marked with `...`. Messages within both bounds
/// come back unchanged.
pub fn bound_message(message: &str) -> String {
    if message.len() <= MAX_QUOTED {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE + 16));
    // The quote character that opened the current span, and how many characters
    // of it were kept.
    let mut open: Option<(char, usize)> = None;
    let mut escaped = false;
    let mut written = 0usize;
    for c in message.chars() {
        if written >= MAX_MESSAGE {
            out.push_str("...");
            return out;
        }
        match &mut open {
            Some((q, kept)) => {
                let closes = c == *q && !escaped;
                escaped = *q == '"' && c == '\\' && !escaped;
                if closes {
                    if *kept > MAX_QUOTED {
                        out.push_str("...");
                    }
                    open = None;
                } else {
                    *kept += 1;
                    if *kept > MAX_QUOTED {
                        continue;
                    }
                }
            }
            None if c == '"' || c == '`' => {
                open = Some((c, 0));
                escaped = false;
            }
            None => {}
        }
        out.push(c);
        written += 1;
    }
    if open.is_some_and(|(_, kept)| kept > MAX_QUOTED) {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(quoted("cat"), "\"cat\"");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_and_marked() {
        let text = "é".repeat(1000);
        let q = quoted(&text);
        assert_eq!(q, format!("{:?}... (2000 bytes in all)", "é".repeat(100)));
        let exactly = "x".repeat(MAX_QUOTED);
        assert_eq!(quoted(&exactly), format!("{exactly:?}"));
    }

    #[test]
    fn names_stay_bare_unless_long_or_odd() {
        assert_eq!(bare("fc1.weight"), "fc1.weight");
        assert_eq!(bare("a\nb"), "\"a\\nb\"");
        assert!(bare(&"z".repeat(5000)).ends_with("(5000 bytes in all)"));
    }

    #[test]
    fn every_quoted_part_of_a_message_is_bounded() {
        let long = "y".repeat(10_000);
        let m = format!("unknown variant `{long}`, expected `a` or \"{long}\" at line 1");
        let b = bound_message(&m);
        let kept = "y".repeat(MAX_QUOTED);
        assert_eq!(
            b,
            format!("unknown variant `{kept}...`, expected `a` or \"{kept}...\" at line 1")
        );
        // Escaped quotes do not end a span.
        let m = format!("name \"\\\"{long}\" is bad");
        assert!(bound_message(&m).len() < 200, "{}", bound_message(&m));
        // An unclosed quote is bounded too.
        assert!(bound_message(&format!("x `{long}")).len() < 200);
        // Unquoted text is bounded as a whole.
        assert!(bound_message(&long).len() <= MAX_MESSAGE + 3);
        let plain = "instance 0, value 3 is not a finite number";
        assert_eq!(bound_message(plain), plain);
    }
}
