//! The scan over 64-byte blocks, after simdjson's stage 1: SSE2 or AVX2 compares make
//! bitmasks of quotes, backslashes, braces and what may follow a key; carry-propagating
//! bit tricks turn them into "inside a string"; only braces outside strings and the
//! closing quotes of likely keys are then visited one by one.
//!
//! It answers exactly as the byte loop does, malformed input included: strings holding a
//! `\u` escape are checked by the same [`string_end`], and a block with a backslash
//! outside any string (where the two would read quotes differently) hands the rest of the
//! text to the byte loop.

use super::masks::{self, Classify};
use super::{Scan, State, bytes, hash_in, key_hash, string_end};

/// Scans `t` (see [`super::scan`]).
pub(super) fn scan(t: &[u8]) -> Scan {
    scan_with(t, true)
}

/// Scans `t`, with AVX2 compares if `avx2` and the CPU has them, else SSE2.
pub(super) fn scan_with(t: &[u8], avx2: bool) -> Scan {
    masks::run(Job(t), avx2)
}

/// The scan, for [`masks::run`] to compile for each instruction set.
struct Job<'t>(&'t [u8]);

impl masks::Job for Job<'_> {
    type Out = Scan;

    #[inline(always)]
    fn run<C: Classify>(self, c: C) -> Scan {
        let t = self.0;
        let mut st = State::default();
        let mut k = Blocks::default();
        let (blocks, tail) = t.as_chunks::<64>();
        for (n, b) in blocks.iter().enumerate() {
            match k.block(c, t, n * 64, b, &mut st) {
                Step::Go => {}
                Step::Stop => return st.found,
                Step::Bytes(at) => return bytes::run(t, at, st),
            }
        }
        if !tail.is_empty() {
            // Spaces are inert here: they only ever make a key candidate that `t` refutes.
            let mut last = [b' '; 64];
            last[..tail.len()].copy_from_slice(tail);
            match k.block(c, t, blocks.len() * 64, &last, &mut st) {
                Step::Go | Step::Stop => {}
                Step::Bytes(at) => return bytes::run(t, at, st),
            }
        }
        st.found
    }
}

/// What to do after a block.
enum Step {
    Go,
    /// The byte loop would have stopped here: report what was found.
    Stop,
    /// Go on byte by byte from this offset (outside any string, or a string's quote).
    Bytes(usize),
}

/// What one block hands to the next.
struct Blocks {
    /// 1 when the last byte of the previous block was a backslash escaping the next.
    prev_escaped: u64,
    /// All ones when the previous block ended inside a string.
    in_string: u64,
    /// Offset of the last opening quote seen in earlier blocks.
    last_open: usize,
    /// Offset of the last backslash seen in earlier blocks, plus one (0: none).
    last_backslash: usize,
    /// The opening quote of the last string checked for lone surrogates.
    checked: usize,
}

impl Default for Blocks {
    fn default() -> Self {
        Blocks {
            prev_escaped: 0,
            in_string: 0,
            last_open: 0,
            last_backslash: 0,
            checked: usize::MAX,
        }
    }
}

impl Blocks {
    /// Scans the block `b` at offset `base` of `t` (`b` may be a padded copy of the tail).
    #[inline(always)]
    fn block<C: Classify>(
        &mut self,
        c: C,
        t: &[u8],
        base: usize,
        b: &[u8; 64],
        st: &mut State,
    ) -> Step {
        let m = c.masks(b);
        let escaped = if m.backslash | self.prev_escaped == 0 {
            0
        } else {
            self.escaped(m.backslash)
        };
        let quotes = m.quote & !escaped;
        let inside = c.prefix_xor(quotes) ^ self.in_string;
        if m.backslash & !inside != 0 {
            // The byte loop ignores a backslash outside strings; the masks would let it
            // escape the next byte. Everything before this block agreed, so hand over.
            return Step::Bytes(if self.in_string != 0 {
                self.last_open
            } else {
                base
            });
        }
        self.in_string = ((inside as i64) >> 63) as u64;
        let opens = quotes & inside;
        // A key's closing quote is followed by `:` or whitespace; the last bit of the block
        // cannot see what follows, so it is always a candidate.
        let keys = quotes & !inside & (m.follow >> 1 | 1 << 63);
        let braces = m.brace & !inside;
        let surrogates = if escaped == 0 {
            0
        } else {
            escaped & c.eq(b, b'u')
        };
        let before = Before {
            opens,
            backslash: m.backslash,
            last_open: self.last_open,
            last_backslash: self.last_backslash,
            base,
        };
        let go = if surrogates == 0 {
            before.braces_and_keys(t, b, braces, keys, st)
        } else {
            self.in_order(t, b, braces | keys | surrogates, &before, st)
        };
        if !go {
            return Step::Stop;
        }
        if opens != 0 {
            self.last_open = base + 63 - opens.leading_zeros() as usize;
        }
        if m.backslash != 0 {
            self.last_backslash = base + 64 - m.backslash.leading_zeros() as usize;
        }
        Step::Go
    }

    /// Visits braces, key candidates and `u`s after a backslash in order; false when the
    /// byte loop would stop.
    #[cold]
    fn in_order(
        &mut self,
        t: &[u8],
        b: &[u8; 64],
        mut events: u64,
        before: &Before,
        st: &mut State,
    ) -> bool {
        while events != 0 {
            let bit = events.trailing_zeros();
            events &= events - 1;
            match b[bit as usize] {
                b'{' => {
                    if !st.open() {
                        return false;
                    }
                }
                b'}' => st.close(),
                b'"' => {
                    if st.in_object() {
                        before.key(t, bit, st);
                    }
                }
                // `u` after a backslash: check the string as the byte loop does, once.
                _ => {
                    let open = before.open(bit);
                    if open != self.checked {
                        self.checked = open;
                        match string_end(t, open + 1) {
                            Some(s) if s.lone_surrogate.is_none() => {}
                            Some(s) => {
                                st.found.lone_surrogate = s.lone_surrogate;
                                return false;
                            }
                            None => return false,
                        }
                    }
                }
            }
        }
        true
    }

    /// The bytes escaped by a backslash (simdjson's `find_escaped_branchless`): in a run
    /// of backslashes every second one escapes the byte after it.
    fn escaped(&mut self, backslash: u64) -> u64 {
        const EVEN: u64 = 0x5555_5555_5555_5555;
        let backslash = backslash & !self.prev_escaped;
        let follows = backslash << 1 | self.prev_escaped;
        let odd_starts = backslash & !EVEN & !follows;
        let (even_runs, carry) = odd_starts.overflowing_add(backslash);
        self.prev_escaped = u64::from(carry);
        (EVEN ^ (even_runs << 1)) & follows
    }
}

/// Where the strings of a block start, to find the string an event belongs to.
struct Before {
    opens: u64,
    backslash: u64,
    /// The last opening quote before this block.
    last_open: usize,
    /// The last backslash before this block, plus one (0: none).
    last_backslash: usize,
    base: usize,
}

impl Before {
    /// The opening quote of the string holding bit `bit` of the block.
    #[inline]
    fn open(&self, bit: u32) -> usize {
        let below = self.opens & ((1u64 << bit) - 1);
        let here = (self.base + 63).wrapping_sub(below.leading_zeros() as usize);
        if below == 0 { self.last_open } else { here }
    }

    /// Whether the string from `open` to bit `bit` holds a backslash.
    fn escaped(&self, open: usize, bit: u32) -> bool {
        if self.backslash == 0 && self.last_backslash == 0 {
            // No backslash in the text so far: the common case, one predictable branch.
            return false;
        }
        let below = self.backslash & ((1u64 << bit) - 1);
        if open < self.base {
            return below != 0 || self.last_backslash > open;
        }
        below >> (open - self.base) != 0
    }

    /// Visits braces and key candidates in order, the keys between two braces in one
    /// go (they belong to one object); false when nested too deep.
    #[inline(always)]
    fn braces_and_keys(
        &self,
        t: &[u8],
        b: &[u8; 64],
        mut braces: u64,
        mut keys: u64,
        st: &mut State,
    ) -> bool {
        loop {
            let upto = if braces == 0 {
                u64::MAX
            } else {
                (1u64 << braces.trailing_zeros()) - 1
            };
            let mut now = keys & upto;
            keys &= !upto;
            if now != 0 && st.in_object() {
                while now != 0 {
                    let bit = now.trailing_zeros();
                    now &= now - 1;
                    self.key(t, bit, st);
                }
            }
            if braces == 0 {
                return true;
            }
            let bit = braces.trailing_zeros();
            braces &= braces - 1;
            if b[bit as usize] == b'{' {
                if !st.open() {
                    return false;
                }
            } else {
                st.close();
            }
        }
    }

    /// A string closing at bit `bit`, inside an object: a key when `:` follows, past
    /// whitespace.
    #[inline(always)]
    fn key(&self, t: &[u8], bit: u32, st: &mut State) {
        let end = self.base + bit as usize;
        let mut i = end + 1;
        if t.get(i) != Some(&b':') {
            while i < t.len() && t[i].is_ascii_whitespace() {
                i += 1;
            }
            if t.get(i) != Some(&b':') {
                return;
            }
        }
        let open = self.open(bit);
        let h = if self.escaped(open, bit) {
            key_hash(&t[open..=end], true)
        } else {
            hash_in(t, open + 1, end - open - 1)
        };
        st.keys.push(h);
    }
}
