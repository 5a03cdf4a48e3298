//! Chunks that follow the code: each language's fixture under `tests/fixtures/code/` cut at
//! its definitions, big definitions split at their members, stability under edits, files
//! that do not parse, and `index`/`search` showing symbols end to end.

mod common;

use std::path::Path;

use gguf_embed::index::{Chunk, chunk_code, chunk_file, split};

/// One token per whitespace-separated word, plus the end-of-text token (as the model's
/// counter counts it).
fn words(s: &str) -> usize {
    s.split_whitespace().count() + 1
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/code")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The chunks of a fixture as `(first line, last line, "kind symbol")`, `""` when unnamed.
fn outline(name: &str, budget: usize) -> Vec<(usize, usize, String)> {
    let text = fixture(name);
    let chunks = chunk_code(name, &text, budget, &words).expect("a language the chunker parses");
    check_lines(&text, &chunks);
    chunks.iter().map(describe).collect()
}

fn describe(c: &Chunk) -> (usize, usize, String) {
    let label = match (&c.kind, &c.symbol) {
        (Some(k), Some(s)) => format!("{k} {s}"),
        (None, None) => String::new(),
        other => panic!("kind and symbol come together: {other:?}"),
    };
    (c.start_line, c.end_line, label)
}

/// Every chunk is exactly its lines of the file, chunks are in order and never overlap.
fn check_lines(text: &str, chunks: &[Chunk]) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for c in chunks {
        assert_eq!(
            c.text,
            lines[c.start_line - 1..c.end_line].concat(),
            "{c:?}"
        );
    }
    for pair in chunks.windows(2) {
        assert!(pair[0].end_line < pair[1].start_line, "{pair:?}");
    }
}

fn expect(rows: &[(usize, usize, &str)]) -> Vec<(usize, usize, String)> {
    rows.iter()
        .map(|(s, e, l)| (*s, *e, l.to_string()))
        .collect()
}

/// Every chunk fits the budget, unless it is one line longer than the budget.
fn check_budget(chunks: &[Chunk], budget: usize) {
    for c in chunks {
        assert!(
            words(&c.text) <= budget || c.start_line == c.end_line,
            "over {budget}: {c:?}"
        );
    }
}

const FIXTURES: [&str; 10] = [
    "lib.rs",
    "shapes.py",
    "cart.js",
    "api.ts",
    "Button.tsx",
    "server.go",
    "Inventory.java",
    "list.h",
    "list.c",
    "matrix.cpp",
];

/// The chunk of a fixture that holds `label` (`"fn name"`), whole budget.
fn chunk_named(name: &str, label: &str) -> Chunk {
    let text = fixture(name);
    chunk_code(name, &text, 1000, &words)
        .unwrap()
        .into_iter()
        .find(|c| describe(c).2 == label)
        .unwrap_or_else(|| panic!("no {label} in {name}"))
}

#[test]
fn rust_definitions_are_whole_chunks_with_their_docs_and_attributes() {
    assert_eq!(
        outline("lib.rs", 1000),
        expect(&[
            (1, 6, ""),
            (8, 13, "struct Header"),
            (15, 32, "impl Header"),
            (34, 38, "impl fmt::Display for Header"),
            (40, 44, "enum ArchiveError"),
            (46, 49, "trait Catalog"),
            (51, 57, "macro ensure"),
            (59, 69, "mod tests"),
        ])
    );
    let header = chunk_named("lib.rs", "struct Header");
    assert!(
        header.text.starts_with(
            "/// A parsed archive header.\n#[derive(Debug, Clone, PartialEq)]\npub struct Header {"
        ),
        "{}",
        header.text
    );
    // The imports and the constant merge into one chunk.
    let top = chunk_code("lib.rs", &fixture("lib.rs"), 1000, &words).unwrap()[0].clone();
    assert!(
        top.text.contains("use std::fmt;")
            && top.text.ends_with("const MAGIC: &[u8; 4] = b\"ARCH\";\n")
    );
}

#[test]
fn python_definitions_take_their_decorators_and_comments() {
    assert_eq!(
        outline("shapes.py", 1000),
        expect(&[
            (1, 6, ""),
            (9, 22, "class Circle"),
            (25, 27, "fn total_area"),
            (30, 31, ""),
        ])
    );
    assert!(
        chunk_named("shapes.py", "class Circle")
            .text
            .starts_with("@dataclass\nclass Circle:\n")
    );
    assert!(
        chunk_named("shapes.py", "fn total_area")
            .text
            .starts_with("# Sums the areas of many shapes.\ndef total_area(shapes):\n")
    );
}

#[test]
fn javascript_typescript_and_tsx_definitions() {
    assert_eq!(
        outline("cart.js", 1000),
        expect(&[
            (1, 4, ""),
            (6, 12, "fn cartTotal"),
            (14, 27, "class Cart"),
            (29, 32, "fn clearCart"),
            (34, 34, ""),
        ])
    );
    assert!(
        chunk_named("cart.js", "fn cartTotal")
            .text
            .starts_with("/**\n * Adds up")
    );
    assert_eq!(
        outline("api.ts", 1000),
        expect(&[
            (1, 1, ""),
            (3, 7, "interface User"),
            (9, 9, "type UserId"),
            (11, 14, "enum Role"),
            (16, 24, "class UserClient"),
            (26, 26, "fn isAdmin"),
        ])
    );
    assert_eq!(
        outline("Button.tsx", 1000),
        expect(&[
            (1, 1, ""),
            (3, 3, "type ButtonProps"),
            (5, 8, "fn Button"),
            (10, 12, "fn IconButton"),
        ])
    );
}

#[test]
fn go_functions_types_and_methods_named_by_their_receiver() {
    assert_eq!(
        outline("server.go", 1000),
        expect(&[
            (1, 8, ""),
            (10, 14, "struct Server"),
            (16, 19, "interface Handler"),
            (21, 24, "fn NewServer"),
            (26, 32, "method Server.Start"),
        ])
    );
    assert!(
        chunk_named("server.go", "method Server.Start")
            .text
            .starts_with(
                "// Start listens and serves until it fails.\nfunc (s *Server) Start() error {"
            )
    );
}

#[test]
fn java_types() {
    assert_eq!(
        outline("Inventory.java", 1000),
        expect(&[
            (1, 4, ""),
            (6, 21, "class Inventory"),
            (23, 25, "interface Priced"),
            (27, 30, "enum Unit"),
        ])
    );
    assert!(
        chunk_named("Inventory.java", "class Inventory")
            .text
            .starts_with("/**\n * Counts")
    );
}

#[test]
fn c_and_cpp_definitions_also_inside_include_guards_and_namespaces() {
    // The include guard wraps the whole header: its definitions are still chunks of their own.
    assert_eq!(
        outline("list.h", 1000),
        expect(&[
            (1, 4, ""),
            (6, 10, "struct node"),
            (12, 15, "struct list"),
            (17, 19, ""),
        ])
    );
    assert!(
        chunk_named("list.h", "struct node")
            .text
            .starts_with("/* A node of a singly linked list. */\n")
    );
    assert_eq!(
        outline("list.c", 1000),
        expect(&[
            (1, 2, ""),
            (4, 15, "fn list_push"),
            (17, 23, "fn list_last")
        ])
    );
    assert_eq!(
        outline("matrix.cpp", 1000),
        expect(&[
            (1, 2, ""),
            (4, 26, "mod linalg"),
            (28, 32, "method linalg::Matrix::trace")
        ])
    );
}

#[test]
fn cpp_members_defined_outside_their_class_are_methods() {
    let text = "\
Counter::Counter(int start) : n_(start) {}

Counter::~Counter() {}

void Counter::bump() {
    ++n_;
}

bool Counter::operator==(const Counter& o) const { return n_ == o.n_; }

template <typename T>
void Box<T>::put(T value) {
    value_ = value;
}

static int helper(int x) {
    return x + 1;
}
";
    let chunks = chunk_code("counter.cpp", text, 1000, &words).unwrap();
    check_lines(text, &chunks);
    let labels: Vec<String> = chunks.iter().map(|c| describe(c).2).collect();
    assert_eq!(
        labels,
        [
            "method Counter::Counter",
            "method Counter::~Counter",
            "method Counter::bump",
            "method Counter::operator==",
            "method Box<T>::put",
            "fn helper",
        ]
    );
    // Inside a namespace (split here at its members), the namespace qualifies the name.
    let text = "namespace app {\nvoid Widget::draw() const {\n    paint();\n}\n}\n";
    let chunks = chunk_code("widget.cpp", text, 8, &words).unwrap();
    let labels: Vec<String> = chunks.iter().map(|c| describe(c).2).collect();
    assert_eq!(labels, ["mod app", "method app::Widget::draw"]);
}

#[test]
fn big_definitions_split_at_their_members_then_at_lines() {
    // An impl over the budget: its header, then each method whole or, when a method is over
    // the budget itself, cut at lines with every piece keeping its name.
    assert_eq!(
        outline("lib.rs", 25),
        expect(&[
            (1, 6, ""),
            (8, 13, "struct Header"),
            (15, 15, "impl Header"),
            (16, 18, "method Header::parse_header"),
            (19, 24, "method Header::parse_header"),
            (25, 26, "method Header::parse_header"),
            (28, 31, "method Header::is_supported"),
            (34, 38, "impl fmt::Display for Header"),
            (40, 44, "enum ArchiveError"),
            (46, 49, "trait Catalog"),
            (51, 57, "macro ensure"),
            (59, 69, "mod tests"),
        ])
    );
    // A class: the header with its docstring and fields, then the methods with their
    // decorators and comments.
    assert_eq!(
        outline("shapes.py", 25),
        expect(&[
            (1, 5, ""),
            (6, 6, ""),
            (9, 13, "class Circle"),
            (15, 17, "method Circle.area"),
            (19, 22, "method Circle.unit"),
            (25, 27, "fn total_area"),
            (30, 31, ""),
        ])
    );
    assert_eq!(
        outline("cart.js", 25),
        expect(&[
            (1, 3, ""),
            (4, 4, ""),
            (6, 9, "fn cartTotal"),
            (10, 12, "fn cartTotal"),
            // The class's `class Cart {` line joined its first method.
            (14, 17, "method Cart.constructor"),
            (19, 22, "method Cart.add"),
            (24, 26, "method Cart.render"),
            (29, 32, "fn clearCart"),
            (34, 34, ""),
        ])
    );
    assert_eq!(
        outline("api.ts", 25)[4..6],
        expect(&[
            (16, 18, "method UserClient.constructor"),
            (20, 23, "method UserClient.fetchUser"),
        ])
    );
    assert_eq!(
        outline("Inventory.java", 40)[1..4],
        expect(&[
            (6, 10, "class Inventory"),
            (12, 15, "method Inventory.add"),
            (17, 20, "method Inventory.toString"),
        ])
    );
    // A namespace splits at its class, the class at its methods; the tiny lines left
    // between them join the member next to them (the namespace's closing line would make
    // clamp's chunk too big, so it stays alone).
    assert_eq!(
        outline("matrix.cpp", 40),
        expect(&[
            (1, 2, ""),
            (4, 9, "method linalg::Matrix::Matrix"),
            (11, 16, "method linalg::Matrix::at"),
            (18, 24, "fn linalg::clamp"),
            (26, 26, "mod linalg"),
            (28, 32, "method linalg::Matrix::trace"),
        ])
    );
    let matrix = chunk_code("matrix.cpp", &fixture("matrix.cpp"), 40, &words).unwrap();
    assert!(
        matrix[1]
            .text
            .starts_with("namespace linalg {\n\n/// A dense row-major matrix.\nclass Matrix {\n")
    );
    assert!(matrix[2].text.ends_with("std::vector<double> data_;\n};\n"));
    assert_eq!(
        outline("list.c", 25),
        expect(&[
            (1, 2, ""),
            (4, 6, "fn list_push"),
            (7, 15, "fn list_push"),
            (17, 23, "fn list_last")
        ])
    );
}

#[test]
fn tiny_leftovers_join_a_neighbour_and_definitions_stay_apart() {
    // An impl over the budget: its `impl Foo {` line joins the first method. The import and
    // the one-line struct are tiny too, but an import is code of its own and the struct a
    // definition: both stay.
    let rust = "use std::fmt;\n\nstruct Foo;\n\nimpl Foo {\n    fn a(&self) -> u8 {\n        1 + 2 + 3 + 4 + 5\n    }\n\n    fn b(&self) -> u8 {\n        6 + 7 + 8 + 9 + 10\n    }\n}\n";
    let chunks = chunk_code("foo.rs", rust, 25, &words).unwrap();
    check_lines(rust, &chunks);
    check_budget(&chunks, 25);
    assert_eq!(
        chunks.iter().map(describe).collect::<Vec<_>>(),
        expect(&[
            (1, 1, ""),
            (3, 3, "struct Foo"),
            (5, 8, "method Foo::a"),
            (10, 12, "method Foo::b"),
        ])
    );
    // `#endif` closes what came before: it joins the chunk before it. The guard's opening
    // lines are code outside any definition, and stay.
    let header =
        "#ifndef A_H\n#define A_H\n\nstruct point {\n    int x;\n    int y;\n};\n\n#endif\n";
    let chunks = chunk_code("a.h", header, 1000, &words).unwrap();
    check_lines(header, &chunks);
    assert_eq!(
        chunks.iter().map(describe).collect::<Vec<_>>(),
        expect(&[(1, 2, ""), (4, 9, "struct point")])
    );
    // A function cut at lines: its two-line tail joins the piece before it, which has room.
    let long = "fn long() -> u32 {\n    let a = 1 + 2 + 3 + 4 + 5;\n\n    let b = 6 + 7 + 8 + 9 + 10;\n    let c = a + b + a + b;\n\n    c\n}\n";
    let chunks = chunk_code("long.rs", long, 30, &words).unwrap();
    check_lines(long, &chunks);
    check_budget(&chunks, 30);
    assert_eq!(
        chunks.iter().map(describe).collect::<Vec<_>>(),
        expect(&[(1, 3, "fn long"), (4, 8, "fn long")])
    );
}

#[test]
fn every_chunk_fits_the_budget_and_is_exactly_its_lines() {
    for name in FIXTURES {
        let text = fixture(name);
        for budget in [8, 16, 25, 40, 64, 1000] {
            let chunks = chunk_code(name, &text, budget, &words).unwrap();
            check_lines(&text, &chunks);
            check_budget(&chunks, budget);
            // Every line with a word on it is in some chunk.
            for (i, line) in text.lines().enumerate() {
                if line.chars().any(char::is_alphanumeric) {
                    assert!(
                        chunks
                            .iter()
                            .any(|c| (c.start_line..=c.end_line).contains(&(i + 1))),
                        "{name} at {budget}: line {} ({line}) is in no chunk",
                        i + 1
                    );
                }
            }
        }
    }
}

#[test]
fn runs_of_small_statements_merge_up_to_the_budget() {
    let mut text: String = (0..40).map(|i| format!("import module_{i}\n")).collect();
    text.push_str("\n\ndef main():\n    return module_1.run()\n");
    let chunks = chunk_code("app.py", &text, 30, &words).unwrap();
    check_budget(&chunks, 30);
    let imports: Vec<&Chunk> = chunks.iter().filter(|c| c.symbol.is_none()).collect();
    // 40 imports of 2 words: a handful of chunks, none of them a single import.
    assert!((3..=6).contains(&imports.len()), "{chunks:?}");
    assert!(imports.iter().all(|c| c.end_line > c.start_line));
    assert_eq!(imports.first().unwrap().start_line, 1);
    assert_eq!(imports.last().unwrap().end_line, 40);
    let main = chunks.last().unwrap();
    assert_eq!(describe(main), (43, 44, "fn main".into()));
}

/// Inserts a comment line inside the definition labelled `label` (before the last line of
/// its last chunk at `budget`, with the indentation of the line above), returning the text.
fn edit_inside(name: &str, label: &str, budget: usize) -> String {
    let text = fixture(name);
    let target = chunk_code(name, &text, budget, &words)
        .unwrap()
        .into_iter()
        .rfind(|c| describe(c).2 == label)
        .unwrap_or_else(|| panic!("no {label} in {name}"));
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let inner = &lines[target.end_line - 2];
    let indent: String = inner.chars().take_while(|c| c.is_whitespace()).collect();
    let comment = if name.ends_with(".py") { "#" } else { "//" };
    lines.insert(
        target.end_line - 1,
        format!("{indent}{comment} edited here\n"),
    );
    lines.concat()
}

#[test]
fn an_edit_inside_one_definition_leaves_every_other_chunk_byte_identical() {
    let cases = [
        ("lib.rs", "impl Header", "method Header::parse_header"),
        ("shapes.py", "class Circle", "method Circle.area"),
        ("cart.js", "fn cartTotal", "fn cartTotal"),
        ("api.ts", "class UserClient", "method UserClient.fetchUser"),
        ("Button.tsx", "fn Button", "fn Button"),
        ("server.go", "fn NewServer", "fn NewServer"),
        (
            "Inventory.java",
            "class Inventory",
            "method Inventory.toString",
        ),
        ("list.c", "fn list_push", "fn list_push"),
        (
            "matrix.cpp",
            "method linalg::Matrix::trace",
            "method linalg::Matrix::trace",
        ),
    ];
    for (name, whole, split_label) in cases {
        // Inside the member, so that the edit is inside both the whole definition and the
        // member it splits into.
        let edited = edit_inside(name, split_label, 25);
        // Whole definitions, and definitions split at their members.
        for (budget, label) in [(1000, whole), (25, split_label)] {
            let before = chunk_code(name, &fixture(name), budget, &words).unwrap();
            let after = chunk_code(name, &edited, budget, &words).unwrap();
            let texts = |cs: &[Chunk]| cs.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
            let (old, new) = (texts(&before), texts(&after));
            let changed: Vec<&Chunk> = after.iter().filter(|c| !old.contains(&c.text)).collect();
            assert!(!changed.is_empty(), "{name}: the edit shows");
            for c in &changed {
                assert_eq!(describe(c).2, label, "{name} at {budget}: {c:?}");
            }
            let gone: Vec<&Chunk> = before.iter().filter(|c| !new.contains(&c.text)).collect();
            for c in &gone {
                assert_eq!(describe(c).2, label, "{name} at {budget}: {c:?} changed");
            }
            let kept = before.len() - gone.len();
            assert!(kept >= 2, "{name} at {budget}: only {kept} chunks kept");
        }
    }
}

#[test]
fn a_file_with_syntax_errors_still_chunks_around_them() {
    let text = "use std::io;\n\n/// Fine before.\nfn before() -> u8 {\n    1\n}\n\nfn broken(x: u8 {\n    let y = ;\n    if x > { y }\n\n\nfn after() -> u8 {\n    2\n}\n";
    let chunks = chunk_code("broken.rs", text, 1000, &words).unwrap();
    check_lines(text, &chunks);
    // The unclosed parameter list swallows the rest of the file: from there on, lines.
    assert_eq!(
        chunks.iter().map(describe).collect::<Vec<_>>(),
        expect(&[(1, 1, ""), (3, 6, "fn before"), (8, 15, "")])
    );
    // Every line with code is in some chunk.
    for (i, line) in text.lines().enumerate() {
        if !line.trim().is_empty() && line.chars().any(char::is_alphanumeric) {
            assert!(
                chunks
                    .iter()
                    .any(|c| (c.start_line..=c.end_line).contains(&(i + 1))),
                "line {} is in no chunk: {chunks:?}",
                i + 1
            );
        }
    }
    // An error inside a body leaves the function (and the next one) whole.
    let text = "fn broken() -> u8 {\n    let y = ;\n    y +\n}\n\nfn after() -> u8 {\n    2\n}\n";
    let chunks = chunk_code("broken.rs", text, 1000, &words).unwrap();
    assert_eq!(
        chunks.iter().map(describe).collect::<Vec<_>>(),
        expect(&[(1, 4, "fn broken"), (6, 8, "fn after")])
    );
    // Not code at all, in a code file: line chunks.
    let prose = "This is not Rust at all; it is prose with (unbalanced parentheses\nand { braces\n\nthat never close.\n";
    let chunks = chunk_code("notes.rs", prose, 1000, &words).unwrap();
    check_lines(prose, &chunks);
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c.symbol.is_none()), "{chunks:?}");
}

#[test]
fn other_files_keep_the_line_chunker() {
    let text: String = (1..=60)
        .map(|i| format!("line {i} of some notes\n"))
        .collect();
    for name in ["README.md", "Cargo.toml", "run.sh", "notes"] {
        assert!(chunk_code(name, &text, 30, &words).is_none(), "{name}");
        assert_eq!(
            chunk_file(name, &text, 30, &words),
            split(&text, 30, &words)
        );
    }
    let rust = fixture("lib.rs");
    assert_eq!(
        chunk_file("src/lib.rs", &rust, 1000, &words),
        chunk_code("lib.rs", &rust, 1000, &words).unwrap()
    );
}

// CLI-BEGIN (the end-to-end tests need the binary and the test model)

/// A tiny repository: a Rust file of two functions and a Python class.
fn code_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, content: &str| common::repos::write(dir.path(), rel, content);
    write(
        "src/header.rs",
        "use std::io;\n\n/// Reads a header.\npub fn parse_header(bytes: &[u8]) -> io::Result<u32> {\n    Ok(u32::from(bytes[0]))\n}\n\n/// Writes a footer.\npub fn write_footer(out: &mut Vec<u8>) {\n    out.push(0xff);\n}\n",
    );
    write(
        "tools/geometry.py",
        "class Circle:\n    def area(self):\n        return 3.14159 * self.radius_squared\n",
    );
    dir
}

fn index_repo(repo: &Path) -> serde_json::Value {
    let model = common::f32_model();
    common::json_output(&common::run_offline(&[
        "index",
        "--repo",
        repo.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-f",
        "json",
    ]))
}

/// The hits of a search's JSON output.
fn results(out: &std::process::Output) -> serde_json::Value {
    common::json_output(out)["results"].clone()
}

fn search(repo: &Path, query: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["search", query, "--repo", repo.to_str().unwrap(), "-k", "1"];
    args.extend_from_slice(extra);
    common::run_offline(&args)
}

#[test]
fn search_shows_the_symbol_and_kind_of_a_hit() {
    let repo = code_repo();
    let report = index_repo(repo.path());
    // The imports, two functions and the class.
    assert_eq!(report["chunks"], 4, "{report}");

    let hits = results(&search(
        repo.path(),
        "parse_header",
        &["--mode", "lexical", "-f", "json"],
    ));
    let hit = &hits[0];
    assert_eq!(hit["path"], "src/header.rs");
    assert_eq!(
        (hit["start_line"].as_u64(), hit["end_line"].as_u64()),
        (Some(3), Some(6))
    );
    assert_eq!(hit["symbol"], "parse_header");
    assert_eq!(hit["kind"], "fn");
    assert!(
        hit["snippet"]
            .as_str()
            .unwrap()
            .starts_with("/// Reads a header.\npub fn parse_header")
    );
    assert!(hit["score"].is_number());

    let text = search(repo.path(), "write_footer", &["--mode", "lexical"]);
    assert!(text.status.success());
    let first = String::from_utf8_lossy(&text.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first.starts_with("src/header.rs:8-11  fn write_footer  "),
        "{first}"
    );

    // The class fits the budget: one chunk, the class's.
    let hits = results(&search(
        repo.path(),
        "radius_squared",
        &["--mode", "lexical", "-f", "json"],
    ));
    assert_eq!(hits[0]["symbol"], "Circle");
    assert_eq!(hits[0]["kind"], "class");
    // A chunk that holds no definition has neither field.
    let hits = results(&search(
        repo.path(),
        "use std::io",
        &["--mode", "lexical", "-f", "json"],
    ));
    assert_eq!(hits[0]["start_line"], 1);
    assert!(
        hits[0].get("symbol").is_none() && hits[0].get("kind").is_none(),
        "{hits}"
    );
}

#[test]
fn an_index_chunked_by_lines_is_rechunked_by_the_next_update() {
    let repo = code_repo();
    index_repo(repo.path());
    // What an index of the line chunker looks like: no chunker version, no symbols.
    let db = repo.path().join(".gguf-embed/index.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE chunks SET symbol = NULL, kind = NULL", [])
        .unwrap();
    conn.execute("DELETE FROM meta WHERE key = 'chunker'", [])
        .unwrap();
    drop(conn);
    let report = index_repo(repo.path());
    // Every file is chunked again; every chunk's text is stored already, so nothing is embedded.
    assert_eq!(report["embedded_files"], 2, "{report}");
    assert_eq!(report["chunks"], 0, "{report}");
    assert_eq!(report["reused_chunks"], 4, "{report}");
    let hits = results(&search(
        repo.path(),
        "parse_header",
        &["--mode", "lexical", "-f", "json"],
    ));
    assert_eq!(hits[0]["symbol"], "parse_header");
    // And once re-chunked, an update leaves the files alone again.
    let again = index_repo(repo.path());
    assert_eq!(again["embedded_files"], 0, "{again}");
    assert_eq!(again["unchanged_files"], 2, "{again}");
}
// CLI-END
