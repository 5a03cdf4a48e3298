//! The two requests a download needs: the file's metadata (HEAD on its resolve URL) and its
//! content from an offset (GET with a Range header).

use std::io::Read;
use std::time::Duration;

use ureq::Agent;
use ureq::http::{HeaderMap, StatusCode};

use super::{HubError, HubFile};

/// What the Hub says about a file before we download it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetadata {
    /// The commit the revision resolves to (40 hex digits).
    pub commit: String,
    /// The blob name: the sha256 of an LFS file, the git hash otherwise.
    pub etag: String,
    /// The file size.
    pub size: u64,
}

impl FileMetadata {
    /// The etag when it is a sha256 (as the Hub reports it for LFS and Xet files).
    pub fn sha256(&self) -> Option<&str> {
        is_sha256(&self.etag).then_some(self.etag.as_str())
    }
}

/// Whether `s` is 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An HTTP client for one Hub endpoint.
pub struct Client {
    endpoint: String,
    token: Option<String>,
    /// Does not follow redirects: metadata lives on the Hub's own response.
    head_agent: Agent,
    /// Follows redirects to the CDN; ureq drops the Authorization header when it does.
    get_agent: Agent,
}

const USER_AGENT: &str = concat!("gguf-embed/", env!("CARGO_PKG_VERSION"));

impl Client {
    /// A client for `endpoint`, sending `token` to it.
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        let agent = |redirects: u32| -> Agent {
            Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(redirects)
                .max_redirects_will_error(false)
                .user_agent(USER_AGENT)
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_response(Some(Duration::from_secs(60)))
                .timeout_per_read(Some(Duration::from_secs(60)))
                .build()
                .into()
        };
        Self {
            endpoint: endpoint.to_string(),
            token,
            head_agent: agent(0),
            get_agent: agent(10),
        }
    }

    /// The resolve URL of a file.
    pub fn url(&self, file: &HubFile) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint, file.repo, file.revision, file.file
        )
    }

    /// Asks the Hub for a file's commit, hash and size. Follows only redirects within the Hub
    /// (renamed repositories); the CDN redirect of large files already carries the metadata.
    pub fn metadata(&self, file: &HubFile) -> Result<FileMetadata, HubError> {
        let mut url = self.url(file);
        for _ in 0..5 {
            let mut request = self.head_agent.head(&url);
            if let Some(token) = &self.token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let response = request.call().map_err(|e| network_error(&url, e))?;
            let status = response.status();
            let headers = response.headers();
            if status.is_redirection()
                && let Some(next) = relative_location(headers)
            {
                url = format!("{}{}", self.endpoint, next);
                continue;
            }
            if !(status.is_success() || status.is_redirection()) {
                return Err(status_error(status, file, self.token.is_some()));
            }
            return parse_metadata(headers, file);
        }
        Err(HubError::Protocol(format!("too many redirects for {file}")))
    }

    /// Starts reading a file from byte `offset`. Returns whether the server honoured the
    /// range (206); with a 200 the body starts at byte 0.
    pub fn get_from(
        &self,
        file: &HubFile,
        offset: u64,
    ) -> Result<(bool, Box<dyn Read + Send>), HubError> {
        let url = self.url(file);
        let mut request = self.get_agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = request.call().map_err(|e| network_error(&url, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status, file, self.token.is_some()));
        }
        let partial = status == StatusCode::PARTIAL_CONTENT;
        Ok((partial, Box::new(response.into_body().into_reader())))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn relative_location(headers: &HeaderMap) -> Option<String> {
    header(headers, "location")
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .map(str::to_string)
}

fn parse_metadata(headers: &HeaderMap, file: &HubFile) -> Result<FileMetadata, HubError> {
    let missing = |name: &str| {
        HubError::Protocol(format!(
            "the Hub's answer for {file} lacks the {name} header (is HF_ENDPOINT a Hugging Face \
             Hub?)"
        ))
    };
    let commit = header(headers, "x-repo-commit").ok_or_else(|| missing("X-Repo-Commit"))?;
    let etag = header(headers, "x-linked-etag")
        .or_else(|| header(headers, "etag"))
        .ok_or_else(|| missing("ETag"))?;
    let etag = etag.trim_start_matches("W/").trim_matches('"').to_string();
    let size = header(headers, "x-linked-size")
        .or_else(|| header(headers, "content-length"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| missing("X-Linked-Size"))?;
    // Both become file names in the cache: accept only what the Hub really sends.
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if commit.len() != 40 || !hex(commit) {
        return Err(HubError::Protocol(format!(
            "the Hub sent an invalid commit id {commit:?}"
        )));
    }
    if etag.len() > 128 || !etag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(HubError::Protocol(format!(
            "the Hub sent an invalid etag {etag:?}"
        )));
    }
    Ok(FileMetadata {
        commit: commit.to_ascii_lowercase(),
        etag,
        size,
    })
}

fn status_error(status: StatusCode, file: &HubFile, has_token: bool) -> HubError {
    match status.as_u16() {
        401 | 403 if has_token => HubError::Denied(format!(
            "the Hub refused access to {file} (HTTP {status}): your token (HF_TOKEN) does not \
             grant access to this repository"
        )),
        401 | 403 => HubError::Denied(format!(
            "the Hub refused access to {file} (HTTP {status}): the repository is private or \
             gated; set HF_TOKEN to a token with access"
        )),
        404 => HubError::NotFound(format!(
            "{file} was not found on the Hub (HTTP 404): check the repository, file name and \
             revision"
        )),
        _ => HubError::Network(format!("the Hub answered HTTP {status} for {file}")),
    }
}

fn network_error(url: &str, error: ureq::Error) -> HubError {
    HubError::Network(format!(
        "cannot reach {url}: {error}; check your connection, or work offline with \
         HF_HUB_OFFLINE=1 once the model is cached"
    ))
}
