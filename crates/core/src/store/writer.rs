//! The one writer: a thread that owns the write connection and commits queued writes in batches.
//!
//! Callers queue a job (a closure over the connection) with a completion. The thread takes every
//! job waiting (up to [`MAX_BATCH`]), runs each inside its own savepoint within one transaction —
//! so a failing job is rolled back alone and its batch-mates still commit — commits once, and only
//! then calls each completion. A job alone in its transaction needs no savepoint: if it fails, the
//! transaction is rolled back instead of committed. An acknowledged write is therefore
//! committed: a crash after it loses nothing. The queue is bounded; a full queue is
//! back-pressure ([`StoreError::Busy`]).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Jobs committed in one transaction at most.
pub const MAX_BATCH: usize = 512;
/// Jobs waiting at most before callers are told the log is busy.
pub const QUEUE_CAPACITY: usize = 16_384;

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A queued write: run it inside the batch's transaction — in a savepoint of its own when
/// `isolate`, so that its failure undoes only its own writes — returning whether it succeeded and
/// what to do once the commit is known; or abort it unrun when the transaction cannot even start.
trait Job: Send {
    fn run(self: Box<Self>, conn: &Connection, isolate: bool) -> (bool, Completion);
    fn abort(self: Box<Self>, err: StoreError);
}

struct TypedJob<F, D> {
    job: F,
    done: D,
}

impl<T, F, D> Job for TypedJob<F, D>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    D: FnOnce(Result<T, StoreError>) + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, isolate: bool) -> (bool, Completion) {
        let TypedJob { job, done } = *self;
        let outcome = if isolate { in_savepoint(conn, job) } else { job(conn) };
        (outcome.is_ok(), Box::new(move |commit: Result<(), StoreError>| done(commit.and(outcome))))
    }

    fn abort(self: Box<Self>, err: StoreError) {
        (self.done)(Err(err))
    }
}

pub(crate) struct Writer {
    sender: Option<SyncSender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection) -> std::io::Result<Writer> {
        let (sender, receiver) = sync_channel::<Box<dyn Job>>(QUEUE_CAPACITY);
        let thread =
            std::thread::Builder::new().name("benchtop-store-writer".into()).spawn(move || run(conn, receiver))?;
        Ok(Writer { sender: Some(sender), thread: Some(thread) })
    }

    /// Queue `job`; `done` gets its value once the transaction holding it has committed (or the
    /// error that stopped it). Fails at once with `Busy` when the queue is full.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let sender = self.sender.as_ref().ok_or(StoreError::WriterGone)?;
        sender.try_send(Box::new(TypedJob { job, done })).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Busy(QUEUE_CAPACITY),
            TrySendError::Disconnected(_) => StoreError::WriterGone,
        })
    }

    /// Queue `job` and wait for its commit.
    pub(crate) fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = sync_channel(1);
        let done = move |r| {
            let _ = tx.send(r);
        };
        // Waiting callers queue even when the queue is full, rather than fail.
        let sender = self.sender.as_ref().ok_or(StoreError::WriterGone)?;
        sender.send(Box::new(TypedJob { job, done })).map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }
}

impl Drop for Writer {
    /// Closing the queue lets the thread commit what is queued and stop; wait for it.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn in_savepoint<T>(conn: &Connection, job: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    // Cached statements: under API traffic this runs hundreds of times a second.
    let sql = |sql: &str| conn.prepare_cached(sql).and_then(|mut stmt| stmt.execute([]));
    sql("SAVEPOINT job")?;
    match job(conn) {
        Ok(value) => {
            sql("RELEASE job")?;
            Ok(value)
        }
        Err(err) => {
            sql("ROLLBACK TO job")?;
            sql("RELEASE job")?;
            Err(err)
        }
    }
}

fn run(mut conn: Connection, receiver: Receiver<Box<dyn Job>>) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let err = StoreError::Sqlite(e);
                jobs.into_iter().for_each(|job| job.abort(err.clone()));
                continue;
            }
        };
        let isolate = jobs.len() > 1;
        let (mut all_ok, mut completions) = (true, Vec::with_capacity(jobs.len()));
        for job in jobs {
            let (ok, completion) = job.run(&tx, isolate);
            all_ok &= ok;
            completions.push(completion);
        }
        // A lone job that failed has nothing to keep: undo its writes rather than commit them.
        let commit = if all_ok || isolate { tx.commit() } else { tx.rollback() }.map_err(StoreError::Sqlite);
        for completion in completions {
            completion(commit.clone());
        }
    }
}
