//! Input lines read with a bound: a line longer than the limit is skipped (counted, never
//! held), so a hostile or broken input costs at most the limit plus one read buffer.

use std::io::{self, BufRead};

/// The default longest input line, in bytes (newline excluded).
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// One line of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line's bytes, without the newline.
    Text(Vec<u8>),
    /// Longer than the limit; its bytes were read and dropped.
    TooLong {
        /// Its length in bytes (newline excluded).
        bytes: u64,
    },
}

/// Reads lines of at most `max` bytes from a buffered reader.
pub struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    /// A reader that keeps at most `max` bytes of a line.
    pub fn new(inner: R, max: usize) -> Self {
        Self { inner, max }
    }

    /// The next line, `None` at the end; a last line without a newline counts as a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut buf = Vec::new();
        let mut len: u64 = 0;
        let mut too_long = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if len == 0 && !too_long {
                    return Ok(None);
                }
                break;
            }
            let (chunk, ends) = match memchr::memchr(b'\n', avail) {
                Some(i) => (&avail[..i], true),
                None => (avail, false),
            };
            len = len.saturating_add(chunk.len() as u64);
            if !too_long {
                if buf.len() + chunk.len() > self.max {
                    // Dropped at once: the rest of this line is only counted.
                    too_long = true;
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(ends);
            self.inner.consume(used);
            if ends {
                break;
            }
        }
        Ok(Some(if too_long {
            Line::TooLong { bytes: len }
        } else {
            Line::Text(buf)
        }))
    }
}

/// Whether a line holds nothing but whitespace (not a record; skipped, not counted).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Parses a size such as `16MiB`, `512KiB`, `1GiB` or `1048576` (bytes); `K`, `M` and `G`
/// (with or without `B`/`iB`) are powers of 1024.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| {
        format!("`{text}` is not a size: write a number of bytes or e.g. 512KiB, 16MiB, 1GiB")
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}`; use B, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 {
        return Err(format!("`{text}`: the size must be at least 1 byte"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    fn lines(input: &[u8], max: usize, buf: usize) -> Vec<Line> {
        let mut r = LineReader::new(BufReader::with_capacity(buf, input), max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn long_lines_are_counted_and_skipped_whatever_the_buffer() {
        let input = b"ab\n0123456789\n\nxyz\n123456";
        for buf in [1, 3, 4, 64] {
            assert_eq!(
                lines(input, 6, buf),
                [
                    Line::Text(b"ab".to_vec()),
                    Line::TooLong { bytes: 10 },
                    Line::Text(vec![]),
                    Line::Text(b"xyz".to_vec()),
                    Line::Text(b"123456".to_vec()),
                ],
                "buffer {buf}"
            );
        }
        assert_eq!(lines(b"", 6, 8), []);
        assert_eq!(lines(b"\n", 6, 8), [Line::Text(vec![])]);
        assert_eq!(lines(b"1234567", 6, 2), [Line::TooLong { bytes: 7 }]);
    }

    #[test]
    fn a_huge_line_holds_no_more_than_the_limit() {
        // 64 MiB of a line without a newline, from a reader that never allocates it.
        let huge = io::repeat(b'x').take(64 << 20);
        let mut r = LineReader::new(BufReader::new(huge.chain(&b"\n{}\n"[..])), 1024);
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::TooLong { bytes: 64 << 20 })
        );
        assert_eq!(r.next_line().unwrap(), Some(Line::Text(b"{}".to_vec())));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("3 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_size("99999999999999999999").is_err());
    }
}
