//! Where each value of a YAML document stands, so that errors found after parsing (a route
//! naming an unknown upstream, a duplicate name) can still point at a line and column.
//!
//! `serde_yaml` reports positions only for its own errors; this index is built from a second,
//! event-level parse (yaml-rust2) of the same text. Paths use the same spelling as serde_yaml's
//! error paths: `routes[2].upstream`, `upstreams.app.servers[0]`.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in the file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One located node: where its value starts, where its key starts (for mapping entries) and,
/// for scalars, the text.
#[derive(Debug, Clone)]
pub struct Located {
    pub value: Position,
    pub key: Option<Position>,
    pub scalar: Option<String>,
}

/// Path → position for every node of the first document.
#[derive(Debug, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, Located>,
}

impl SpanIndex {
    /// Build the index. A document the event parser rejects yields an empty index: positions
    /// are a courtesy, the typed parse decides what is valid.
    pub fn build(text: &str) -> SpanIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return SpanIndex::default();
        }
        SpanIndex {
            nodes: builder.nodes,
        }
    }

    /// Position of the value at `path`.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.nodes.get(path).map(|n| n.value)
    }

    /// Position of the key at `path` (the value's position when the node is a list item).
    pub fn key(&self, path: &str) -> Option<Position> {
        self.nodes.get(path).map(|n| n.key.unwrap_or(n.value))
    }

    /// Scalar text at `path`, if that node is a scalar.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        self.nodes.get(path).and_then(|n| n.scalar.as_deref())
    }
}

enum Frame {
    Map {
        path: String,
        /// The key read and waiting for its value, with its position.
        pending_key: Option<(String, Position)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    nodes: HashMap<String, Located>,
    done: bool,
}

fn position(mark: &Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl Builder {
    /// The path of the node that starts now, or `None` when the event is a mapping key.
    fn next_path(
        &mut self,
        scalar: Option<&str>,
        at: Position,
    ) -> Option<(String, Option<Position>)> {
        match self.stack.last_mut() {
            None => Some((String::new(), None)),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some((p, None))
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some((key, key_pos)) => {
                    let p = if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    Some((p, Some(key_pos)))
                }
                None => {
                    // A key. Complex (non-scalar) keys do not occur in etagate's schema; they
                    // get a placeholder so the parse stays in step.
                    *pending_key = Some((scalar.unwrap_or("?").to_string(), at));
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let at = position(&mark);
        match ev {
            Event::Scalar(text, ..) => {
                if let Some((path, key)) = self.next_path(Some(&text), at) {
                    self.nodes.insert(
                        path,
                        Located {
                            value: at,
                            key,
                            scalar: Some(text),
                        },
                    );
                }
            }
            Event::Alias(_) => {
                let _ = self.next_path(None, at);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = match self.next_path(None, at) {
                    Some((path, key)) => {
                        self.nodes.insert(
                            path.clone(),
                            Located {
                                value: at,
                                key,
                                scalar: None,
                            },
                        );
                        path
                    }
                    // A mapping used as a key: track it under a throwaway path.
                    None => "?".to_string(),
                };
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        pending_key: None,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_values_keys_and_list_items() {
        let text = "listeners:\n  - address: 0.0.0.0:80\nupstreams:\n  app:\n    servers: [a, b]\nroutes:\n  - name: r\n    upstream: app\n";
        let idx = SpanIndex::build(text);
        assert_eq!(
            idx.value("listeners[0].address"),
            Some(Position {
                line: 2,
                column: 14
            })
        );
        assert_eq!(
            idx.key("listeners[0].address"),
            Some(Position { line: 2, column: 5 })
        );
        assert_eq!(idx.scalar("upstreams.app.servers[1]"), Some("b"));
        assert_eq!(
            idx.value("routes[0].upstream"),
            Some(Position {
                line: 8,
                column: 15
            })
        );
        assert_eq!(
            idx.key("upstreams.app"),
            Some(Position { line: 4, column: 3 })
        );
    }

    #[test]
    fn broken_yaml_gives_an_empty_index() {
        let idx = SpanIndex::build("a: [unclosed\n");
        assert_eq!(idx.value("a"), None);
    }
}
