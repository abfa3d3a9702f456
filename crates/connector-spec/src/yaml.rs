//! YAML text to a tree that remembers where every node and key came from.
//!
//! Built on `saphyr-parser` events (pure Rust, no unsafe). The tree is bounded before
//! anything is allocated for hostile input: a size cap on the text, a depth cap, and a
//! node budget that alias expansion counts against, so an alias bomb stops early.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::diagnostic::Location;

/// Largest spec file accepted.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 128;
/// Most nodes accepted, aliases counted as expanded.
pub const MAX_NODES: usize = 200_000;

/// A YAML value with its position.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where the value is.
    pub location: Location,
    /// The value.
    pub value: NodeValue,
}

/// The value of a [`Node`].
#[derive(Debug, Clone)]
pub enum NodeValue {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// Text.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping: (key, key's location, value), in file order.
    Map(Vec<(String, Location, Node)>),
}

/// A YAML document that could not be read, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where the problem is.
    pub location: Location,
    /// What the problem is.
    pub message: String,
}

impl Node {
    /// The node at a JSON Pointer (`/streams/orders/path`), or the deepest one on the way.
    ///
    /// The second value is the location of the last key matched, which is the better
    /// place to point at when the pointer names a key that has a bad value.
    pub fn find(&self, pointer: &str) -> (&Node, Option<Location>) {
        let mut node = self;
        let mut key_loc = None;
        for raw in pointer.split('/').skip(1) {
            let token = raw.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                NodeValue::Map(entries) => entries
                    .iter()
                    .find(|(k, _, _)| *k == token)
                    .map(|(_, kl, v)| (v, Some(*kl))),
                NodeValue::Seq(items) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|v| (v, None)),
                _ => None,
            };
            match next {
                Some((v, kl)) => {
                    node = v;
                    key_loc = kl;
                }
                None => break,
            }
        }
        (node, key_loc)
    }

    /// The node at a JSON Pointer, only when every step of it exists.
    pub fn get(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for raw in pointer.split('/').skip(1) {
            let token = raw.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                NodeValue::Map(entries) => entries
                    .iter()
                    .find(|(k, _, _)| *k == token)
                    .map(|(_, _, v)| v)?,
                NodeValue::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The location of the key `key` in this mapping, if present.
    pub fn key_location(&self, key: &str) -> Option<Location> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, l, _)| *l),
            _ => None,
        }
    }

    /// The tree as plain JSON.
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => Value::Number(n.clone()),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, _, v) in entries {
                    m.insert(k.clone(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            NodeValue::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeValue::Map(entries) => {
                1 + entries.iter().map(|(_, _, v)| 1 + v.size()).sum::<usize>()
            }
            _ => 1,
        }
    }
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.len() > MAX_BYTES {
        return Err(YamlError {
            location: Location {
                line: 1,
                col: 1,
                len: 1,
            },
            message: format!(
                "file is {} bytes, over the {} byte limit for a spec; a connector spec is a few kilobytes",
                text.len(),
                MAX_BYTES
            ),
        });
    }
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        text,
        line_starts: Vec::new(),
    };
    b.document()
}

/// Frames of the tree under construction.
enum Frame {
    Seq(Location, Vec<Node>, usize),
    Map(
        Location,
        Vec<(String, Location, Node)>,
        Option<(String, Location)>,
        usize,
    ),
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    text: &'a str,
    /// Byte offset of each line, computed on first use.
    line_starts: Vec<usize>,
}

fn loc(span: &Span) -> Location {
    let len = if span.end.line() == span.start.line() {
        span.end.col().saturating_sub(span.start.col())
    } else {
        1
    };
    Location {
        line: span.start.line(),
        col: span.start.col() + 1,
        len: len.max(1),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(YamlError {
                location: Location {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                    len: 1,
                },
                message: if e.info().contains("recursion limit") {
                    format!("nesting too deep ({})", e.info())
                } else {
                    format!("YAML syntax: {}", e.info())
                },
            }),
            None => Err(YamlError {
                location: self.end_location(),
                message: "YAML syntax: unexpected end of file".into(),
            }),
        }
    }

    /// The location without the whitespace some spans carry after a flow scalar.
    fn trimmed(&mut self, mut l: Location) -> Location {
        if l.len <= 1 {
            return l;
        }
        if self.line_starts.is_empty() {
            self.line_starts.push(0);
            self.line_starts
                .extend(self.text.match_indices('\n').map(|(i, _)| i + 1));
        }
        let Some(&start) = self.line_starts.get(l.line.saturating_sub(1)) else {
            return l;
        };
        let line = self.text[start..].lines().next().unwrap_or_default();
        let raw: String = line.chars().skip(l.col - 1).take(l.len).collect();
        l.len = raw.trim_end().chars().count().max(1);
        l
    }

    fn end_location(&self) -> Location {
        let line = self.text.lines().count().max(1);
        Location {
            line,
            col: 1,
            len: 1,
        }
    }

    fn document(&mut self) -> Result<Node, YamlError> {
        let mut root: Option<Node> = None;
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            let here = self.trimmed(loc(&span));
            let finished: Option<(Node, usize)> = match event {
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(YamlError {
                        location: here,
                        message: "more than one YAML document in the file; a spec is one document"
                            .into(),
                    });
                }
                Event::StreamStart
                | Event::DocumentStart(_)
                | Event::DocumentEnd
                | Event::Nothing => None,
                Event::StreamEnd => {
                    return root.ok_or(YamlError {
                        location: Location { line: 1, col: 1, len: 1 },
                        message: "the file is empty; a connector spec needs at least `version`, `name` and `http`".into(),
                    });
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let tagged_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                    let value = scalar(&text, style, tagged_str);
                    Some((
                        Node {
                            location: here,
                            value,
                        },
                        anchor,
                    ))
                }
                Event::SequenceStart(anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(too_deep(here));
                    }
                    stack.push(Frame::Seq(here, Vec::new(), anchor));
                    None
                }
                Event::MappingStart(anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(too_deep(here));
                    }
                    stack.push(Frame::Map(here, Vec::new(), None, anchor));
                    None
                }
                Event::SequenceEnd => match stack.pop() {
                    Some(Frame::Seq(l, items, anchor)) => Some((
                        Node {
                            location: l,
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                    )),
                    _ => return Err(internal(here)),
                },
                Event::MappingEnd => match stack.pop() {
                    Some(Frame::Map(l, entries, _, anchor)) => Some((
                        Node {
                            location: l,
                            value: NodeValue::Map(entries),
                        },
                        anchor,
                    )),
                    _ => return Err(internal(here)),
                },
                Event::Alias(id) => {
                    let Some(target) = self.anchors.get(&id) else {
                        return Err(YamlError {
                            location: here,
                            message: "YAML alias to an unknown anchor".into(),
                        });
                    };
                    let mut node = target.clone();
                    node.location = here;
                    Some((node, 0))
                }
            };
            let Some((node, anchor)) = finished else {
                continue;
            };
            self.nodes += node.size();
            if self.nodes > MAX_NODES {
                return Err(YamlError {
                    location: node.location,
                    message: format!(
                        "the document expands to over {MAX_NODES} nodes (YAML aliases are counted as expanded); refusing it"
                    ),
                });
            }
            if anchor != 0 {
                self.anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => {
                    if root.is_some() {
                        return Err(YamlError {
                            location: node.location,
                            message:
                                "more than one YAML document in the file; a spec is one document"
                                    .into(),
                        });
                    }
                    root = Some(node);
                }
                Some(Frame::Seq(_, items, _)) => items.push(node),
                Some(Frame::Map(_, entries, pending, _)) => match pending.take() {
                    None => {
                        let key = match node.value {
                            NodeValue::String(s) => s,
                            NodeValue::Bool(b) => b.to_string(),
                            NodeValue::Number(n) => n.to_string(),
                            NodeValue::Null => "null".into(),
                            NodeValue::Seq(_) | NodeValue::Map(_) => {
                                return Err(YamlError {
                                    location: node.location,
                                    message: "a mapping key must be a plain value, not a list or a mapping; a template such as `{{ config.x }}` must be in quotes, or YAML reads its braces as a mapping".into(),
                                });
                            }
                        };
                        if entries.iter().any(|(k, _, _)| *k == key) {
                            return Err(YamlError {
                                location: node.location,
                                message: format!(
                                    "duplicate key `{key}`; each key may appear once in a mapping"
                                ),
                            });
                        }
                        *pending = Some((key, node.location));
                    }
                    Some((key, kl)) => entries.push((key, kl, node)),
                },
            }
        }
    }
}

fn too_deep(location: Location) -> YamlError {
    YamlError {
        location,
        message: format!("nesting deeper than {MAX_DEPTH} levels; refusing it"),
    }
}

fn internal(location: Location) -> YamlError {
    YamlError {
        location,
        message: "YAML syntax: unbalanced structure".into(),
    }
}

/// Resolves a scalar by the YAML 1.2 core schema.
fn scalar(text: &str, style: ScalarStyle, tagged_str: bool) -> NodeValue {
    if style != ScalarStyle::Plain || tagged_str {
        return NodeValue::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Some(n) = integer(text) {
        return NodeValue::Number(n);
    }
    let looks_float = text
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
    if looks_float && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
        return NodeValue::Number(n);
    }
    NodeValue::String(text.to_owned())
}

fn integer(text: &str) -> Option<Number> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -v } else { v };
    if let Ok(i) = i64::try_from(v) {
        Some(Number::from(i))
    } else {
        u64::try_from(v).ok().map(Number::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_and_values() {
        let doc =
            "version: 1\nname: demo\nhttp:\n  base_url: \"x\"\n  list: [1, 2.5, true, ~, '3']\n";
        let node = parse(doc).unwrap();
        assert_eq!(
            node.to_json(),
            json!({"version": 1, "name": "demo", "http": {"base_url": "x", "list": [1, 2.5, true, null, "3"]}})
        );
        let (n, key) = node.find("/http/base_url");
        assert_eq!((n.location.line, n.location.col), (4, 13));
        assert_eq!(key.map(|k| (k.line, k.col)), Some((4, 3)));
        let (n, _) = node.find("/http/list/1");
        assert_eq!((n.location.line, n.location.col), (5, 13));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(
            e.location.line >= 1 && e.message.starts_with("YAML syntax"),
            "{e:?}"
        );
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.location.line, 2);
        assert!(e.message.contains("duplicate key"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let started = std::time::Instant::now();
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("nodes"), "{e:?}");
        assert!(started.elapsed().as_secs() < 1);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("nesting"), "{e:?}");
    }

    #[test]
    fn empty_is_an_error() {
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(
            parse("# only a comment\n")
                .unwrap_err()
                .message
                .contains("empty")
        );
    }

    #[test]
    fn a_second_document_is_refused() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.location.line, 2);
        assert!(e.message.contains("more than one YAML document"), "{e:?}");
        assert!(parse("---\na: 1\n...\n").is_ok());
    }

    #[test]
    fn flow_scalar_spans_exclude_trailing_space() {
        let node = parse("a: { b: 'q' , c: \"x y\" }\n").unwrap();
        assert_eq!(node.find("/a/b").0.location.len, 3);
        assert_eq!(node.find("/a/c").0.location.len, 5);
        assert_eq!(node.get("/a/c").map(|n| n.location.col), Some(18));
        assert!(node.get("/a/zz").is_none());
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let node = parse("a: '1'\nb: \"true\"\nc: 0x10\nd: 1e3\ne: 1.2.3\n").unwrap();
        assert_eq!(
            node.to_json(),
            json!({"a": "1", "b": "true", "c": 16, "d": 1000.0, "e": "1.2.3"})
        );
    }
}
