//! One pass over a JSON body for the two things serde_json's paths disagree on:
//! duplicate object keys and lone UTF-16 surrogate escapes.
//!
//! The fast extraction path keeps records as raw bytes (duplicates and `\ud800` pass
//! through), the general path builds a tree (last duplicate wins, `\ud800` is an error).
//! Scanning first lets both behave the same: a lone surrogate refuses the page, a
//! duplicate key sends the page through the general path.
//!
//! Two scanners give the same answer on every input, valid JSON or not: a plain byte
//! loop ([`scan_bytes`], the reference, used where there is no SIMD) and, on x86_64, a
//! simdjson-style pass over 64-byte blocks that visits only braces and keys (`simd`).

mod bytes;
#[cfg(target_arch = "x86_64")]
mod masks;
#[cfg(target_arch = "x86_64")]
mod simd;

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

/// Scans `t`, which need not be valid JSON: on anything malformed or cut short the scan
/// stops and reports what it found so far (serde_json then names the real problem).
pub fn scan(t: &[u8]) -> Scan {
    #[cfg(target_arch = "x86_64")]
    return simd::scan(t);
    #[cfg(not(target_arch = "x86_64"))]
    return scan_bytes(t);
}

/// The same scan as [`scan`], byte by byte: the portable version and the reference.
pub fn scan_bytes(t: &[u8]) -> Scan {
    bytes::run(t, 0, State::default())
}

/// What a scan carries along: the open objects and the keys seen in each.
#[derive(Default)]
struct State {
    found: Scan,
    /// For each open object, where its key hashes start in `keys`.
    frames: Vec<usize>,
    keys: Vec<u64>,
    /// The keys of the last object closed without duplicates: records of one array
    /// mostly repeat them, and comparing two lists is cheaper than searching one.
    clean: Vec<u64>,
}

impl State {
    /// An object opens; false when nested too deep to go on.
    fn open(&mut self) -> bool {
        if self.frames.len() >= MAX_DEPTH {
            return false;
        }
        self.frames.push(self.keys.len());
        true
    }

    /// An object closes (a stray `}` closes nothing).
    fn close(&mut self) {
        if let Some(f) = self.frames.pop()
            && f <= self.keys.len()
        {
            let keys = &mut self.keys[f..];
            let same = keys.len() == self.clean.len()
                && keys
                    .iter()
                    .zip(&self.clean)
                    .fold(0, |d, (a, b)| d | (a ^ b))
                    == 0;
            if !same && keys.len() > 1 {
                if has_repeat(keys) {
                    self.found.duplicate_keys = true;
                } else {
                    self.clean.clear();
                    self.clean.extend_from_slice(&self.keys[f..]);
                }
            }
            self.keys.truncate(f);
        }
    }

    /// Whether a string followed by `:` is a key here (it is inside an object).
    fn in_object(&self) -> bool {
        !self.frames.is_empty()
    }
}

/// Where a string ends and what its escapes hold.
struct Str {
    /// Index of the closing quote.
    end: usize,
    lone_surrogate: Option<usize>,
}

/// The string whose content starts at `start`; None when the text ends inside it or a
/// `\u` escape is not four hex digits.
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

/// A hash of a key's decoded text (`"a"` and `"\u0061"` are the same key); `escaped`
/// says whether the quoted key holds a backslash.
#[inline]
fn key_hash(quoted: &[u8], escaped: bool) -> u64 {
    if escaped && let Some(h) = decoded_hash(quoted) {
        return h;
    }
    hash(&quoted[1..quoted.len() - 1])
}

#[cold]
fn decoded_hash(quoted: &[u8]) -> Option<u64> {
    let decoded = serde_json::from_slice::<String>(quoted).ok()?;
    Some(hash(decoded.as_bytes()))
}

/// The hash of `t[start..start + len]`, a key without backslashes, as [`hash`] gives it:
/// one 16-byte read when `t` holds 16 bytes from `start`.
#[inline]
fn hash_in(t: &[u8], start: usize, len: usize) -> u64 {
    if len <= 16
        && let Some(w) = t.get(start..).and_then(<[u8]>::first_chunk::<16>)
    {
        return short(w, len);
    }
    hash(&t[start..start + len])
}

/// A hash of a key (a folded multiply; a collision only costs the general path): keys of
/// up to 16 bytes are two words, longer ones a word at a time, the length in the seed.
fn hash(b: &[u8]) -> u64 {
    let n = b.len();
    if n <= 16 {
        let mut w = [0u8; 16];
        w[..n].copy_from_slice(b);
        return short(&w, n);
    }
    let mut h = 0x243f_6a88_85a3_08d3 ^ n as u64;
    let (words, _) = b.as_chunks::<8>();
    for w in words {
        h = mum(h ^ u64::from_le_bytes(*w), 0x9e37_79b9_7f4a_7c15);
    }
    let last = b.last_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
    mum(h ^ last, 0x1319_8a2e_0370_7344)
}

/// The hash of the first `n` (up to 16) bytes of `w`; the bytes after them do not count.
#[inline]
fn short(w: &[u8; 16], n: usize) -> u64 {
    /// For each length up to 16, which bytes of the two words count.
    const KEEP: [(u64, u64); 17] = {
        let mut k = [(0, 0); 17];
        let mut n = 1;
        while n <= 16 {
            k[n] = if n <= 8 {
                (u64::MAX >> (64 - 8 * n), 0)
            } else {
                (u64::MAX, u64::MAX >> (128 - 8 * n))
            };
            n += 1;
        }
        k
    };
    let (lo, hi) = KEEP[n.min(16)];
    let x = u128::from_le_bytes(*w);
    let a = x as u64 & lo;
    let b = (x >> 64) as u64 & hi;
    mum(
        a ^ 0xa409_3822_299f_31d0,
        b ^ 0x082e_fa98_ec4e_6c89 ^ n as u64,
    )
}

/// The two halves of a 128-bit product, folded.
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Whether a slice of key hashes holds one twice (a large slice is sorted on the way).
fn has_repeat(keys: &mut [u64]) -> bool {
    if keys.len() <= 16 {
        // Most objects are small: comparing all pairs beats sorting.
        let mut rep = false;
        for (i, k) in keys.iter().enumerate() {
            rep |= keys[..i].contains(k);
        }
        return rep;
    }
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both scanners, which must agree.
    fn s(text: &str) -> Scan {
        same(text.as_bytes())
    }

    fn same(t: &[u8]) -> Scan {
        let fast = scan(t);
        assert_eq!(fast, scan_bytes(t), "{:?}", String::from_utf8_lossy(t));
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(simd::scan_with(t, false), fast, "SSE2");
            if std::arch::is_x86_feature_detected!("avx2") {
                assert_eq!(simd::scan_with(t, true), fast, "AVX2");
            }
        }
        fast
    }

    #[test]
    fn finds_duplicate_keys_at_any_depth() {
        assert!(!s(r#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#).duplicate_keys);
        assert!(s(r#"{"id":1,"id":2}"#).duplicate_keys);
        assert!(s(r#"[{"x":{"k":1, "k" : 2}}]"#).duplicate_keys);
        assert!(s(r#"{"a":1,"\u0061":2}"#).duplicate_keys);
        // A value equal to a key is not a key; keys of sibling objects are separate.
        assert!(!s(r#"{"a":"a","b":["a"],"c":{"a":1}}"#).duplicate_keys);
        assert!(!s(r#"{"s":"has \"quotes\": and {braces}","t":1}"#).duplicate_keys);
    }

    #[test]
    fn finds_lone_surrogates_only() {
        assert_eq!(s(r#"{"s":"\ud83d\ude00 ok"}"#), Scan::default());
        assert_eq!(s(r#"{"s":"\\ud800"}"#), Scan::default());
        assert_eq!(s(r#"{"s":"\ud800"}"#).lone_surrogate, Some(6));
        assert_eq!(s(r#"{"s":"\udc00"}"#).lone_surrogate, Some(6));
        assert_eq!(s(r#"{"s":"\ud800\u0041"}"#).lone_surrogate, Some(6));
        assert_eq!(s(r#"{"\ud800":1}"#).lone_surrogate, Some(2));
    }

    #[test]
    fn malformed_or_cut_text_reports_nothing_and_never_panics() {
        for t in [
            "",
            "\"",
            "\"\\",
            "\"\\u",
            "\"\\ud8",
            "\"\\ud800",
            "\"\\ud800\\",
            "}}]]",
            "{\"a\":",
            "{\"a\"",
            "[\"\\u00zz\"]",
        ] {
            assert_eq!(s(t), Scan::default(), "{t}");
        }
        for deep in [
            "[".repeat(100_000),
            "{".repeat(100_000),
            "{\"a\":".repeat(100_000),
        ] {
            assert_eq!(s(&deep), Scan::default());
        }
    }

    #[test]
    fn key_hashes_differ_for_keys_of_one_length() {
        let keys = [
            "", "a", "b", "ab", "ba", "abc", "acb", "abcd", "abce", "abcdefgh",
        ];
        let more = [
            "abcdefgi",
            "abcdefghi",
            "bbcdefghi",
            "customer_id",
            "external_id",
        ];
        let all: Vec<u64> = keys
            .iter()
            .chain(&more)
            .map(|k| hash(k.as_bytes()))
            .collect();
        // The 16-byte read gives the same hash wherever the key lies.
        let text = "0123456789abcdefghijklmnopqrstuvwxyz0123456789";
        for start in 0..text.len() {
            for len in 0..=text.len() - start {
                let key = &text.as_bytes()[start..start + len];
                assert_eq!(hash_in(text.as_bytes(), start, len), hash(key));
            }
        }
        for (i, h) in all.iter().enumerate() {
            assert!(!all[..i].contains(h), "{i}");
        }
        assert!(has_repeat(&mut [1, 2, 3, 1]));
        assert!(!has_repeat(&mut (0..40).collect::<Vec<u64>>()));
        assert!(has_repeat(&mut (0..40).chain([7]).collect::<Vec<u64>>()));
    }

    #[test]
    fn block_edges_agree() {
        // Backslash runs, quotes, keys and surrogate escapes at every offset around
        // the 64-byte block edges.
        let bodies = [
            r#""\\\"":1}"#,
            r#"\\\\\\\\\\\\\\\" x ":2}"#,
            r#"k" :{"k":1},"k" : 3}"#,
            r#"s":"\ud83d\ude00","s":1}"#,
            r#"s":"\ud800"}"#,
            r#"s":"\udc00\\"}"#,
            r#"a\u0061":1,"aa":2}"#,
            r#"x":"\"}{\\"}"#,
        ];
        for body in bodies {
            for pad in 0..140 {
                let text = format!("{{\"{}{body}", "p".repeat(pad));
                same(text.as_bytes());
                let text = format!("{{\"a\":{}\"{body}", " ".repeat(pad));
                same(text.as_bytes());
                let text = format!("{{{}\"{body}", "\\".repeat(pad));
                same(text.as_bytes());
            }
        }
    }

    /// A small deterministic generator of JSON-like text (splitmix64).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }

        fn ws(&mut self, out: &mut String) {
            match self.below(8) {
                0..=3 => {}
                4 => out.push(' '),
                5 => out.push_str(&" ".repeat(self.below(80))),
                6 => out.push_str(self.pick(&["\n  ", "\t", "\r\n", "\x0c", " \x0b"])),
                _ => out.push_str(&"\n".repeat(self.below(4))),
            }
        }

        fn string(&mut self, out: &mut String) {
            out.push('"');
            for _ in 0..self.below(6) {
                match self.below(40) {
                    0..=24 => {
                        for _ in 0..self.below(70) {
                            out.push(
                                self.pick(&["a", "b", "u", " ", "{", "}", ":", ",", "["])
                                    .chars()
                                    .next()
                                    .unwrap_or('a'),
                            );
                        }
                    }
                    25..=28 => out.push_str(&"\\".repeat(1 + self.below(9))),
                    29..=32 => {
                        out.push_str(self.pick(&[r#"\""#, r"\\", r"\n", r"\/", r#"\\\""#, r"\\\\"]))
                    }
                    33..=35 => out.push_str(self.pick(&[
                        r"\ud83d\ude00",
                        r"\u0061",
                        r"\u00e9",
                        r"\uDBFF\uDFFF",
                    ])),
                    36 => out.push_str(self.pick(&[
                        r"\ud800",
                        r"\udc00",
                        r"\ud800\u0041",
                        r"\ud800\n",
                        r"\udbff\udbff",
                    ])),
                    37 => out.push_str(self.pick(&[
                        r"\u00zz",
                        r"\u+abc",
                        r"\u12",
                        r"\ud800\u00",
                        r"\ud800\uzzzz",
                    ])),
                    _ => out.push_str(self.pick(&["é", "\u{1F600}", "\\u", "\\"])),
                }
            }
            out.push('"');
        }

        fn key(&mut self, out: &mut String) {
            if self.below(6) == 0 {
                self.string(out);
            } else {
                out.push_str(self.pick(&[
                    r#""a""#,
                    r#""b""#,
                    r#""id""#,
                    r#""\u0061""#,
                    r#""customer_id""#,
                    r#""""#,
                    r#""a\"b""#,
                    r#""a\\""#,
                    r#""\ud83d\ude00""#,
                ]));
            }
        }

        fn value(&mut self, depth: usize, out: &mut String) {
            let pick = if depth > 5 {
                3 + self.below(5)
            } else {
                self.below(8)
            };
            match pick {
                0 | 1 => {
                    out.push('{');
                    for i in 0..self.below(7) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        self.key(out);
                        self.ws(out);
                        out.push(':');
                        self.ws(out);
                        self.value(depth + 1, out);
                        self.ws(out);
                    }
                    out.push('}');
                }
                2 => {
                    out.push('[');
                    for i in 0..self.below(6) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        self.value(depth + 1, out);
                    }
                    out.push(']');
                }
                3 | 4 => self.string(out),
                5 => out.push_str(&self.below(100_000).to_string()),
                6 => out.push_str(self.pick(&["true", "null", "-1.5e3"])),
                _ => out.push_str(&"x".repeat(self.below(90))),
            }
        }

        /// Breaks the text: cuts it, inserts or drops bytes.
        fn mangle(&mut self, text: &mut Vec<u8>) {
            for _ in 0..1 + self.below(3) {
                let at = self.below(text.len() + 1);
                match self.below(4) {
                    0 => text.truncate(at),
                    1 => {
                        let end = (at + self.below(20)).min(text.len());
                        text.drain(at..end);
                    }
                    _ => {
                        let junk =
                            self.pick(&["\"", "\\", "{", "}", ":", "u", "\\u", "\\\"", "\u{ff}"]);
                        text.splice(at..at, junk.bytes());
                    }
                }
            }
        }
    }

    #[test]
    fn simd_and_byte_loop_agree_on_generated_text() {
        let mut g = Gen(11);
        let mut counts = [0usize; 3];
        for round in 0..6000 {
            let mut text = String::new();
            if round % 3 == 0 {
                // Arrays of records, as APIs send them.
                text.push_str("{\"data\":[");
                for i in 0..g.below(20) {
                    if i > 0 {
                        text.push(',');
                    }
                    g.value(1, &mut text);
                }
                text.push_str("],\"next\":null}");
            } else {
                g.value(0, &mut text);
            }
            let mut t = text.into_bytes();
            if round % 2 == 1 {
                g.mangle(&mut t);
            }
            let got = same(&t);
            counts[0] += usize::from(got.duplicate_keys);
            counts[1] += usize::from(got.lone_surrogate.is_some());
            counts[2] += usize::from(got == Scan::default());
        }
        // The generator reaches every outcome often.
        assert!(counts.iter().all(|&c| c > 300), "{counts:?}");
    }

    #[test]
    fn simd_and_byte_loop_agree_on_byte_soup() {
        let mut g = Gen(7);
        let alphabet = b"\"\\{}:u d8c0a,[]\n";
        for _ in 0..20_000 {
            let len = g.below(300);
            let t: Vec<u8> = (0..len)
                .map(|_| alphabet[g.below(alphabet.len())])
                .collect();
            same(&t);
        }
    }
}
