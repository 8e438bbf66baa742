//! Dynamic batching: concurrent requests to one embedding or classification model are grouped
//! into one `session.run`.
//!
//! Each model has a bounded queue and one worker thread per replica (see `BatchOptions::workers`).
//! A worker takes the oldest request, then every request already waiting, and — while the batch
//! is short of `max_batch` texts — waits up to `max_wait` for more; then runs the whole batch at
//! once and hands each request its rows. While it runs, new requests queue (and another worker
//! collects them), so under load batches fill without any waiting.
//! A full queue is refused at once (the caller answers 429): latency stays bounded instead of
//! growing without limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use benchtop_core::engine::{Classification, Embedding, EngineError, Model, Task};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// How a model's requests are batched.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Texts per batch at most (a single request with more still runs whole).
    pub max_batch: usize,
    /// How long a short batch waits for more requests.
    pub max_wait: Duration,
    /// Texts waiting at most; beyond it requests are refused (429).
    pub queue_texts: usize,
    /// Worker threads per model, each with its own single-threaded copy of the model (1: one
    /// worker on the shared multi-threaded session).
    pub workers: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        BatchOptions { max_batch: 8, max_wait: Duration::from_millis(1), queue_texts: 2048, workers: cores.min(4) }
    }
}

/// What a batch gave one request.
pub enum Rows {
    Embeddings(Vec<Embedding>),
    Classes(Vec<Classification>),
}

type Reply = Result<(Rows, BatchInfo), EngineError>;

/// How the request was run, for the log and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo {
    /// Texts in the batch this request's texts ran in.
    pub batch_texts: usize,
    /// From queueing to the start of the batch.
    pub queued: Duration,
}

struct Job {
    texts: Vec<String>,
    queued_at: Instant,
    reply: oneshot::Sender<Reply>,
}

/// The queue is full.
#[derive(Debug)]
pub struct Overloaded {
    pub waiting: usize,
}

pub struct Batcher {
    sender: Option<SyncSender<Job>>,
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    threads: Vec<JoinHandle<()>>,
}

impl Batcher {
    /// One worker thread per model in `models` (replicas of one model), all taking batches from
    /// one queue.
    pub fn spawn(models: Vec<Arc<Model>>, options: &BatchOptions, metrics: Arc<Metrics>) -> std::io::Result<Batcher> {
        let capacity = options.queue_texts.max(1);
        let (sender, receiver) = sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for (i, model) in models.into_iter().enumerate() {
            let worker = Worker {
                model,
                receiver: Arc::clone(&receiver),
                waiting: Arc::clone(&waiting),
                max_batch: options.max_batch.max(1),
                max_wait: options.max_wait,
                metrics: Arc::clone(&metrics),
            };
            let name = format!("batch-{i}-{}", worker.model.name());
            threads.push(std::thread::Builder::new().name(name).spawn(move || worker.run())?);
        }
        Ok(Batcher { sender: Some(sender), waiting, capacity, threads })
    }

    /// Queue `texts`; the receiver gets their rows once their batch has run.
    pub fn submit(&self, texts: Vec<String>) -> Result<oneshot::Receiver<Reply>, Overloaded> {
        let n = texts.len();
        let before = self.waiting.fetch_add(n, Ordering::SeqCst);
        // One request larger than the whole queue still runs when the queue is empty.
        if before > 0 && before + n > self.capacity {
            self.waiting.fetch_sub(n, Ordering::SeqCst);
            return Err(Overloaded { waiting: before });
        }
        let (reply, rx) = oneshot::channel();
        let job = Job { texts, queued_at: Instant::now(), reply };
        let sent = match &self.sender {
            Some(sender) => sender.try_send(job).map_err(|e| matches!(e, TrySendError::Full(_))),
            None => Err(false),
        };
        if sent.is_err() {
            self.waiting.fetch_sub(n, Ordering::SeqCst);
            return Err(Overloaded { waiting: before });
        }
        Ok(rx)
    }

    /// Texts waiting for a batch.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl Drop for Batcher {
    /// Closing the queue lets the worker finish what is queued, then stop; wait for it.
    fn drop(&mut self) {
        self.sender.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct Worker {
    model: Arc<Model>,
    /// Shared by the replicas' workers: one collects a batch while the others run theirs.
    receiver: Arc<Mutex<Receiver<Job>>>,
    waiting: Arc<AtomicUsize>,
    max_batch: usize,
    max_wait: Duration,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(self) {
        while let Some((jobs, texts)) = self.next_batch() {
            self.run_batch(jobs, texts);
        }
    }

    /// The next batch: the oldest request, then whatever else is waiting, and — while short of
    /// `max_batch` — what arrives within `max_wait`. `None` once the queue is closed and empty.
    fn next_batch(&self) -> Option<(Vec<Job>, usize)> {
        let receiver = self.receiver.lock().unwrap_or_else(|p| p.into_inner());
        let first = receiver.recv().ok()?;
        let mut texts = first.texts.len();
        let mut jobs = vec![first];
        let deadline = Instant::now() + self.max_wait;
        while texts < self.max_batch {
            let next = match receiver.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        None
                    } else {
                        receiver.recv_timeout(left).ok()
                    }
                }
            };
            let Some(job) = next else { break };
            texts += job.texts.len();
            jobs.push(job);
        }
        self.waiting.fetch_sub(texts, Ordering::SeqCst);
        Some((jobs, texts))
    }

    fn run_batch(&self, jobs: Vec<Job>, total: usize) {
        let started = Instant::now();
        self.metrics.observe_batch(self.model.name(), total);
        // Requests whose caller has gone (timed out, disconnected) are not run.
        let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
        let all: Vec<&str> = jobs.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        let answers = self.infer(&all);
        self.metrics.observe_batch_duration(self.model.name(), started.elapsed().as_secs_f64());
        match answers {
            Ok(rows) => {
                let parts = split(rows, &jobs);
                for (job, rows) in jobs.into_iter().zip(parts) {
                    let info = BatchInfo { batch_texts: total, queued: started.duration_since(job.queued_at) };
                    let _ = job.reply.send(Ok((rows, info)));
                }
            }
            // One bad request must not fail its batch-mates: run each alone, so each gets its
            // own answer or its own error.
            Err(_) if jobs.len() > 1 => {
                for job in jobs {
                    let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
                    let info = BatchInfo { batch_texts: texts.len(), queued: started.duration_since(job.queued_at) };
                    let _ = job.reply.send(self.infer(&texts).map(|rows| (rows, info)));
                }
            }
            Err(err) => {
                if let Some(job) = jobs.into_iter().next() {
                    let _ = job.reply.send(Err(err));
                }
            }
        }
    }

    fn infer(&self, texts: &[&str]) -> Result<Rows, EngineError> {
        match self.model.folder().task {
            Task::Embedding { .. } => self.model.embed(texts).map(Rows::Embeddings),
            Task::Classification { .. } => self.model.classify(texts).map(Rows::Classes),
            Task::Generation => Err(EngineError::WrongTask {
                model: self.model.name().to_string(),
                actual: "generation",
                wanted: "embedding or classification",
            }),
        }
    }
}

/// Hand each job its rows, in order.
fn split(rows: Rows, jobs: &[Job]) -> Vec<Rows> {
    fn cut<T>(rows: Vec<T>, jobs: &[Job], wrap: fn(Vec<T>) -> Rows) -> Vec<Rows> {
        let mut rows = rows.into_iter();
        jobs.iter().map(|job| wrap(rows.by_ref().take(job.texts.len()).collect())).collect()
    }
    match rows {
        Rows::Embeddings(rows) => cut(rows, jobs, Rows::Embeddings),
        Rows::Classes(rows) => cut(rows, jobs, Rows::Classes),
    }
}
