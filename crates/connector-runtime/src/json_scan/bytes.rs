//! The byte loop: the portable scan, and the reference the SIMD scan is tested against.

use super::{Scan, State, key_hash, string_end};

/// Byte classes outside strings: 1 `"`, 2 `{`, 3 `}`, 0 anything else.
const CLASS: [u8; 256] = {
    let mut c = [0u8; 256];
    c[b'"' as usize] = 1;
    c[b'{' as usize] = 2;
    c[b'}' as usize] = 3;
    c
};

/// Scans `t` from `i` (a byte outside any string) on, with what was found before `i`.
///
/// Only `"`, `{` and `}` matter outside strings: in valid JSON a string followed by `:`
/// is a key of the innermost open object, whatever arrays lie between.
pub(super) fn run(t: &[u8], mut i: usize, mut st: State) -> Scan {
    let n = t.len();
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
                        return st.found;
                    };
                    if let Some(pos) = s.lone_surrogate {
                        st.found.lone_surrogate = Some(pos);
                        return st.found;
                    }
                    i = s.end;
                }
                if i >= n {
                    return st.found;
                }
                let end = i;
                i += 1;
                while i < n && t[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < n && t[i] == b':' && st.in_object() {
                    st.keys.push(key_hash(&t[at..=end], escaped));
                    i += 1;
                }
            }
            2 => {
                if !st.open() {
                    return st.found;
                }
                i += 1;
            }
            _ => {
                st.close();
                i += 1;
            }
        }
    }
    st.found
}
