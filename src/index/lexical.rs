//! Code-aware terms for the lexical (FTS5) index, and queries that are always plain text.
//!
//! The FTS5 tokenizer keeps identifiers whole (`_` is a token character), so `load_config`
//! is one term. For the parts, each compound identifier also contributes its pieces split at
//! `_` and at camelCase boundaries (`parseHTTPHeader` → `parse`, `http`, `header`) to a
//! separate column. A query is split the same way and every term is quoted, so quotes,
//! colons, parentheses, `*`, `-` and the words AND/OR/NOT are searched for as written and
//! never read as FTS5 syntax.

/// The words of `text`: runs of letters, digits and `_`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The pieces of one identifier, lower-cased: split at `_`, at lower→upper changes and
/// before the last capital of an upper-case run followed by lower case (`HTTPServer` →
/// `http`, `server`), and between letters and digits.
pub fn identifier_parts(word: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for piece in word.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = piece.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (prev, cur) = (chars[i - 1], chars[i]);
            let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            let boundary = (prev.is_lowercase() && cur.is_uppercase())
                || (prev.is_uppercase() && cur.is_uppercase() && next_lower)
                || (prev.is_alphabetic() != cur.is_alphabetic()
                    && (prev.is_numeric() || cur.is_numeric()));
            if boundary {
                parts.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        parts.push(chars[start..].iter().collect::<String>().to_lowercase());
    }
    parts
}

/// The `parts` column of a chunk: the pieces of every compound identifier in `text`
/// (identifiers of one piece are already whole terms of the body).
pub fn parts_column(text: &str) -> String {
    let mut out = String::new();
    for word in words(text) {
        let parts = identifier_parts(word);
        if parts.len() > 1 {
            for p in parts {
                out.push_str(&p);
                out.push(' ');
            }
        }
    }
    out
}

/// An FTS5 query for plain `text`: every word and every identifier piece as a quoted term,
/// OR'ed, plus the whole sequence of words as a quoted phrase (so the chunk that contains an
/// error message or a path as written ranks above chunks that only share its words). `None`
/// when the text has no word at all.
pub fn fts_query(text: &str) -> Option<String> {
    let all: Vec<&str> = words(text).collect();
    if all.is_empty() {
        return None;
    }
    let mut terms: Vec<String> = Vec::new();
    let mut push = |t: String| {
        if !terms.contains(&t) {
            terms.push(t);
        }
    };
    for word in &all {
        push(word.to_lowercase());
        let parts = identifier_parts(word);
        if parts.len() > 1 {
            parts.into_iter().for_each(&mut push);
        }
    }
    let mut query: Vec<String> = terms.iter().map(|t| quote(t)).collect();
    if all.len() > 1 {
        query.push(quote(&all.join(" ")));
    }
    Some(query.join(" OR "))
}

/// An FTS5 string: in double quotes, a double quote doubled. (Our terms hold no quotes, but
/// the escaping keeps this safe for any text.)
fn quote(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_at_snake_and_camel_case() {
        assert_eq!(identifier_parts("load_config"), ["load", "config"]);
        assert_eq!(
            identifier_parts("parseHTTPHeader"),
            ["parse", "http", "header"]
        );
        assert_eq!(identifier_parts("HTTPServer"), ["http", "server"]);
        assert_eq!(identifier_parts("UpdateReport"), ["update", "report"]);
        assert_eq!(identifier_parts("sha256_hex"), ["sha", "256", "hex"]);
        assert_eq!(identifier_parts("__init__"), ["init"]);
        assert_eq!(identifier_parts("x"), ["x"]);
    }

    #[test]
    fn the_parts_column_holds_pieces_of_compound_identifiers_only() {
        assert_eq!(
            parts_column("fn loadConfig(path) { x.y_z }"),
            "load config y z "
        );
    }

    #[test]
    fn queries_quote_every_term_and_keep_syntax_as_text() {
        assert_eq!(
            fts_query("loadConfig").unwrap(),
            "\"loadconfig\" OR \"load\" OR \"config\""
        );
        let q = fts_query("NOT (a:b) OR \"c\" * -d AND").unwrap();
        assert_eq!(
            q,
            "\"not\" OR \"a\" OR \"b\" OR \"or\" OR \"c\" OR \"d\" OR \"and\" OR \"NOT a b OR c d AND\""
        );
        assert_eq!(fts_query("()*:-\""), None);
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
