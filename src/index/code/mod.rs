//! Chunks that follow the code: source files in the languages of [`languages`] are parsed
//! with tree-sitter and cut at definitions, so that a search hit is one whole function,
//! method, class, struct, impl, trait or interface with its doc comment and attributes.
//!
//! The rules, in order:
//! - a definition that fits the token budget is one chunk, named (`Chunk::symbol`) and kinded
//!   (`Chunk::kind`); the comments, attributes and decorators right above it (no blank line
//!   between) belong to it;
//! - a larger definition splits at the definitions inside it (an impl's or a class's
//!   methods, named `Type::method` in Rust and C++ and `Class.method` elsewhere); what lies
//!   between them (the header, fields, constants) goes into chunks of its own under the
//!   container's name; a definition with nothing inside to split at is cut at lines by
//!   [`split`], every piece keeping its name;
//! - everything else (imports, constants, top-level statements, code that does not parse)
//!   is cut by [`split`] in runs between definitions: small statements merge up to the budget;
//! - a leftover of fewer than [`TINY_TOKENS`] (the `impl Foo {` line left when an impl split
//!   at its methods, a namespace's braces, `#endif`, the last lines of a function cut at
//!   lines) joins a neighbour in the same container when the two fit the budget together:
//!   one that closes something (`}`, `#endif`) or ends a function joins the chunk before it,
//!   any other the chunk after it. Other small code outside any definition (an import, a
//!   statement) stays a chunk of its own, and two definitions never share a chunk: a hit is
//!   still exactly one definition, with at most a few leftover lines beside it.
//!
//! Every chunk is exactly the lines of what it holds, so an edit inside one definition
//! changes that definition's chunk and no other: the others keep their text, hence their
//! stored vectors (see `update`). Chunks of punctuation only (a lone closing brace) are
//! dropped, and blank lines between items are in no chunk unless a leftover joined across
//! them.

mod languages;

use tree_sitter::{Node, Parser};

use super::chunk::{Chunk, split};
use languages::{Found, Language, holds_methods, language_for};

/// Splits a source file into chunks that follow its definitions (see the module docs), or
/// `None` when its language is not one the chunker parses (the caller then uses [`split`]).
/// `count` counts a text's tokens with the end-of-text token, as for [`split`].
pub fn chunk_code(
    path: &str,
    text: &str,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Option<Vec<Chunk>> {
    let language = language_for(path)?;
    let mut parser = Parser::new();
    parser.set_language(&language.grammar()).ok()?;
    let tree = parser.parse(text, None)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.is_empty() {
        return Some(Vec::new());
    }
    let chunker = Chunker {
        language,
        src: text.as_bytes(),
        lines: &lines,
        budget,
        count,
    };
    let items = chunker.items(tree.root_node(), None);
    let mut pieces = Vec::new();
    chunker.layout(items, None, &mut pieces);
    Some(pieces.into_iter().map(|p| p.chunk).collect())
}

/// Chunks under this many tokens (the end-of-text token included) that are not whole
/// definitions join a neighbour (see the module docs): alone, they are search hits that say
/// nothing, and they were a few percent of the chunks of large repositories.
const TINY_TOKENS: usize = 16;

/// A chunk as the layout made it, before tiny leftovers join their neighbours.
struct Piece {
    chunk: Chunk,
    shape: Shape,
}

/// What a piece holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A whole definition: never joined with another definition.
    Whole,
    /// A chunk of a container laid out already: its leftovers found their place inside it.
    Settled,
    /// A later piece of a definition cut at lines: it ends that definition.
    Tail,
    /// Anything else: other code, a container's lines between its members, the first piece
    /// of a definition cut at lines.
    Rest,
}

/// Whether a leftover closes what came before it: then it belongs with the chunk before.
fn closes(text: &str) -> bool {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    first.is_some_and(|l| ["}", ")", "]", "#endif"].iter().any(|c| l.starts_with(c)))
}

/// What an item of a container is.
enum Role<'t> {
    /// A definition.
    Def(Def<'t>),
    /// A comment, attribute or decorator: part of the definition right after it, if any.
    Attached,
    /// Anything else.
    Other,
}

/// A definition found in the tree, with its qualified name.
struct Def<'t> {
    kind: &'static str,
    symbol: String,
    /// What its members' names start with.
    scope: String,
    /// The definition's own node (without attached comments).
    node: Node<'t>,
    body: Option<Node<'t>>,
}

/// A run of whole lines (rows from 0, inclusive) that one child of a container covers.
struct Item<'t> {
    start: usize,
    end: usize,
    role: Role<'t>,
}

/// The container a chunk belongs to: its kind and symbol label the pieces that are not
/// definitions of their own.
type Owner<'a> = Option<(&'a str, &'a str)>;

struct Chunker<'a> {
    language: &'static Language,
    src: &'a [u8],
    lines: &'a [&'a str],
    budget: usize,
    count: &'a dyn Fn(&str) -> usize,
}

impl<'a> Chunker<'a> {
    /// The items among `container`'s children, comments and attributes already joined to the
    /// definitions they document. `parent` qualifies the names.
    fn items<'t>(&self, container: Node<'t>, parent: Option<&Def<'t>>) -> Vec<Item<'t>> {
        let mut raw = Vec::new();
        self.collect(container, parent, &mut raw);
        attach(merge_shared_lines(raw))
    }

    /// Pushes an item per child of `node`, descending into transparent ones.
    fn collect<'t>(&self, node: Node<'t>, parent: Option<&Def<'t>>, out: &mut Vec<Item<'t>>) {
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.start_byte() == child.end_byte() {
                // A token the parser invented to recover from an error (`MISSING`).
                continue;
            }
            if self.language.transparent.contains(&child.kind()) {
                self.collect(child, parent, out);
                continue;
            }
            let role = if self.language.attached.contains(&child.kind()) {
                Role::Attached
            } else {
                match self.language.definition(child, self.src) {
                    Some(found) => Role::Def(self.qualify(found, child, parent)),
                    None => Role::Other,
                }
            };
            let (start, end) = rows(child);
            out.push(Item { start, end, role });
        }
    }

    /// Names a definition after its container, and makes functions in class-like containers
    /// methods.
    fn qualify<'t>(&self, found: Found<'t>, node: Node<'t>, parent: Option<&Def<'t>>) -> Def<'t> {
        let Found {
            mut kind,
            name,
            scope,
            body,
        } = found;
        let (symbol, scope) = match parent {
            Some(p) => {
                if kind == "fn" && holds_methods(p.kind) {
                    kind = "method";
                }
                let sep = self.language.separator;
                (
                    format!("{}{sep}{name}", p.scope),
                    format!("{}{sep}{scope}", p.scope),
                )
            }
            None => (name, scope),
        };
        Def {
            kind,
            symbol,
            scope,
            node,
            body,
        }
    }

    /// The text of rows `start..=end`.
    fn text(&self, start: usize, end: usize) -> String {
        let end = end.min(self.lines.len() - 1);
        self.lines[start.min(end)..=end].concat()
    }

    /// Turns items into chunks: definitions whole when they fit, split at their members or
    /// lines when not, and the runs of other items between them split by lines.
    ///
    /// Tiny leftovers join their neighbours among the pieces of this container only (so that
    /// a class's last lines never join what follows the class); what goes out is settled.
    fn layout(&self, items: Vec<Item>, owner: Owner, out: &mut Vec<Piece>) {
        let mut level = Vec::new();
        let mut run: Option<(usize, usize)> = None;
        for item in items {
            match item.role {
                Role::Def(def) => {
                    if let Some((s, e)) = run.take() {
                        self.lines_of(s, e, owner, false, &mut level);
                    }
                    self.definition(item.start, item.end, def, &mut level);
                }
                Role::Attached | Role::Other => {
                    run = Some(match run {
                        Some((s, _)) => (s, item.end),
                        None => (item.start, item.end),
                    });
                }
            }
        }
        if let Some((s, e)) = run {
            self.lines_of(s, e, owner, false, &mut level);
        }
        out.extend(self.merge_tiny(level).into_iter().map(|chunk| Piece {
            chunk,
            shape: Shape::Settled,
        }));
    }

    /// One definition spanning rows `start..=end` (its attached comments included).
    fn definition(&self, start: usize, end: usize, def: Def, out: &mut Vec<Piece>) {
        let text = self.text(start, end);
        let owner = Some((def.kind, def.symbol.as_str()));
        if (self.count)(&text) <= self.budget {
            out.push(Piece {
                chunk: Chunk {
                    start_line: start + 1,
                    end_line: end.min(self.lines.len() - 1) + 1,
                    text,
                    symbol: Some(def.symbol.clone()),
                    kind: Some(def.kind.to_string()),
                },
                shape: Shape::Whole,
            });
            return;
        }
        let Some(body) = def.body else {
            return self.lines_of(start, end, owner, true, out);
        };
        let members = self.items(body, Some(&def));
        if !members.iter().any(|m| matches!(m.role, Role::Def(_))) {
            return self.lines_of(start, end, owner, true, out);
        }
        // The header (`impl Foo {`, `class Foo:` and its docstring...) and the footer are
        // items too, so that they merge with the fields and constants next to them.
        let (body_start, body_end) = rows(body);
        let own_start = def.node.start_position().row;
        let header_end = if body_start > own_start {
            body_start - 1
        } else {
            body_start
        };
        let mut items = vec![Item {
            start,
            end: header_end,
            role: Role::Other,
        }];
        items.extend(members);
        if end > body_end {
            items.push(Item {
                start: body_end + 1,
                end,
                role: Role::Other,
            });
        }
        self.layout(merge_shared_lines(items), owner, out);
    }

    /// Rows `start..=end` cut by lines within the budget, labelled with `owner`; pieces of
    /// punctuation only are dropped. With `tails`, the rows are one definition, and the
    /// pieces after the first end it.
    fn lines_of(&self, start: usize, end: usize, owner: Owner, tails: bool, out: &mut Vec<Piece>) {
        let text = self.text(start, end);
        for (i, mut chunk) in split(&text, self.budget, self.count)
            .into_iter()
            .enumerate()
        {
            if !chunk.text.chars().any(char::is_alphanumeric) {
                continue;
            }
            chunk.start_line += start;
            chunk.end_line += start;
            if let Some((kind, symbol)) = owner {
                chunk.kind = Some(kind.to_string());
                chunk.symbol = Some(symbol.to_string());
            }
            let shape = if tails && i > 0 {
                Shape::Tail
            } else {
                Shape::Rest
            };
            out.push(Piece { chunk, shape });
        }
    }

    /// The pieces as chunks, each tiny leftover joined with a neighbour when the two fit the
    /// budget (see the module docs); the neighbour's name and kind stay.
    fn merge_tiny(&self, pieces: Vec<Piece>) -> Vec<Chunk> {
        let mut out: Vec<Chunk> = Vec::with_capacity(pieces.len());
        // A leftover waiting for the chunk after it.
        let mut carried: Option<Chunk> = None;
        for Piece { mut chunk, shape } in pieces {
            if let Some(before) = carried.take() {
                match self.joined(&before, &chunk) {
                    Some(text) => {
                        chunk.start_line = before.start_line;
                        chunk.text = text;
                    }
                    None => out.push(before),
                }
            }
            // Other code that is not a container's (an import, a statement) stays itself
            // unless it closes something.
            let leftover = matches!(shape, Shape::Tail | Shape::Rest)
                && (chunk.kind.is_some() || closes(&chunk.text))
                && (self.count)(&chunk.text) < TINY_TOKENS;
            if !leftover {
                out.push(chunk);
            } else if shape == Shape::Tail || closes(&chunk.text) {
                self.join_last(&mut out, chunk);
            } else {
                carried = Some(chunk);
            }
        }
        // Nothing came after it: the chunk before takes it instead.
        if let Some(last) = carried {
            self.join_last(&mut out, last);
        }
        out
    }

    /// Appends `chunk` to the last chunk of `out` when the two fit the budget, else pushes it.
    fn join_last(&self, out: &mut Vec<Chunk>, chunk: Chunk) {
        if let Some(last) = out.last_mut()
            && let Some(text) = self.joined(last, &chunk)
        {
            last.end_line = chunk.end_line;
            last.text = text;
        } else {
            out.push(chunk);
        }
    }

    /// The lines from `first`'s start to `second`'s end, when they fit the budget.
    fn joined(&self, first: &Chunk, second: &Chunk) -> Option<String> {
        let text = self.text(first.start_line - 1, second.end_line - 1);
        ((self.count)(&text) <= self.budget).then_some(text)
    }
}

/// The rows a node covers; a node that ends at the start of a line (one that takes its line
/// break) does not cover that line.
fn rows(node: Node) -> (usize, usize) {
    let start = node.start_position().row;
    let end = node.end_position();
    let last = if end.column == 0 && end.row > start {
        end.row - 1
    } else {
        end.row
    };
    (start, last)
}

/// Items that share a line become one (chunks are whole lines): a definition keeps what
/// trails it on its last line (`};`, a comment) and what is attached before it on its first
/// line (`#[test] fn a() {}`); two definitions or a definition after other code on one line
/// are other code.
fn merge_shared_lines(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for item in items {
        let Some(prev) = out.last_mut() else {
            out.push(item);
            continue;
        };
        if item.start > prev.end {
            out.push(item);
            continue;
        }
        prev.end = prev.end.max(item.end);
        let before = std::mem::replace(&mut prev.role, Role::Other);
        prev.role = match (before, item.role) {
            (Role::Def(d), Role::Attached | Role::Other) => Role::Def(d),
            (Role::Attached, Role::Def(d)) => Role::Def(d),
            (Role::Attached, Role::Attached) => Role::Attached,
            _ => Role::Other,
        };
    }
    out
}

/// Joins each definition with the comments and attributes right above it (each on the line
/// after the one before, no blank line between); comments not followed by a definition are
/// other code.
fn attach(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for mut item in items {
        if matches!(item.role, Role::Def(_)) {
            while let Some(prev) = out.last() {
                if !matches!(prev.role, Role::Attached) || prev.end + 1 < item.start {
                    break;
                }
                item.start = prev.start;
                out.pop();
            }
        }
        out.push(item);
    }
    for item in &mut out {
        if matches!(item.role, Role::Attached) {
            item.role = Role::Other;
        }
    }
    out
}
