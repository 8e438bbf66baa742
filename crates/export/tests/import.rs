//! Importers: good rows in, bad rows reported by line with a reason, never a panic.

use std::io::Cursor;

use benchtop_export::import::{import_csv, import_file, import_jsonl, ColumnMap, ImportFormat};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn csv_reports_bad_rows_by_line_and_keeps_the_good_ones() {
    let data = b"\xEF\xBB\xBFtext,label,tags\n\
                 charged twice,billing,smoke;money\n\
                 too,many,fields,here\n\
                 \"multi\nline\",technical,\n\
                 bad \xff utf8,billing,\n\
                 ,account,\n\
                 \"quote \"\"inside\"\"\",sales,a|b\n";
    let report = import_csv(Cursor::new(&data[..]), &ColumnMap::default()).expect("reads");
    assert_eq!(report.cases.len(), 3);
    assert_eq!(report.cases[0].vars, json!({ "text": "charged twice" }).as_object().expect("obj").clone());
    assert_eq!(report.cases[0].expected.as_deref(), Some("billing"), "`label` is the default expected column");
    assert_eq!(report.cases[0].tags, ["smoke", "money"]);
    assert_eq!(report.cases[1].vars["text"], "multi\nline");
    assert_eq!(report.cases[2].vars["text"], "quote \"inside\"");
    let lines: Vec<(u64, &str)> = report.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0].0, 3);
    assert!(lines[0].1.contains("4 fields where the header has 3"));
    assert_eq!(lines[1].0, 6);
    assert!(lines[1].1.contains("not valid UTF-8"));
    assert_eq!(lines[2].0, 7);
    assert!(lines[2].1.contains("no input values"));
}

#[test]
fn csv_mapping_and_missing_columns() {
    let data = "question,context,answer,notes\nWhat?,ctx,42,ignore me\n";
    let map = ColumnMap {
        vars: Some(vec!["question".into(), "context".into()]),
        expected: Some("answer".into()),
        tags: None,
    };
    let report = import_csv(Cursor::new(data), &map).expect("reads");
    assert_eq!(
        report.cases[0].vars,
        json!({ "question": "What?", "context": "ctx" }).as_object().expect("obj").clone()
    );
    assert_eq!(report.cases[0].expected.as_deref(), Some("42"));
    let err = import_csv(Cursor::new(data), &ColumnMap { expected: Some("gold".into()), ..Default::default() })
        .expect_err("unknown column");
    assert!(
        err.to_string().contains("no column `gold`") && err.to_string().contains("question, context, answer, notes")
    );
    assert!(import_csv(Cursor::new(""), &ColumnMap::default()).is_err(), "no header");
}

#[test]
fn jsonl_reports_bad_lines() {
    let data = b"{\"text\": \"hello\", \"expected\": \"greeting\", \"tags\": [\"a\", \"b\"]}\n\
                 \n\
                 not json\n\
                 [1, 2]\n\
                 {\"vars\": {\"q\": \"x\", \"n\": 3}, \"expected\": 7}\n\
                 {\"text\": \"bad \xff\"}\n\
                 {\"vars\": 5}\n";
    let report = import_jsonl(Cursor::new(&data[..]), &ColumnMap::default()).expect("reads");
    assert_eq!(report.cases.len(), 2);
    assert_eq!(report.cases[0].tags, ["a", "b"]);
    assert_eq!(report.cases[1].vars, json!({ "q": "x", "n": 3 }).as_object().expect("obj").clone());
    assert_eq!(report.cases[1].expected.as_deref(), Some("7"));
    let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 4, 6, 7]);
    assert!(report.rejected[0].reason.contains("not valid JSON"));
    assert!(report.rejected[1].reason.contains("JSON object"));
}

#[test]
fn parquet_imports_and_corrupt_files_are_errors() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cases.parquet");
    let batch = RecordBatch::try_from_iter([
        ("text", Arc::new(StringArray::from(vec![Some("charged twice"), None, Some("app crashes")])) as ArrayRef),
        ("label", Arc::new(StringArray::from(vec!["billing", "account", "technical"])) as ArrayRef),
        ("priority", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
    ])
    .expect("batch");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).expect("create"), batch.schema(), None)
            .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let map = ColumnMap { vars: Some(vec!["text".into()]), ..Default::default() };
    let report = import_file(&path, None, &map).expect("reads");
    assert_eq!(report.cases.len(), 2);
    assert_eq!(report.cases[1].expected.as_deref(), Some("technical"));
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].line, 2);

    let corrupt = dir.path().join("corrupt.parquet");
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle..middle + 16].fill(0xAB);
    std::fs::write(&corrupt, &bytes[..bytes.len() - 3]).expect("write");
    assert!(import_file(&corrupt, Some(ImportFormat::Parquet), &ColumnMap::default()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn importers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = import_csv(Cursor::new(bytes.clone()), &ColumnMap::default());
        let _ = import_jsonl(Cursor::new(bytes.clone()), &ColumnMap::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, &bytes).expect("write");
        let _ = import_file(&path, None, &ColumnMap::default());
    }

    #[test]
    fn csv_cells_round_trip(cells in proptest::collection::vec("[^\u{0}]{1,40}", 1..20)) {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(["text"]).expect("header");
        for cell in &cells {
            out.write_record([cell]).expect("row");
        }
        let data = out.into_inner().expect("bytes");
        let report = import_csv(Cursor::new(data), &ColumnMap::default()).expect("reads");
        let texts: Vec<String> = report.cases.iter().map(|c| c.vars["text"].as_str().expect("text").to_string()).collect();
        let expected: Vec<String> = cells.iter().filter(|c| !c.trim().is_empty()).cloned().collect();
        prop_assert_eq!(texts, expected);
    }
}
