//! What the server and a worker process say to each other, as JSON lines. The
//! server writes one [`Start`] line to the worker's stdin; the worker writes
//! [`Event`] lines to its stdout, ending with exactly one of `finished`, `failed`
//! or `cancelled`. Every line carries the protocol version `v`.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::training::fit::EpochReport;
use crate::training::input::JobInput;
use crate::training::run::Finished;

/// The protocol's version; a worker refuses a `Start` of another.
pub const VERSION: u32 = 1;

/// Longest line either side reads (a `Start` holds inline CSV or instances, which
/// the server's body limit bounds).
pub const MAX_LINE: u64 = 1 << 30;
/// Longest event line the server reads from a worker.
pub const MAX_EVENT_LINE: u64 = 1 << 20;

/// The job a worker runs, with the server's configuration (store, backend,
/// threads, limits).
#[derive(Debug, Serialize, Deserialize)]
pub struct Start {
    pub v: u32,
    pub job: String,
    pub config: Config,
    pub input: JobInput,
    /// The named model whose store the version goes in; absent: the default
    /// model's (the store's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A worker's report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// One epoch ended.
    Epoch { v: u32, report: EpochReport },
    /// The version is written; the server decides nothing but whether promotion
    /// still works.
    Finished { v: u32, result: Finished },
    /// The job cannot complete (bad data, divergence, a panic, a store error).
    Failed { v: u32, error: String },
    /// SIGTERM arrived and the job stopped between batches.
    Cancelled { v: u32 },
}

/// Reads one line of at most `max` bytes (without its newline). A longer line is
/// consumed and reported as an error. `None` at the end of the stream.
pub fn read_line(reader: &mut impl BufRead, max: u64) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = std::io::Read::take(&mut *reader, max + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if n as u64 > max {
        // Skip the rest of the line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = std::io::Read::take(&mut *reader, 1 << 16).read_until(b'\n', &mut rest)?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        return Err(std::io::Error::other(format!(
            "a line longer than {max} bytes"
        )));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::other("a line that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded() {
        let mut input = std::io::Cursor::new(b"short\nxxxxxxxxxxxxxxxxxxxx\nok".to_vec());
        assert_eq!(read_line(&mut input, 8).unwrap().as_deref(), Some("short"));
        assert!(read_line(&mut input, 8).is_err());
        assert_eq!(read_line(&mut input, 8).unwrap().as_deref(), Some("ok"));
        assert_eq!(read_line(&mut input, 8).unwrap(), None);
    }
}
