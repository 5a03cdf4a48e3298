//! Which files a search looks at: glob patterns (`!` excludes), languages and a path prefix.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::IndexError;

/// Languages by file extension, as `--lang` names them.
const LANGUAGES: &[(&str, &[&str])] = &[
    ("rust", &["rs"]),
    ("python", &["py", "pyi"]),
    ("javascript", &["js", "jsx", "mjs", "cjs"]),
    ("typescript", &["ts", "tsx", "mts", "cts"]),
    ("go", &["go"]),
    ("java", &["java"]),
    ("c", &["c", "h"]),
    ("cpp", &["cc", "cpp", "cxx", "hpp", "hh", "hxx"]),
    ("csharp", &["cs"]),
    ("ruby", &["rb"]),
    ("php", &["php"]),
    ("swift", &["swift"]),
    ("kotlin", &["kt", "kts"]),
    ("scala", &["scala"]),
    ("shell", &["sh", "bash", "zsh"]),
    ("markdown", &["md", "markdown"]),
    ("toml", &["toml"]),
    ("yaml", &["yml", "yaml"]),
    ("json", &["json"]),
    ("sql", &["sql"]),
    ("html", &["html", "htm"]),
    ("css", &["css", "scss"]),
];

/// The language of a path by its extension (`None` when unknown).
pub fn language_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(_, exts)| exts.contains(&ext.as_str()))
        .map(|(lang, _)| *lang)
}

/// The names `--lang` accepts.
pub fn language_names() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().map(|(l, _)| *l)
}

/// A compiled path filter.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    languages: Vec<String>,
    prefix: Option<String>,
}

impl PathFilter {
    /// Builds a filter: `globs` match paths relative to the repository (`!` in front
    /// excludes; a path must match some include, when there is one, and no exclude);
    /// `languages` by name (see [`language_of`]); `prefix` a leading path (`src/index` or
    /// `src/index/`).
    pub fn new(
        globs: &[String],
        languages: &[String],
        prefix: Option<&str>,
    ) -> Result<Self, IndexError> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let (mut any_include, mut any_exclude) = (false, false);
        for pattern in globs {
            let (negated, body) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern.as_str()),
            };
            let glob = Glob::new(body)
                .map_err(|e| IndexError::InvalidQuery(format!("bad glob {pattern:?}: {e}")))?;
            if negated {
                exclude.add(glob);
                any_exclude = true;
            } else {
                include.add(glob);
                any_include = true;
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| IndexError::InvalidQuery(format!("bad glob: {e}")))
        };
        for lang in languages {
            if !language_names().any(|l| l == lang) {
                return Err(IndexError::InvalidQuery(format!(
                    "unknown language {lang:?}; known: {}",
                    language_names().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(Self {
            include: any_include.then(|| build(include)).transpose()?,
            exclude: any_exclude.then(|| build(exclude)).transpose()?,
            languages: languages.to_vec(),
            prefix: prefix
                .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string())
                .filter(|p| !p.is_empty()),
        })
    }

    /// Whether the filter lets every path through.
    pub fn is_empty(&self) -> bool {
        self.include.is_none()
            && self.exclude.is_none()
            && self.languages.is_empty()
            && self.prefix.is_none()
    }

    /// Whether `path` passes.
    pub fn matches(&self, path: &str) -> bool {
        if let Some(prefix) = &self.prefix
            && !(path == prefix
                || path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
        {
            return false;
        }
        if !self.languages.is_empty()
            && !language_of(path).is_some_and(|l| self.languages.iter().any(|x| x == l))
        {
            return false;
        }
        if self.include.as_ref().is_some_and(|g| !g.is_match(path)) {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|g| g.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(globs: &[&str], langs: &[&str], prefix: Option<&str>) -> PathFilter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PathFilter::new(&s(globs), &s(langs), prefix).unwrap()
    }

    #[test]
    fn globs_include_and_exclude() {
        let f = filter(&["src/**/*.rs", "!**/tests/**"], &[], None);
        assert!(f.matches("src/index/mod.rs"));
        assert!(!f.matches("src/tests/a.rs"));
        assert!(!f.matches("web/app.js"));
        let only_exclude = filter(&["!*.md"], &[], None);
        assert!(only_exclude.matches("src/a.rs"));
        assert!(!only_exclude.matches("README.md"));
    }

    #[test]
    fn languages_and_prefixes() {
        let f = filter(&[], &["python", "go"], Some("./tools/"));
        assert!(f.matches("tools/report.py"));
        assert!(!f.matches("tools/report.rs"));
        assert!(!f.matches("toolsx/report.py"));
        assert!(!f.matches("src/main.go"));
        assert_eq!(language_of("a/B.TSX"), Some("typescript"));
        assert_eq!(language_of("Makefile"), None);
        assert!(PathFilter::new(&[], &["klingon".into()], None).is_err());
        assert!(PathFilter::new(&["a[".into()], &[], None).is_err());
        assert!(filter(&[], &[], Some("/")).is_empty());
    }
}
