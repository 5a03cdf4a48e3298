//! Per-language tables: which tree-sitter nodes are definitions, what they are called, which
//! nodes (comments, attributes, decorators) belong to the definition after them, and which
//! nodes only wrap other top-level items (`#ifdef` blocks, `extern "C" { }`).
//!
//! The kinds a chunk can have form one small vocabulary across languages, so that an agent
//! reads `fn`, `method`, `class` the same way whatever the file: `fn` (a function),
//! `method` (a function inside a class, struct, impl, trait, interface, enum or record, and Go
//! methods), `class`, `struct`, `enum`, `union`, `trait`, `interface`, `impl`, `record`,
//! `mod` (a module or namespace), `type` (an alias) and `macro`.

use tree_sitter::Node;

/// A language the code chunker parses.
pub(crate) struct Language {
    /// The grammar.
    grammar: Grammar,
    /// Between a container's name and a member's: `Header::parse` in Rust and C++ (their own
    /// path syntax), `Parser.parse` everywhere else.
    pub separator: &'static str,
    /// The definitions.
    definitions: &'static [Definition],
    /// Nodes that belong to the definition right after them when no blank line separates
    /// them: doc comments, attributes, decorators.
    pub attached: &'static [&'static str],
    /// Nodes whose children count as items of the container they are in: a C header's
    /// include guard wraps the whole file, and a definition inside it must still be one.
    pub transparent: &'static [&'static str],
}

/// Which grammar crate parses a language.
#[derive(Clone, Copy)]
enum Grammar {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
}

impl Language {
    /// The tree-sitter language.
    pub fn grammar(&self) -> tree_sitter::Language {
        match self.grammar {
            Grammar::Rust => tree_sitter_rust::LANGUAGE.into(),
            Grammar::Python => tree_sitter_python::LANGUAGE.into(),
            Grammar::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Grammar::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Grammar::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Grammar::Go => tree_sitter_go::LANGUAGE.into(),
            Grammar::Java => tree_sitter_java::LANGUAGE.into(),
            Grammar::C => tree_sitter_c::LANGUAGE.into(),
            Grammar::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// What `node` defines, if it is a definition: its kind, name and body.
    pub fn definition<'t>(&self, node: Node<'t>, src: &[u8]) -> Option<Found<'t>> {
        let def = self.definitions.iter().find(|d| d.node == node.kind())?;
        let body = node.child_by_field_name("body");
        if def.needs_body && body.is_none() {
            // `mod tests;`, `struct foo;`, `class Foo;`: declarations, not definitions.
            return None;
        }
        let plain = |name: String| Found {
            kind: def.kind,
            scope: name.clone(),
            name,
            body,
        };
        match def.name {
            Name::Field(field) => Some(plain(text(node.child_by_field_name(field)?, src)?)),
            Name::Wrapper(field) => self.definition(node.child_by_field_name(field)?, src),
            Name::AnyChild => {
                let mut cursor = node.walk();
                let children: Vec<Node<'t>> = node.named_children(&mut cursor).collect();
                children.into_iter().find_map(|c| self.definition(c, src))
            }
            Name::RustImpl => {
                let ty = node.child_by_field_name("type")?;
                // `impl<T> Foo<T>`: methods are `Foo::name`.
                let bare = match ty.kind() {
                    "generic_type" => ty.child_by_field_name("type").unwrap_or(ty),
                    _ => ty,
                };
                let scope = text(bare, src)?;
                let name = match node.child_by_field_name("trait") {
                    Some(t) => format!("{} for {}", text(t, src)?, text(ty, src)?),
                    None => text(ty, src)?,
                };
                Some(Found {
                    kind: def.kind,
                    name,
                    scope,
                    body,
                })
            }
            Name::GoMethod => {
                let name = text(node.child_by_field_name("name")?, src)?;
                // `func (s *Server[T]) Start()`: the receiver's type name, `Server.Start`.
                let receiver = node.child_by_field_name("receiver")?;
                let ty = first_descendant(receiver, "type_identifier")?;
                Some(plain(format!("{}.{name}", text(ty, src)?)))
            }
            Name::GoType => {
                let mut cursor = node.walk();
                let specs: Vec<Node> = node
                    .named_children(&mut cursor)
                    .filter(|c| matches!(c.kind(), "type_spec" | "type_alias"))
                    .collect();
                // A `type ( ... )` group of several types is a run of small declarations.
                let [spec] = specs[..] else { return None };
                let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                    Some("struct_type") => "struct",
                    Some("interface_type") => "interface",
                    _ => "type",
                };
                let name = text(spec.child_by_field_name("name")?, src)?;
                Some(Found {
                    kind,
                    scope: name.clone(),
                    name,
                    body,
                })
            }
            Name::CFunction => {
                // `static char *name(void)`: down the declarators to the function's.
                let mut d = node.child_by_field_name("declarator")?;
                for _ in 0..16 {
                    if d.kind() == "function_declarator" {
                        let name = d.child_by_field_name("declarator")?;
                        // C++'s `void Foo::bar() { ... }` defines a member outside its class:
                        // a method, named `Foo::bar`. (`void ns::f() { ... }` would be a
                        // namespace's function; the syntax does not tell them apart, and
                        // out-of-class member definitions are by far the more common.)
                        let kind = match name.kind() {
                            "qualified_identifier" => "method",
                            _ => def.kind,
                        };
                        return Some(Found {
                            kind,
                            ..plain(text(name, src)?)
                        });
                    }
                    d = match d.child_by_field_name("declarator") {
                        Some(inner) => inner,
                        // `&name(...)`: C++'s reference declarator has no field.
                        None => d.named_child(0)?,
                    };
                }
                None
            }
            Name::CTypedef => {
                // Only `typedef struct { ... } Name;` and the like: a small `typedef int id;`
                // goes with the declarations around it.
                let ty = node.child_by_field_name("type")?;
                let kind = match ty.kind() {
                    "struct_specifier" => "struct",
                    "union_specifier" => "union",
                    "enum_specifier" => "enum",
                    _ => return None,
                };
                let body = ty.child_by_field_name("body")?;
                let name = text(node.child_by_field_name("declarator")?, src)?;
                Some(Found {
                    kind,
                    scope: name.clone(),
                    name,
                    body: Some(body),
                })
            }
            Name::JsVariable => {
                // `const parse = (text) => { ... }`: one declarator whose value is a function
                // or a class.
                let mut cursor = node.walk();
                let declarators: Vec<Node> = node
                    .named_children(&mut cursor)
                    .filter(|c| c.kind() == "variable_declarator")
                    .collect();
                let [declarator] = declarators[..] else {
                    return None;
                };
                let value = declarator.child_by_field_name("value")?;
                let kind = js_function_kind(value.kind())?;
                let name = text(declarator.child_by_field_name("name")?, src)?;
                Some(Found {
                    kind,
                    scope: name.clone(),
                    name,
                    body: value.child_by_field_name("body"),
                })
            }
            Name::JsField(field) => {
                // `handle = (event) => { ... }` in a class body.
                let value = node.child_by_field_name("value")?;
                js_function_kind(value.kind())?;
                let name = text(node.child_by_field_name(field)?, src)?;
                Some(Found {
                    kind: def.kind,
                    scope: name.clone(),
                    name,
                    body: value.child_by_field_name("body"),
                })
            }
        }
    }
}

/// `fn` for a function value, `class` for a class value, `None` for anything else.
fn js_function_kind(value: &str) -> Option<&'static str> {
    match value {
        "arrow_function" | "function_expression" | "function" | "generator_function" => Some("fn"),
        "class" => Some("class"),
        _ => None,
    }
}

/// The first node of `kind` under `node`, depth first.
fn first_descendant<'t>(node: Node<'t>, kind: &str) -> Option<Node<'t>> {
    if node.kind() == kind {
        return Some(node);
    }
    let mut cursor = node.walk();
    let children: Vec<Node<'t>> = node.named_children(&mut cursor).collect();
    children.into_iter().find_map(|c| first_descendant(c, kind))
}

/// A node's text on one line (a name written over several lines, `Foo<\n  T>`, is joined).
fn text(node: Node, src: &[u8]) -> Option<String> {
    let raw = node.utf8_text(src).ok()?;
    let joined = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// What a definition node is.
pub(crate) struct Found<'t> {
    /// Its kind (see the module's vocabulary); a function inside a class-like container is
    /// renamed `method` by the caller.
    pub kind: &'static str,
    /// Its name, without the containers'.
    pub name: String,
    /// The name its members are qualified with (`Header` for `impl Display for Header`).
    pub scope: String,
    /// Where its members are, for splitting it when it is over the budget.
    pub body: Option<Node<'t>>,
}

/// One row of a language's definition table.
struct Definition {
    /// The tree-sitter node kind.
    node: &'static str,
    /// The chunk kind it gives.
    kind: &'static str,
    /// Where its name is.
    name: Name,
    /// Only a definition when it has a body (`mod a;` and `struct s;` are declarations).
    needs_body: bool,
}

/// Where a definition's name is.
#[derive(Clone, Copy)]
enum Name {
    /// The text of this field.
    Field(&'static str),
    /// The definition in this field (Python's decorators, JavaScript's `export`).
    Wrapper(&'static str),
    /// The first named child that is a definition (C++ `template <...>`).
    AnyChild,
    /// `impl [Trait for] Type`.
    RustImpl,
    /// `func (r *Recv) Name`: `Recv.Name`.
    GoMethod,
    /// `type Name struct|interface|...` with a single type.
    GoType,
    /// Down a C/C++ function's declarators.
    CFunction,
    /// `typedef struct|union|enum { ... } Name;`.
    CTypedef,
    /// `const name = () => {}` and `const Name = class {}`.
    JsVariable,
    /// A class field holding a function, named by this field.
    JsField(&'static str),
}

const fn def(node: &'static str, kind: &'static str, name: Name) -> Definition {
    Definition {
        node,
        kind,
        name,
        needs_body: false,
    }
}

const fn with_body(node: &'static str, kind: &'static str, name: Name) -> Definition {
    Definition {
        node,
        kind,
        name,
        needs_body: true,
    }
}

const NAME: Name = Name::Field("name");

const RUST: Language = Language {
    grammar: Grammar::Rust,
    separator: "::",
    definitions: &[
        def("function_item", "fn", NAME),
        def("struct_item", "struct", NAME),
        def("enum_item", "enum", NAME),
        def("union_item", "union", NAME),
        def("trait_item", "trait", NAME),
        def("impl_item", "impl", Name::RustImpl),
        with_body("mod_item", "mod", NAME),
        def("macro_definition", "macro", NAME),
        def("type_item", "type", NAME),
    ],
    attached: &["line_comment", "block_comment", "attribute_item"],
    transparent: &["ERROR"],
};

const PYTHON: Language = Language {
    grammar: Grammar::Python,
    separator: ".",
    definitions: &[
        def("function_definition", "fn", NAME),
        def("class_definition", "class", NAME),
        def("decorated_definition", "fn", Name::Wrapper("definition")),
    ],
    attached: &["comment"],
    transparent: &["ERROR"],
};

/// JavaScript's definitions; TypeScript's add to them.
macro_rules! js_definitions {
    ($($extra:expr),* $(,)?) => {
        &[
            def("function_declaration", "fn", NAME),
            def("generator_function_declaration", "fn", NAME),
            def("class_declaration", "class", NAME),
            def("method_definition", "method", NAME),
            def("lexical_declaration", "fn", Name::JsVariable),
            def("variable_declaration", "fn", Name::JsVariable),
            def("export_statement", "fn", Name::Wrapper("declaration")),
            def("field_definition", "method", Name::JsField("property")),
            def("public_field_definition", "method", Name::JsField("name")),
            $($extra),*
        ]
    };
}

const JAVASCRIPT: Language = Language {
    grammar: Grammar::JavaScript,
    separator: ".",
    definitions: js_definitions!(),
    attached: &["comment", "decorator"],
    transparent: &["ERROR"],
};

const TYPESCRIPT_DEFINITIONS: &[Definition] = js_definitions!(
    def("abstract_class_declaration", "class", NAME),
    def("interface_declaration", "interface", NAME),
    def("type_alias_declaration", "type", NAME),
    def("enum_declaration", "enum", NAME),
    with_body("internal_module", "mod", NAME),
    with_body("module", "mod", NAME),
);

const TYPESCRIPT: Language = Language {
    grammar: Grammar::TypeScript,
    separator: ".",
    definitions: TYPESCRIPT_DEFINITIONS,
    attached: &["comment", "decorator"],
    transparent: &["ERROR"],
};

const TSX: Language = Language {
    grammar: Grammar::Tsx,
    ..TYPESCRIPT
};

const GO: Language = Language {
    grammar: Grammar::Go,
    separator: ".",
    definitions: &[
        def("function_declaration", "fn", NAME),
        def("method_declaration", "method", Name::GoMethod),
        def("type_declaration", "type", Name::GoType),
    ],
    attached: &["comment"],
    transparent: &["ERROR"],
};

const JAVA: Language = Language {
    grammar: Grammar::Java,
    separator: ".",
    definitions: &[
        def("class_declaration", "class", NAME),
        def("interface_declaration", "interface", NAME),
        def("enum_declaration", "enum", NAME),
        def("record_declaration", "record", NAME),
        def("annotation_type_declaration", "interface", NAME),
        def("method_declaration", "method", NAME),
        def("constructor_declaration", "method", NAME),
        def("compact_constructor_declaration", "method", NAME),
    ],
    attached: &["line_comment", "block_comment"],
    // An enum's methods sit in `enum_body_declarations` after its constants.
    transparent: &["ERROR", "enum_body_declarations"],
};

/// C's definitions; C++'s add to them.
macro_rules! c_definitions {
    ($($extra:expr),* $(,)?) => {
        &[
            def("function_definition", "fn", Name::CFunction),
            with_body("struct_specifier", "struct", NAME),
            with_body("union_specifier", "union", NAME),
            with_body("enum_specifier", "enum", NAME),
            def("type_definition", "type", Name::CTypedef),
            $($extra),*
        ]
    };
}

/// C's preprocessor blocks: an include guard or `#ifdef` wraps definitions.
macro_rules! c_transparent {
    ($($extra:expr),* $(,)?) => {
        &["ERROR", "preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif",
          "preproc_elifdef", $($extra),*]
    };
}

const C: Language = Language {
    grammar: Grammar::C,
    separator: ".",
    definitions: c_definitions!(),
    attached: &["comment"],
    transparent: c_transparent!(),
};

const CPP: Language = Language {
    grammar: Grammar::Cpp,
    separator: "::",
    definitions: c_definitions!(
        with_body("class_specifier", "class", NAME),
        with_body("namespace_definition", "mod", NAME),
        def("template_declaration", "fn", Name::AnyChild),
    ),
    attached: &["comment"],
    // `extern "C" { ... }` holds its declarations in a `declaration_list`.
    transparent: c_transparent!("linkage_specification", "declaration_list"),
};

/// The language a path's extension says, among those the code chunker parses.
pub(crate) fn language_for(path: &str) -> Option<&'static Language> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "rs" => &RUST,
        "py" | "pyi" => &PYTHON,
        "js" | "jsx" | "mjs" | "cjs" => &JAVASCRIPT,
        "ts" | "mts" | "cts" => &TYPESCRIPT,
        "tsx" => &TSX,
        "go" => &GO,
        "java" => &JAVA,
        // `.h` is C, as `--lang` says; C++ headers mostly use the C++ extensions.
        "c" | "h" => &C,
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => &CPP,
        _ => return None,
    })
}

/// Kinds whose functions are methods.
pub(crate) fn holds_methods(kind: &str) -> bool {
    matches!(
        kind,
        "class" | "struct" | "enum" | "union" | "trait" | "interface" | "impl" | "record"
    )
}
