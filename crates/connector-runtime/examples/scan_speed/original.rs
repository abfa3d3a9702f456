//! The scan as it was before the SIMD version (commit ac52bb5), verbatim but for
//! visibility: the "before" of the comparison.
//!
//! One pass over a JSON body for the two things serde_json's paths disagree on:
//! duplicate object keys and lone UTF-16 surrogate escapes.
//!
//! The fast extraction path keeps records as raw bytes (duplicates and `\ud800` pass
//! through), the general path builds a tree (last duplicate wins, `\ud800` is an error).
//! Scanning first lets both behave the same: a lone surrogate refuses the page, a
//! duplicate key sends the page through the general path.

/// Deeper than this, serde_json refuses the body anyway (its recursion limit is 128).
const MAX_DEPTH: usize = 256;

/// What the scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Some object holds the same key twice (or two keys whose hashes collide, which is
    /// handled the same way and costs only speed).
    pub duplicate_keys: bool,
    /// Byte offset of the first `\u` escape of an unpaired surrogate.
    pub lone_surrogate: Option<usize>,
}

/// Byte classes outside strings: 1 `"`, 2 `{`, 3 `}`, 0 anything else.
const CLASS: [u8; 256] = {
    let mut c = [0u8; 256];
    c[b'"' as usize] = 1;
    c[b'{' as usize] = 2;
    c[b'}' as usize] = 3;
    c
};

/// Scans `t`, which need not be valid JSON: on anything malformed or cut short the scan
/// stops and reports what it found so far (serde_json then names the real problem).
///
/// Only `"`, `{` and `}` matter outside strings: in valid JSON a string followed by `:`
/// is a key of the innermost open object, whatever arrays lie between. A plain byte loop
/// measured faster than SIMD search here: the gaps between tokens are a few bytes.
pub fn scan(t: &[u8]) -> Scan {
    let mut found = Scan::default();
    // For each open object, where its key hashes start in `keys`.
    let mut frames: Vec<usize> = Vec::new();
    let mut keys: Vec<u64> = Vec::new();
    let n = t.len();
    let mut i = 0;
    while i < n {
        match CLASS[usize::from(t[i])] {
            0 => i += 1,
            1 => {
                let at = i;
                i += 1;
                while i < n && t[i] != b'"' && t[i] != b'\\' {
                    i += 1;
                }
                let escaped = i < n && t[i] == b'\\';
                if escaped {
                    let Some(s) = string_end(t, at + 1) else {
                        return found;
                    };
                    if let Some(pos) = s.lone_surrogate {
                        found.lone_surrogate = Some(pos);
                        return found;
                    }
                    i = s.end;
                }
                if i >= n {
                    return found;
                }
                let end = i;
                i += 1;
                while i < n && t[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < n && t[i] == b':' && !frames.is_empty() {
                    keys.push(key_hash(&t[at..=end], escaped));
                    i += 1;
                }
            }
            2 => {
                if frames.len() >= MAX_DEPTH {
                    return found;
                }
                frames.push(keys.len());
                i += 1;
            }
            _ => {
                if let Some(f) = frames.pop()
                    && f <= keys.len()
                {
                    found.duplicate_keys |= has_repeat(&mut keys[f..]);
                    keys.truncate(f);
                }
                i += 1;
            }
        }
    }
    found
}

/// Where a string ends and what its escapes hold.
struct Str {
    /// Index of the closing quote.
    end: usize,
    lone_surrogate: Option<usize>,
}

/// The string whose content starts at `start`; None when the text ends inside it.
fn string_end(t: &[u8], start: usize) -> Option<Str> {
    let mut j = start;
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', t.get(j..)?)?;
        if t[k] == b'"' {
            return Some(Str {
                end: k,
                lone_surrogate: None,
            });
        }
        if t.get(k + 1) != Some(&b'u') {
            j = k + 2;
            continue;
        }
        let unit = hex4(t.get(k + 2..k + 6)?)?;
        j = match unit {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed at once by a low one.
                if *t.get(k + 6)? != b'\\' || *t.get(k + 7)? != b'u' {
                    return Some(lone(k));
                }
                if !matches!(hex4(t.get(k + 8..k + 12)?)?, 0xDC00..=0xDFFF) {
                    return Some(lone(k));
                }
                k + 12
            }
            0xDC00..=0xDFFF => return Some(lone(k)),
            _ => k + 6,
        };
    }
}

fn lone(at: usize) -> Str {
    Str {
        end: at,
        lone_surrogate: Some(at),
    }
}

fn hex4(b: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(b).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// A hash of a key's decoded text (`"a"` and `"\u0061"` are the same key).
fn key_hash(quoted: &[u8], escaped: bool) -> u64 {
    if escaped && let Ok(decoded) = serde_json::from_slice::<String>(quoted) {
        return fnv(decoded.as_bytes());
    }
    fnv(&quoted[1..quoted.len() - 1])
}

/// FNV-1a: keys are short, and a collision only costs the general path.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether a slice of key hashes holds one twice (the slice is sorted on the way).
fn has_repeat(keys: &mut [u64]) -> bool {
    if keys.len() < 2 {
        return false;
    }
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}
