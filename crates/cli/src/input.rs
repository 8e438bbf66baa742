//! Where texts come from: arguments, a file (one text per line), or standard input. Files and
//! stdin are read in chunks, so a large file never has to fit in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;

/// The largest single text accepted (longer texts are refused, not silently cut: the model
/// truncates by tokens, but a multi-megabyte "line" is almost always the wrong file).
pub const MAX_TEXT_BYTES: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Texts to process (or use --file, or pipe text on stdin, one per line)
    #[arg(value_name = "TEXT", conflicts_with = "file")]
    pub texts: Vec<String>,
    /// Read texts from a file, one per line (`-` for stdin); blank lines are skipped
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no input: give texts as arguments, a file with --file FILE, or pipe lines on stdin")]
    NoInput,
    #[error("no prompt: give it as an argument, or pipe it on stdin")]
    NoPrompt,
    #[error("cannot open {}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("reading line {line} failed")]
    Read { line: usize, source: std::io::Error },
    #[error("cannot import {}", path.display())]
    BadFile { path: PathBuf },
    #[error("line {line} is not valid UTF-8 (byte {offset}); convert the file to UTF-8 and try again")]
    NotUtf8 { line: usize, offset: usize },
    #[error("line {line} is longer than {} MiB; split it, or check that this is the file you meant", MAX_TEXT_BYTES >> 20)]
    TooLarge { line: usize },
    #[error("give one kind of feedback per call (--correct and --label together are one correction)")]
    OneFeedback,
    #[error("{rows} rows are bad (listed above); nothing was imported because of --strict")]
    Rejected { rows: usize },
}

/// One text and, when it came from a file or stdin, its 1-based line number.
#[derive(Debug, Clone)]
pub struct Item {
    pub text: String,
    pub line: Option<usize>,
}

pub enum Source {
    Args(std::vec::IntoIter<String>),
    Lines { reader: Box<dyn BufRead>, line: usize, bytes_read: u64, total_bytes: Option<u64> },
}

impl Source {
    pub fn open(args: &InputArgs) -> Result<Source, InputError> {
        let lines =
            |reader: Box<dyn BufRead>, total_bytes| Source::Lines { reader, line: 0, bytes_read: 0, total_bytes };
        match &args.file {
            Some(path) if path.as_os_str() == "-" => Ok(lines(Box::new(std::io::stdin().lock()), None)),
            Some(path) => {
                let file = File::open(path).map_err(|source| InputError::Open { path: path.clone(), source })?;
                let size = file.metadata().ok().map(|m| m.len());
                Ok(lines(Box::new(BufReader::with_capacity(1 << 16, file)), size))
            }
            None if !args.texts.is_empty() => Ok(Source::Args(args.texts.clone().into_iter())),
            None if !std::io::stdin().is_terminal() => Ok(lines(Box::new(std::io::stdin().lock()), None)),
            None => Err(InputError::NoInput),
        }
    }

    /// Size in bytes of the input file, when known (for a progress bar).
    pub fn total_bytes(&self) -> Option<u64> {
        match self {
            Source::Lines { total_bytes, .. } => *total_bytes,
            Source::Args(_) => None,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        match self {
            Source::Lines { bytes_read, .. } => *bytes_read,
            Source::Args(_) => 0,
        }
    }

    /// Up to `n` more texts; empty when the input is exhausted.
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<Item>, InputError> {
        match self {
            Source::Args(texts) => Ok(texts.by_ref().take(n).map(|text| Item { text, line: None }).collect()),
            Source::Lines { reader, line, bytes_read, .. } => {
                let mut items = Vec::with_capacity(n);
                let mut buf = Vec::new();
                while items.len() < n {
                    buf.clear();
                    *line += 1;
                    let read = reader
                        .by_ref()
                        .take(MAX_TEXT_BYTES as u64 + 2)
                        .read_until(b'\n', &mut buf)
                        .map_err(|source| InputError::Read { line: *line, source })?;
                    if read == 0 {
                        break;
                    }
                    *bytes_read += read as u64;
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                    }
                    if buf.len() > MAX_TEXT_BYTES {
                        return Err(InputError::TooLarge { line: *line });
                    }
                    if *line == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
                        buf.drain(..3);
                    }
                    let text = std::str::from_utf8(&buf)
                        .map_err(|e| InputError::NotUtf8 { line: *line, offset: e.valid_up_to() })?;
                    if !text.trim().is_empty() {
                        items.push(Item { text: text.to_string(), line: Some(*line) });
                    }
                }
                Ok(items)
            }
        }
    }
}
