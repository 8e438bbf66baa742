//! Downloading a model folder from the Hugging Face Hub (or a mirror speaking its HTTP API).
//!
//! 1. [`Hub::plan`] asks `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true` for the
//!    commit and the repository's files with their sizes and hashes, and picks what a Benchtop
//!    model folder needs: one ONNX graph (`model.onnx` at the root or in `onnx/`, or the one
//!    asked for) with its external data files, `tokenizer.json`, `config.json`, and the optional
//!    generation / tokenizer / pooling configs.
//! 2. [`Hub::download`] fetches each file from `{endpoint}/{repo}/resolve/{commit}/{path}` into
//!    a hidden staging folder next to the destination, as `NAME.part` until it is complete and
//!    verified (size, then sha256 for LFS files or the git blob hash for small ones). An
//!    interrupted download — a dropped connection, Ctrl-C, a crash — resumes where it stopped
//!    with an HTTP range request when run again for the same commit. When every file is there,
//!    the staging folder is renamed to the model's name: the model appears whole or not at all.
//!
//! The chosen graph is stored as `model.onnx`; external data files keep their names, because
//! the graph refers to them by name. A token (`HF_TOKEN`) is sent as a bearer header and never
//! appears in errors or logs. Cancel by dropping the future; the partial files stay for a resume.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{header, StatusCode, Url};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use tokio::io::AsyncWriteExt;

use super::{check_name, ManageError};

/// Where models come from unless `HF_ENDPOINT` or the caller says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Files a model folder may use besides the graph, copied when the repository has them.
const REQUIRED: [&str; 2] = ["config.json", "tokenizer.json"];
const OPTIONAL: [&str; 7] = [
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "benchtop.json",
    "1_Pooling/config.json",
];

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "`{0}` is not a repository id; it should look like `owner/name` (e.g. `onnx-community/Qwen2.5-0.5B-Instruct`)"
    )]
    BadRepo(String),

    #[error("`{0}` is not a usable endpoint URL: {1}")]
    BadEndpoint(String, String),

    #[error(
        "cannot reach {endpoint}: {reason}.\n\
         Fix: check the network connection, or point HF_ENDPOINT (--endpoint) at a reachable mirror."
    )]
    Unreachable { endpoint: String, reason: String },

    #[error(
        "{endpoint} has no repository `{repo}` at revision `{revision}`.\n\
         Fix: check the spelling of the repository id and the revision (branch, tag or commit)."
    )]
    NotFound { endpoint: String, repo: String, revision: String },

    #[error(
        "{endpoint} refused access to `{repo}` ({status}): the repository is private or gated.\n\
         Fix: accept its terms on the Hub if it is gated, and set HF_TOKEN to an access token \
         that can read it{}.",
        if *.token_sent { " (the token that was sent cannot)" } else { "" }
    )]
    Unauthorized { endpoint: String, repo: String, status: u16, token_sent: bool },

    #[error("{endpoint} answered {status} for {what}.\nFix: try again later; run again to resume.")]
    Server { endpoint: String, status: u16, what: String },

    #[error("`{repo}` has no {what}; Benchtop needs {need}.{hint}")]
    Unsuitable { repo: String, what: String, need: String, hint: String },

    #[error(
        "{file} arrived corrupted ({check} mismatch: expected {expected}, got {actual}); \
         the bad copy was deleted.\nFix: run the command again to download it afresh."
    )]
    Corrupt { file: String, check: &'static str, expected: String, actual: String },

    #[error(
        "the download of {file} broke off after {received} bytes ({reason}).\nFix: run the command again to resume."
    )]
    Interrupted { file: String, received: u64, reason: String },

    /// A bad name, or one already installed.
    #[error(transparent)]
    Name(#[from] ManageError),

    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HubError + use<> {
    let path = path.to_path_buf();
    move |source| HubError::Io { action, path, source }
}

/// How a file's bytes are checked once all of them have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "hex")]
pub enum Check {
    /// LFS files: sha256 of the content.
    Sha256(String),
    /// Small files kept in git: sha1 of `blob {size}\0` + content (the git blob id).
    GitBlob(String),
    /// The listing gave no hash (a mirror that leaves it out): size only.
    SizeOnly,
}

/// One file to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// Path in the repository.
    pub remote: String,
    /// Path in the model folder.
    pub local: String,
    pub size: u64,
    pub check: Check,
}

/// What a download will fetch, resolved to one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub files: Vec<PlannedFile>,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Where a download stands, reported after every chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The file being fetched (its path in the model folder).
    pub file: String,
    /// Bytes of all files that are on disk, including those kept from an earlier attempt.
    pub done: u64,
    pub total: u64,
    /// Bytes taken from an earlier, interrupted attempt instead of fetched again.
    pub resumed: u64,
}

#[derive(Debug, Deserialize)]
struct RepoInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// A client for one Hub endpoint.
#[derive(Debug, Clone)]
pub struct Hub {
    endpoint: Url,
    token: Option<String>,
    client: reqwest::Client,
    retries: u32,
}

impl Hub {
    /// `endpoint`, else `HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`]; `token`, else `HF_TOKEN`.
    pub fn new(endpoint: Option<&str>, token: Option<String>) -> Result<Hub, HubError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = endpoint.map(str::to_string).or_else(|| env("HF_ENDPOINT"));
        let endpoint = endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let mut url = Url::parse(endpoint).map_err(|e| HubError::BadEndpoint(endpoint.into(), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(HubError::BadEndpoint(endpoint.into(), "it must be an http:// or https:// URL".into()));
        }
        url.set_query(None);
        let client = reqwest::Client::builder()
            .user_agent(concat!("benchtop/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| HubError::BadEndpoint(endpoint.into(), e.to_string()))?;
        Ok(Hub { endpoint: url, token: token.or_else(|| env("HF_TOKEN")), client, retries: 3 })
    }

    /// How often a file whose transfer broke off is resumed before giving up (default 3, after
    /// 1, 2 and 4 seconds).
    pub fn with_retries(mut self, retries: u32) -> Hub {
        self.retries = retries;
        self
    }

    pub fn endpoint(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_string()
    }

    /// `endpoint` + path segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.extend(segment.split('/'));
            }
        }
        url
    }

    fn get(&self, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.get(url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The error for a response that is not a success, worded for the person downloading.
    fn status_error(&self, status: StatusCode, repo: &str, revision: &str, what: &str) -> HubError {
        let endpoint = self.endpoint();
        match status {
            StatusCode::NOT_FOUND => HubError::NotFound { endpoint, repo: repo.into(), revision: revision.into() },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => HubError::Unauthorized {
                endpoint,
                repo: repo.into(),
                status: status.as_u16(),
                token_sent: self.token.is_some(),
            },
            _ => HubError::Server { endpoint, status: status.as_u16(), what: what.into() },
        }
    }

    fn unreachable(&self, err: &reqwest::Error) -> HubError {
        // reqwest's message names the URL, which holds no secret; the token is only in a header.
        HubError::Unreachable { endpoint: self.endpoint(), reason: crate::util::error_chain(err) }
    }

    /// Resolve `revision` to a commit and choose the files to fetch. `file` picks the ONNX graph
    /// (a path in the repository) when the repository has several.
    pub async fn plan(&self, repo: &str, revision: &str, file: Option<&str>) -> Result<Plan, HubError> {
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() != 2
            || parts.iter().any(|p| p.is_empty() || p.starts_with('.') || p.contains(char::is_whitespace))
        {
            return Err(HubError::BadRepo(repo.into()));
        }
        let mut url = self.url(&["api", "models", repo, "revision"]);
        if let Ok(mut path) = url.path_segments_mut() {
            path.push(revision);
        }
        url.set_query(Some("blobs=true"));
        let response = self.get(url).send().await.map_err(|e| self.unreachable(&e))?;
        if !response.status().is_success() {
            return Err(self.status_error(response.status(), repo, revision, "the repository listing"));
        }
        let info: RepoInfo = response.json().await.map_err(|e| HubError::Server {
            endpoint: self.endpoint(),
            status: 200,
            what: format!("the repository listing (not the expected JSON: {})", crate::util::error_chain(&e)),
        })?;
        let commit = info
            .sha
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or_else(|| revision.to_string());
        let files = choose_files(&self.endpoint(), repo, &info.siblings, file)?;
        tracing::debug!(repo, revision, commit, files = files.len(), "download planned");
        Ok(Plan { repo: repo.into(), revision: revision.into(), commit, files })
    }

    /// Fetch `plan` into `models_dir/name`, resuming what an earlier attempt left behind, and
    /// return the new folder. `progress` is called as bytes arrive.
    pub async fn download(
        &self,
        plan: &Plan,
        models_dir: &Path,
        name: &str,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<PathBuf, HubError> {
        check_name(name)?;
        let dest = models_dir.join(name);
        if dest.exists() {
            return Err(ManageError::Exists { name: name.into(), dir: dest }.into());
        }
        let staging = models_dir.join(format!(".download-{name}"));
        tokio::fs::create_dir_all(&staging).await.map_err(io("create", &staging))?;
        // A staging folder from another commit (or another repository) is started afresh.
        let plan_path = staging.join("plan.json");
        let previous: Option<Plan> =
            tokio::fs::read(&plan_path).await.ok().and_then(|b| serde_json::from_slice(&b).ok());
        if previous.as_ref().is_some_and(|p| p.commit != plan.commit || p.repo != plan.repo) {
            tracing::info!(name, "an earlier partial download is of another commit; starting over");
            tokio::fs::remove_dir_all(&staging).await.map_err(io("clear", &staging))?;
            tokio::fs::create_dir_all(&staging).await.map_err(io("create", &staging))?;
        }
        let plan_json = serde_json::to_vec_pretty(plan).unwrap_or_default();
        tokio::fs::write(&plan_path, plan_json).await.map_err(io("write", &plan_path))?;

        let total = plan.total_bytes();
        let mut state = Progress { file: String::new(), done: 0, total, resumed: 0 };
        for file in &plan.files {
            state.file = file.local.clone();
            let start = (state.done, state.resumed);
            let mut attempt = 0;
            loop {
                match self.fetch(plan, file, &staging, &mut state, progress).await {
                    Ok(()) => break,
                    Err(err @ (HubError::Interrupted { .. } | HubError::Unreachable { .. }))
                        if attempt < self.retries =>
                    {
                        attempt += 1;
                        let pause = Duration::from_secs(1 << (attempt - 1));
                        tracing::warn!(file = %file.local, attempt, "{err}; resuming in {}s", pause.as_secs());
                        tokio::time::sleep(pause).await;
                        // The retry counts what is on disk afresh.
                        (state.done, state.resumed) = start;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        tokio::fs::remove_file(&plan_path).await.map_err(io("remove", &plan_path))?;
        if dest.exists() {
            return Err(ManageError::Exists { name: name.into(), dir: dest }.into());
        }
        tokio::fs::rename(&staging, &dest).await.map_err(io("move into place", &dest))?;
        tracing::info!(repo = %plan.repo, commit = %plan.commit, dir = %dest.display(), "model downloaded");
        Ok(dest)
    }

    /// One file: skip it if a verified copy is there, resume its `.part`, or fetch it whole.
    async fn fetch(
        &self,
        plan: &Plan,
        file: &PlannedFile,
        staging: &Path,
        state: &mut Progress,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<(), HubError> {
        let done_path = staging.join(&file.local);
        let part_path = staging.join(format!("{}.part", file.local));
        if let Some(parent) = done_path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io("create", parent))?;
        }
        if tokio::fs::metadata(&done_path).await.is_ok_and(|m| m.len() == file.size) {
            state.done += file.size;
            state.resumed += file.size;
            progress(state);
            return Ok(());
        }
        let mut have = tokio::fs::metadata(&part_path).await.map(|m| m.len()).unwrap_or(0);
        if have > file.size {
            have = 0;
        }
        let url = self.url(&[&plan.repo, "resolve", &plan.commit, &file.remote]);
        let mut request = self.get(url);
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => true,
            StatusCode::OK => false,
            // The part is complete or the server forgot the file's size: start afresh next time.
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let _ = tokio::fs::remove_file(&part_path).await;
                return Err(HubError::Interrupted {
                    file: file.local.clone(),
                    received: have,
                    reason: "the server refused to resume it".into(),
                });
            }
            _ => return Err(self.status_error(status, &plan.repo, &plan.revision, &file.remote)),
        };
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&part_path)
            .await
            .map_err(io("write", &part_path))?;
        let mut received = if append { have } else { 0 };
        if append {
            state.resumed += have;
        }
        let base = state.done;
        state.done = base + received;
        progress(state);
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = out.flush().await;
                    return Err(HubError::Interrupted {
                        file: file.local.clone(),
                        received,
                        reason: crate::util::error_chain(&e),
                    });
                }
            };
            if received + chunk.len() as u64 > file.size {
                drop(out);
                let _ = tokio::fs::remove_file(&part_path).await;
                return Err(HubError::Corrupt {
                    file: file.local.clone(),
                    check: "size",
                    expected: format!("{} bytes", file.size),
                    actual: format!("more than {} bytes", file.size),
                });
            }
            out.write_all(&chunk).await.map_err(io("write", &part_path))?;
            received += chunk.len() as u64;
            state.done = base + received;
            progress(state);
        }
        out.flush().await.map_err(io("write", &part_path))?;
        drop(out);
        if received != file.size {
            return Err(HubError::Interrupted {
                file: file.local.clone(),
                received,
                reason: format!("expected {} bytes", file.size),
            });
        }
        // Hash the whole file from disk: a resumed file's first part came from an earlier run.
        let part = part_path.clone();
        let check = file.check.clone();
        let size = file.size;
        let verdict = tokio::task::spawn_blocking(move || verify(&part, size, &check))
            .await
            .map_err(|e| HubError::Io { action: "verify", path: part_path.clone(), source: std::io::Error::other(e) })?
            .map_err(io("verify", &part_path))?;
        if let Some((check, expected, actual)) = verdict {
            let _ = tokio::fs::remove_file(&part_path).await;
            return Err(HubError::Corrupt { file: file.local.clone(), check, expected, actual });
        }
        tokio::fs::rename(&part_path, &done_path).await.map_err(io("move into place", &done_path))?;
        Ok(())
    }
}

/// `None` if the file matches its check, else (check name, expected, actual).
fn verify(path: &Path, size: u64, check: &Check) -> std::io::Result<Option<(&'static str, String, String)>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    sha1.update(format!("blob {size}\0").as_bytes());
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        match check {
            Check::Sha256(_) => sha256.update(&buf[..n]),
            Check::GitBlob(_) => sha1.update(&buf[..n]),
            Check::SizeOnly => {}
        }
    }
    let (name, expected, actual) = match check {
        Check::Sha256(expected) => ("sha256", expected, crate::util::hex(&sha256.finalize())),
        Check::GitBlob(expected) => ("git blob sha1", expected, crate::util::hex(&sha1.finalize())),
        Check::SizeOnly => return Ok(None),
    };
    Ok((!expected.eq_ignore_ascii_case(&actual)).then(|| (name, expected.clone(), actual)))
}

/// The graph, its external data, and the configs a Benchtop model folder needs.
fn choose_files(
    endpoint: &str,
    repo: &str,
    siblings: &[Sibling],
    wanted: Option<&str>,
) -> Result<Vec<PlannedFile>, HubError> {
    let find = |path: &str| siblings.iter().find(|s| s.rfilename == path);
    let graphs: Vec<&str> = siblings.iter().map(|s| s.rfilename.as_str()).filter(|p| p.ends_with(".onnx")).collect();
    let graph = match wanted {
        Some(path) => find(path).ok_or_else(|| HubError::Unsuitable {
            repo: repo.into(),
            what: format!("file `{path}`"),
            need: "an existing .onnx file".into(),
            hint: list_hint(&graphs),
        })?,
        None => find("model.onnx").or_else(|| find("onnx/model.onnx")).ok_or_else(|| HubError::Unsuitable {
            repo: repo.into(),
            what: "`model.onnx` (at the root or in `onnx/`)".into(),
            need: "an ONNX export (Hugging Face Optimum writes `model.onnx`)".into(),
            hint: list_hint(&graphs),
        })?,
    };
    if !graph.rfilename.ends_with(".onnx") {
        return Err(HubError::Unsuitable {
            repo: repo.into(),
            what: format!("ONNX graph at `{}`", graph.rfilename),
            need: "a file ending in .onnx".into(),
            hint: list_hint(&graphs),
        });
    }
    let (graph_dir, graph_name) = match graph.rfilename.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), graph.rfilename.as_str()),
    };
    let mut files = vec![planned(endpoint, graph, "model.onnx")?];
    // External data sits next to the graph and is named after it (`model.onnx_data`,
    // `model.onnx.data`, `model.onnx_data_1`…); the graph refers to it by that name.
    for sibling in siblings {
        let Some(name) = sibling.rfilename.strip_prefix(graph_dir.as_str()) else { continue };
        if !name.contains('/')
            && name != graph_name
            && name.strip_prefix(graph_name).is_some_and(|rest| rest.starts_with("_data") || rest == ".data")
        {
            files.push(planned(endpoint, sibling, name)?);
        }
    }
    for path in REQUIRED {
        let sibling = find(path).ok_or_else(|| HubError::Unsuitable {
            repo: repo.into(),
            what: format!("`{path}`"),
            need: "the files Hugging Face exports next to the model: config.json and tokenizer.json".into(),
            hint: String::new(),
        })?;
        files.push(planned(endpoint, sibling, path)?);
    }
    for path in OPTIONAL {
        if let Some(sibling) = find(path) {
            files.push(planned(endpoint, sibling, path)?);
        }
    }
    Ok(files)
}

fn planned(endpoint: &str, sibling: &Sibling, local: &str) -> Result<PlannedFile, HubError> {
    let (size, check) = match (&sibling.lfs, &sibling.blob_id, sibling.size) {
        (Some(lfs), _, _) => (lfs.size, Check::Sha256(lfs.sha256.clone())),
        (None, Some(blob), Some(size)) => (size, Check::GitBlob(blob.clone())),
        (None, None, Some(size)) => (size, Check::SizeOnly),
        (None, _, None) => {
            return Err(HubError::Server {
                endpoint: endpoint.into(),
                status: 200,
                what: format!("`{}` (the listing gives no size; ask with ?blobs=true)", sibling.rfilename),
            })
        }
    };
    Ok(PlannedFile { remote: sibling.rfilename.clone(), local: local.into(), size, check })
}

fn list_hint(graphs: &[&str]) -> String {
    if graphs.is_empty() {
        " It has no .onnx files at all: export one with `optimum-cli export onnx`.".into()
    } else {
        format!(" Its .onnx files: {}. Pick one with --file.", graphs.join(", "))
    }
}
