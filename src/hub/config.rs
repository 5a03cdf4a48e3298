//! Where the cache is and how to reach the Hub, resolved from the environment the way Hugging
//! Face's own tools resolve it.

use std::fmt;
use std::path::{Path, PathBuf};

/// The public Hugging Face Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How the hub client reaches the Hub and where it caches files.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// The hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// The Hub's base URL (`HF_ENDPOINT`, for mirrors).
    pub endpoint: String,
    /// An access token for private or gated repositories.
    pub token: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .finish()
    }
}

impl HubConfig {
    /// Reads `HF_HOME` (default `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`),
    /// `HF_HUB_CACHE` (default `$HF_HOME/hub`), `HF_TOKEN` (else the file named by
    /// `HF_TOKEN_PATH`, else `$HF_HOME/token`), `HF_ENDPOINT` and `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Resolves the configuration from any variable source (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(path).ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let endpoint = var("HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v));
        Self {
            cache_dir,
            endpoint,
            token,
            offline,
        }
    }

    /// Works offline.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Uses another cache directory.
    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = cache_dir.into();
        self
    }
}

/// Hugging Face's reading of boolean variables.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> HubConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_home_and_xdg() {
        let c = config(&[("HOME", "/home/u")]);
        assert_eq!(c.cache_dir, Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert!(!c.offline);
        assert_eq!(c.token, None);
        let c = config(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(c.cache_dir, Path::new("/xdg/huggingface/hub"));
    }

    #[test]
    fn hf_variables_override() {
        let c = config(&[
            ("HF_HOME", "/hf"),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_HUB_OFFLINE", "yes"),
            ("HF_TOKEN", " hf_abc \n"),
        ]);
        assert_eq!(c.cache_dir, Path::new("/hf/hub"));
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert!(c.offline);
        assert_eq!(c.token.as_deref(), Some("hf_abc"));
        let c = config(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/elsewhere")]);
        assert_eq!(c.cache_dir, Path::new("/elsewhere"));
        assert!(!config(&[("HF_HUB_OFFLINE", "0")]).offline);
        assert!(!format!("{:?}", config(&[("HF_TOKEN", "secret")])).contains("secret"));
    }

    #[test]
    fn token_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_from_home\n").unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(
            config(&[("HF_HOME", home)]).token.as_deref(),
            Some("hf_from_home")
        );
        let other = dir.path().join("other");
        std::fs::write(&other, "hf_from_path").unwrap();
        let c = config(&[
            ("HF_HOME", home),
            ("HF_TOKEN_PATH", other.to_str().unwrap()),
        ]);
        assert_eq!(c.token.as_deref(), Some("hf_from_path"));
    }
}
