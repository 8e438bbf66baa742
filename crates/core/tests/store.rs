//! The feedback log on real SQLite files: writes, feedback semantics, search, hostile strings,
//! schema upgrades, refusal of newer or foreign files, crash safety.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use benchtop_core::store::*;
use rusqlite::Connection;
use serde_json::json;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("data/benchtop.db")).expect("opens");
    (dir, store)
}

fn seed(store: &Store) -> (Id, Id) {
    let target = store
        .upsert_target(NewTarget {
            kind: TargetKind::Local,
            name: "m".into(),
            fingerprint: "sha:1".into(),
            config: json!({}),
        })
        .expect("target");
    let run = store
        .create_run(NewRun { kind: RunKind::Adhoc, name: "r".into(), test_set_id: None, config: json!({}) })
        .expect("run");
    (target, run)
}

fn result(store: &Store, target: Id, run: Id, input: &str, output: &str) -> Id {
    store
        .record_result(NewResult {
            run_id: run,
            target_id: target,
            input: input.into(),
            answer: Answer { output: Some(output.into()), ..Default::default() },
            ..Default::default()
        })
        .expect("records")
}

fn kinds(events: &[FeedbackEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.feedback.kind()).collect()
}

#[test]
fn opens_in_wal_mode_at_the_current_version_and_targets_are_reused() {
    let (_dir, store) = temp_store();
    let (version, mode): (u32, String) = store
        .read(|c| {
            Ok((
                c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
            ))
        })
        .expect("reads");
    assert_eq!((version, mode.as_str()), (SCHEMA_VERSION, "wal"));
    let (target, _) = seed(&store);
    let again = store
        .upsert_target(NewTarget {
            kind: TargetKind::Local,
            name: "renamed".into(),
            fingerprint: "sha:1".into(),
            config: json!({}),
        })
        .expect("upsert");
    assert_eq!(target, again);
}

#[test]
fn hostile_strings_are_stored_faithfully_and_searchable() {
    let (_dir, store) = temp_store();
    let (target, run) = seed(&store);
    let megabyte = "x".repeat(1 << 20);
    let inputs = [
        "quotes ' \" `backticks` and ; DROP TABLE results; --",
        "nul \0 inside",
        "=HYPERLINK(\"http://evil\",\"click\")",
        "emoji 🎉 CJK 我的账户 RTL שלום",
        megabyte.as_str(),
        "FTS syntax: NEAR OR * \" : -minus",
    ];
    let ids: Vec<Id> = inputs.iter().map(|i| result(&store, target, run, i, &format!("out {}", i.len()))).collect();
    for (id, input) in ids.iter().zip(inputs) {
        let stored: String = store
            .read(|c| Ok(c.query_row("SELECT input FROM results WHERE id = ?1", [id], |r| r.get(0))?))
            .expect("reads");
        assert_eq!(stored, input);
    }
    assert_eq!(store.search("HYPERLINK", 10).expect("search")[0].result_id, ids[2]);
    assert_eq!(store.search("账户", 10).expect("search").len(), 0, "unicode61 tokenises CJK runs as one token");
    assert_eq!(store.search("NEAR OR -minus", 10).expect("operators are literal")[0].result_id, ids[5]);
    assert_eq!(store.search("\"", 10).expect("a lone quote is not a syntax error").len(), 0);
}

#[test]
fn feedback_latest_wins_undo_and_tags() {
    let (_dir, store) = temp_store();
    let (target, run) = seed(&store);
    let a = result(&store, target, run, "q", "answer a");
    let b = result(&store, target, run, "q", "answer b");
    let add = |result_id, feedback| {
        store.add_feedback(NewFeedback {
            result_id,
            feedback,
            source: LabelSource::Human,
            annotator: Some("ann".into()),
        })
    };
    let up = add(a, Feedback::Thumb { up: true }).expect("thumb");
    add(a, Feedback::Thumb { up: false }).expect("thumb");
    let four = add(a, Feedback::Rating { stars: 4 }).expect("rating");
    add(a, Feedback::Tag { tag: "tone".into(), present: true }).expect("tag");
    add(a, Feedback::Tag { tag: "factual".into(), present: true }).expect("tag");
    add(a, Feedback::Preference { other: b, choice: Choice::A, blind: true, shown_left: b }).expect("preference");
    add(a, Feedback::Undo { feedback_id: four }).expect("undo");

    let current = store.current_feedback(a).expect("current");
    assert_eq!(kinds(&current), ["thumb", "tag", "tag", "preference"]);
    assert_eq!(current[0].feedback, Feedback::Thumb { up: false }, "latest thumb wins");
    assert!(current[0].id > up);
    assert_eq!(store.feedback_history(a).expect("history").len(), 7, "nothing is ever deleted");
    assert_eq!(kinds(&store.current_feedback(b).expect("current")), ["preference"], "B sees the preference too");

    for (feedback, needle) in [
        (Feedback::Rating { stars: 6 }, "1 to 5"),
        (Feedback::Preference { other: a, choice: Choice::Tie, blind: false, shown_left: a }, "two different results"),
        (Feedback::Preference { other: b, choice: Choice::Tie, blind: false, shown_left: 999 }, "shown_left"),
        (Feedback::Correction { text: None, label: None }, "text or a label"),
        (Feedback::Tag { tag: " ".into(), present: true }, "empty"),
    ] {
        let err = add(a, feedback).expect_err("invalid feedback");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let undo_of_undo = store.feedback_history(a).expect("history").last().expect("undo").id;
    assert!(add(a, Feedback::Undo { feedback_id: undo_of_undo })
        .expect_err("undo an undo")
        .to_string()
        .contains("cannot itself be undone"));
    assert!(
        matches!(add(b, Feedback::Undo { feedback_id: up }), Err(StoreError::Invalid { .. })),
        "undo on another result"
    );
    assert!(matches!(add(12345, Feedback::Thumb { up: true }), Err(StoreError::NotFound { what: "result", .. })));
}

#[test]
fn cases_import_idempotently_and_keep_order() {
    let (_dir, store) = temp_store();
    let set = store.create_test_set("triage", Some("support messages")).expect("set");
    let case = |text: &str, label: &str| NewCase {
        vars: json!({ "text": text }).as_object().expect("object").clone(),
        expected: Some(label.into()),
        tags: vec!["smoke".into()],
    };
    let cases =
        vec![case("charged twice", "billing"), case("app crashes", "technical"), case("charged twice", "billing")];
    assert_eq!(store.add_cases(set, cases.clone()).expect("adds"), AddCasesReport { inserted: 2, duplicates: 1 });
    assert_eq!(store.add_cases(set, cases).expect("re-adds"), AddCasesReport { inserted: 0, duplicates: 3 });
    let stored = store.cases(set).expect("cases");
    assert_eq!(
        stored.iter().map(|c| (c.position, c.expected.clone().expect("expected"))).collect::<Vec<_>>(),
        [(0, "billing".to_string()), (1, "technical".to_string())]
    );
    store.update_case(stored[1].id, case("app crashes on start", "technical")).expect("update");
    store.delete_case(stored[0].id).expect("delete");
    assert_eq!(store.cases(set).expect("cases").len(), 1);
    assert!(store.create_test_set("triage", None).expect_err("duplicate name").to_string().contains("exists already"));
    assert_eq!(store.test_sets().expect("sets")[0].cases, 1);
    store.delete_test_set(set).expect("delete set");
    assert!(store.test_sets().expect("sets").is_empty());
}

#[test]
fn a_failing_write_does_not_take_its_batch_mates_down() {
    let (_dir, store) = temp_store();
    let (target, run) = seed(&store);
    let (tx, rx) = mpsc::channel();
    for i in 0..200 {
        let tx = tx.clone();
        let run_id = if i % 10 == 3 { 999_999 } else { run };
        let r = NewResult { run_id, target_id: target, input: format!("{i}"), ..Default::default() };
        store.submit_result(r, move |outcome| tx.send((i, outcome.is_ok())).expect("send")).expect("queued");
    }
    drop(tx);
    let outcomes: Vec<(i32, bool)> = rx.iter().collect();
    assert_eq!(outcomes.len(), 200);
    assert!(outcomes.iter().all(|(i, ok)| *ok == (i % 10 != 3)));
    let count: i64 = store.read(|c| Ok(c.query_row("SELECT count(*) FROM results", [], |r| r.get(0))?)).expect("count");
    assert_eq!(count, 180);
}

#[test]
fn a_lone_failing_write_leaves_nothing_behind() {
    // Alone in its transaction a job runs without a savepoint; when it fails after writing, the
    // transaction is rolled back, not committed, and the writer goes on.
    let (_dir, store) = temp_store();
    let (target, run) = seed(&store);
    let count = || -> i64 {
        store.read(|c| Ok(c.query_row("SELECT count(*) FROM results", [], |r| r.get(0))?)).expect("count")
    };
    let (tx, rx) = mpsc::channel();
    store
        .submit(
            move |conn| -> Result<(), StoreError> {
                conn.execute(
                    "INSERT INTO results (run_id, target_id, input, input_hash, created_at) VALUES (?1, ?2, 'half', 'h', 0)",
                    rusqlite::params![run, target],
                )?;
                Err(StoreError::Invalid { what: "write", reason: "failed after writing".into() })
            },
            move |outcome| tx.send(outcome.map_err(|e| e.to_string())).expect("send"),
        )
        .expect("queued");
    let outcome = rx.recv_timeout(Duration::from_secs(10)).expect("completed");
    assert_eq!(outcome, Err("invalid write: failed after writing".to_string()));
    assert_eq!(count(), 0, "the failed job's row was rolled back");
    result(&store, target, run, "after", "x");
    assert_eq!(count(), 1);
}

#[test]
fn reads_do_not_wait_for_a_long_write() {
    let (_dir, store) = temp_store();
    let (target, run) = seed(&store);
    result(&store, target, run, "before", "x");
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    // A write that keeps its transaction open until told to finish.
    store
        .submit(
            move |conn| {
                conn.execute("UPDATE results SET output = 'changing'", [])?;
                started_tx.send(()).ok();
                hold_rx.recv_timeout(Duration::from_secs(30)).ok();
                Ok(())
            },
            |_| {},
        )
        .expect("queued");
    started_rx.recv_timeout(Duration::from_secs(10)).expect("write started");
    let (read_tx, read_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let out: String =
                store.read(|c| Ok(c.query_row("SELECT output FROM results", [], |r| r.get(0))?)).expect("reads");
            read_tx.send(out).expect("send");
        });
        let seen =
            read_rx.recv_timeout(Duration::from_secs(5)).expect("the read finished while the write was still open");
        assert_eq!(seen, "x", "readers see the last committed state");
        hold_tx.send(()).expect("release");
    });
}

fn schema(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
}

#[test]
fn an_old_database_upgrades_to_the_fresh_schema_with_a_backup_and_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.db");
    {
        let mut conn = Connection::open(&old).expect("open");
        migrate::migrate_to(&mut conn, &old, 1).expect("version 1");
        conn.execute(
            "INSERT INTO targets (kind, name, fingerprint, config, created_at) VALUES ('local', 'm', 'f', '{}', 1)",
            [],
        )
        .expect("seed");
    }
    let store = Store::open(&old).expect("upgrades");
    let target: String = store.read(|c| Ok(c.query_row("SELECT name FROM targets", [], |r| r.get(0))?)).expect("kept");
    assert_eq!(target, "m");
    drop(store);
    let backup = dir.path().join("old.db.v1.bak");
    assert!(backup.is_file(), "a copy from before the upgrade");
    assert_eq!(
        Connection::open(&backup)
            .expect("open")
            .pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))
            .expect("v"),
        1
    );
    let fresh = dir.path().join("fresh.db");
    drop(Store::open(&fresh).expect("fresh"));
    assert_eq!(schema(&old), schema(&fresh));
}

#[test]
fn newer_and_foreign_databases_are_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let newer = dir.path().join("newer.db");
    Connection::open(&newer).expect("open").pragma_update(None, "user_version", SCHEMA_VERSION + 7).expect("set");
    let before = std::fs::read(&newer).expect("read");
    let err = Store::open(&newer).err().expect("refused");
    assert!(matches!(err, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 7), "{err}");
    assert!(err.to_string().contains("left untouched"));
    assert_eq!(std::fs::read(&newer).expect("read"), before);

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');")
        .expect("create");
    let err = Store::open(&foreign).err().expect("refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    let kept: String =
        Connection::open(&foreign).expect("open").query_row("SELECT x FROM notes", [], |r| r.get(0)).expect("kept");
    assert_eq!(kept, "mine");
}

/// The child side of the crash test, not a test of its own (hence ignored): this same test
/// binary, run with `--ignored` and `BENCHTOP_CRASH_DB` set, writes results as fast as it can and
/// prints each id once the write is acknowledged, until it is killed.
#[test]
#[ignore = "the child process of kill_9_mid_stream_loses_nothing_acknowledged"]
fn crash_writer_child() {
    let path = std::env::var_os("BENCHTOP_CRASH_DB").expect("run by kill_9_mid_stream_loses_nothing_acknowledged");
    let store = Store::open(Path::new(&path)).expect("opens");
    let (target, run) = seed(&store);
    let (tx, rx) = mpsc::channel::<Id>();
    let printer = std::thread::spawn(move || {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for id in rx {
            writeln!(out, "{id}").expect("print");
            out.flush().expect("flush");
        }
    });
    for i in 0.. {
        let r = NewResult {
            run_id: run,
            target_id: target,
            input: format!("input {i} ✓"),
            answer: Answer { output: Some(format!("output {i}")), ..Default::default() },
            ..Default::default()
        };
        let acked = tx.clone();
        if store
            .submit_result(r.clone(), move |outcome| acked.send(outcome.expect("committed")).expect("send"))
            .is_err()
        {
            tx.send(store.record_result(r).expect("committed")).expect("send");
        }
    }
    drop(printer);
}

#[test]
fn kill_9_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "crash_writer_child", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("BENCHTOP_CRASH_DB", &db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut acknowledged = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while acknowledged.len() < 3000 {
        let line = lines.next().expect("the writer keeps writing").expect("line");
        if let Ok(id) = line.trim().parse::<i64>() {
            acknowledged.push(id); // other lines are the test harness talking
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // Ids printed after the kill decision but before the signal landed were acknowledged too.
    acknowledged.extend(lines.map_while(|l| l.ok()).filter_map(|l| l.parse::<i64>().ok()));

    let conn = Connection::open(&db).expect("reopen");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    let stored: std::collections::HashSet<i64> = {
        let mut stmt = conn.prepare("SELECT id FROM results").expect("prepare");
        let ids = stmt.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("id")).collect();
        ids
    };
    let lost: Vec<&i64> = acknowledged.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    drop(conn);
    // And the log opens normally afterwards.
    let store = Store::open(&db).expect("reopens after a crash");
    assert!(store.search("input", 1).expect("search").len() == 1);
}
