//! Parquet: every column, typed, written in record batches of [`BATCH`] rows.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use benchtop_core::store::ExportRow;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{Digest, Hashed, RowSink};
use crate::flat::{cells, Cell, Kind, COLUMNS};
use crate::Result;

const BATCH: usize = 8192;

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    List(ListBuilder<StringBuilder>),
    Time(TimestampMillisecondBuilder),
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        match kind {
            Kind::Int => Builder::Int(Int64Builder::new()),
            Kind::Float => Builder::Float(Float64Builder::new()),
            Kind::Bool => Builder::Bool(BooleanBuilder::new()),
            Kind::Text | Kind::Json => Builder::Text(StringBuilder::new()),
            Kind::List => Builder::List(ListBuilder::new(StringBuilder::new())),
            Kind::TimeMs => Builder::Time(TimestampMillisecondBuilder::new().with_timezone("UTC")),
        }
    }

    fn append(&mut self, cell: Cell) {
        match (self, cell) {
            (Builder::Int(b), Cell::Int(v)) => b.append_option(v),
            (Builder::Time(b), Cell::Int(v)) => b.append_option(v),
            (Builder::Float(b), Cell::Float(v)) => b.append_option(v),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_option(v),
            (Builder::Text(b), Cell::Text(v)) => b.append_option(v),
            (Builder::Text(b), Cell::Json(v)) => b.append_option(v.map(|v| v.to_string())),
            (Builder::Text(b), Cell::Object(v)) => b.append_option(v.and_then(|v| serde_json::to_string(v).ok())),
            (Builder::List(b), Cell::List(items)) => {
                for item in items.iter() {
                    b.values().append_value(item);
                }
                b.append(true);
            }
            // The column table and the cell list are written side by side in flat.rs; a mismatch
            // is a programming error caught by the round-trip tests, stored as null here.
            (Builder::Int(b), _) => b.append_null(),
            (Builder::Time(b), _) => b.append_null(),
            (Builder::Float(b), _) => b.append_null(),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::List(b), _) => b.append(false),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
        }
    }
}

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(name, kind)| {
                let data_type = match kind {
                    Kind::Int => DataType::Int64,
                    Kind::Float => DataType::Float64,
                    Kind::Bool => DataType::Boolean,
                    Kind::Text | Kind::Json => DataType::Utf8,
                    Kind::List => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    Kind::TimeMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                };
                Field::new(*name, data_type, true)
            })
            .collect::<Vec<_>>(),
    ))
}

pub(crate) struct ParquetSink {
    schema: SchemaRef,
    builders: Vec<Builder>,
    pending: usize,
    writer: ArrowWriter<Hashed>,
}

impl ParquetSink {
    pub(crate) fn new(path: &Path) -> Result<ParquetSink> {
        let file = Hashed::open(path)?;
        let schema = schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(64 * 1024))
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?;
        let builders = COLUMNS.iter().map(|(_, kind)| Builder::new(*kind)).collect();
        Ok(ParquetSink { schema, builders, pending: 0, writer })
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.writer.write(&RecordBatch::try_new(Arc::clone(&self.schema), columns)?)?;
        self.pending = 0;
        Ok(())
    }
}

impl RowSink for ParquetSink {
    fn write(&mut self, row: &ExportRow, split: &str) -> Result<bool> {
        for (builder, cell) in self.builders.iter_mut().zip(cells(row, split)) {
            builder.append(cell);
        }
        self.pending += 1;
        if self.pending >= BATCH {
            self.flush()?;
        }
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<Digest> {
        self.flush()?;
        Ok(self.writer.into_inner()?.digest())
    }
}
