//! The field delimiter of a CSV file: the comma, or a semicolon or tab file as
//! spreadsheets in many locales write it, sniffed from the header line when not
//! given; with a semicolon or tab, a decimal comma (`1,5`) reads as `1.5`.

/// The delimiters kiln reads.
pub const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// The delimiter of `text`: of the comma, semicolon and tab, the one that splits
/// its first line into the most fields (outside quotes); the comma on a tie.
pub fn sniff(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for b in header.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|d| *d == b) {
            counts[i] += 1;
        }
    }
    let best = (0..3)
        .max_by_key(|&i| (counts[i], usize::from(i == 0)))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        DELIMITERS[best]
    }
}

/// A delimiter as written on the command line: `,`, `;`, `\t` or `tab`.
pub fn parse(text: &str) -> Result<u8, String> {
    match text {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "\\t" | "tab" => Ok(b'\t'),
        other => Err(format!(
            "{other:?}: the delimiter must be \",\", \";\" or \"tab\""
        )),
    }
}

/// The number in `cell`, reading a decimal comma when the file's delimiter is not
/// the comma.
pub fn number<T: std::str::FromStr>(cell: &str, delimiter: u8) -> Option<T> {
    cell.parse().ok().or_else(|| {
        (delimiter != b',' && cell.matches(',').count() == 1 && !cell.contains('.'))
            .then(|| cell.replace(',', ".").parse().ok())
            .flatten()
    })
}

/// How a delimiter is named in messages.
pub fn name(delimiter: u8) -> &'static str {
    match delimiter {
        b';' => "semicolon",
        b'\t' => "tab",
        _ => "comma",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_tells_the_delimiter() {
        assert_eq!(sniff("a,b,target\n1,2,3\n"), b',');
        assert_eq!(sniff("a;b;target\n1,5;2,25;3\n"), b';');
        assert_eq!(sniff("a\tb\ttarget\n1\t2\t3\n"), b'\t');
        assert_eq!(
            sniff("\"a;b\",c,target\n"),
            b',',
            "quoted semicolons do not count"
        );
        assert_eq!(sniff("target\n1\n"), b',');
    }

    #[test]
    fn a_decimal_comma_reads_only_beside_another_delimiter() {
        assert_eq!(number::<f32>("1,5", b';'), Some(1.5));
        assert_eq!(number::<f32>("1,5", b','), None);
        assert_eq!(number::<f32>("1.5", b';'), Some(1.5));
        assert_eq!(number::<f32>("1,000,5", b';'), None);
        assert_eq!(parse("tab"), Ok(b'\t'));
        assert!(parse("|").is_err());
    }
}
