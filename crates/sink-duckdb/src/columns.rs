//! A page's rows as columns (an Arrow record batch) for DuckDB's appender: one typed
//! array per column, appended as whole data chunks instead of binding every value of
//! every row through the C API (that binding, with two vectors per row, was a third of
//! the sink thread's time).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use sink_sql::{Cell, Kind, LoadError, Meta, Page, Raw, SqlType, Table};

/// The time zone of every `timestamptz` column: values are UTC instants.
const UTC: &str = "UTC";

/// One value on its way into a column of its type.
enum Val<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch.
    Micros(i64),
    Str(Cow<'a, str>),
}

/// One column's array under construction.
enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

impl Builder {
    fn new(ty: SqlType, rows: usize) -> Self {
        match ty {
            SqlType::BigInt => Builder::Int(Int64Builder::with_capacity(rows)),
            SqlType::Double => Builder::Float(Float64Builder::with_capacity(rows)),
            SqlType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            SqlType::Timestamp => {
                Builder::Time(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC))
            }
            // JSON columns take their text: DuckDB's JSON type is text underneath.
            SqlType::Text | SqlType::Json => {
                Builder::Text(StringBuilder::with_capacity(rows, rows * 16))
            }
        }
    }

    /// The Arrow type of the array.
    fn data_type(ty: SqlType) -> DataType {
        match ty {
            SqlType::BigInt => DataType::Int64,
            SqlType::Double => DataType::Float64,
            SqlType::Boolean => DataType::Boolean,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            SqlType::Text | SqlType::Json => DataType::Utf8,
        }
    }

    /// Appends the value; `None` when it does not belong in this array (a bug in the
    /// conversion above, reported as an error rather than a wrong row).
    fn push(&mut self, v: Val<'_>) -> Option<()> {
        match (self, v) {
            (Builder::Int(b), Val::Null) => b.append_null(),
            (Builder::Float(b), Val::Null) => b.append_null(),
            (Builder::Bool(b), Val::Null) => b.append_null(),
            (Builder::Time(b), Val::Null) => b.append_null(),
            (Builder::Text(b), Val::Null) => b.append_null(),
            (Builder::Int(b), Val::Int(i)) => b.append_value(i),
            (Builder::Float(b), Val::Float(f)) => b.append_value(f),
            (Builder::Bool(b), Val::Bool(x)) => b.append_value(x),
            (Builder::Time(b), Val::Micros(us)) => b.append_value(us),
            (Builder::Text(b), Val::Str(s)) => b.append_value(s),
            _ => return None,
        }
        Some(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Time(mut b) => Arc::new(b.finish()),
            Builder::Text(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The page's rows in the model's columns, then `_load_id`, `_extracted_at` and (for a
/// staging table that keeps the read order) `_row`: the order the appender's columns are
/// named in.
pub(crate) fn record_batch(
    model: &Table,
    page: &Page,
    meta: &Meta,
    with_row: bool,
) -> Result<RecordBatch, LoadError> {
    let rows = page.len();
    let cols = model.columns();
    let mut builders: Vec<Builder> = cols.iter().map(|c| Builder::new(c.ty, rows)).collect();
    let mut slots = Vec::with_capacity(cols.len());
    for i in 0..rows {
        let values = page.row(i);
        page.fill(values, cols.len(), &mut slots);
        for ((c, &s), b) in cols.iter().zip(&slots).zip(&mut builders) {
            let v = match values.get(s as usize) {
                Some(raw) => value(c.ty, page, raw, i)?,
                None => Val::Null,
            };
            b.push(v).ok_or_else(|| {
                LoadError(format!(
                    "record {} of the load: a value of {:?} does not fit its {:?} column {:?}",
                    meta.first_row + i as i64 + 1,
                    values.get(s as usize).map(|r| r.kind),
                    c.ty,
                    c.name
                ))
            })?;
        }
    }
    let mut fields: Vec<Field> = cols
        .iter()
        .map(|c| Field::new(&c.name, Builder::data_type(c.ty), true))
        .collect();
    let mut arrays: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
    let extracted = sink_sql::timestamp_micros(&meta.extracted_at).ok_or_else(|| {
        LoadError(format!(
            "extraction time {:?} is not RFC 3339",
            meta.extracted_at
        ))
    })?;
    fields.push(Field::new(sink_sql::table::LOAD_ID, DataType::Utf8, true));
    arrays.push(Arc::new(arrow::array::StringArray::from_iter_values(
        std::iter::repeat_n(meta.load_id.as_str(), rows),
    )));
    fields.push(Field::new(
        sink_sql::table::EXTRACTED_AT,
        Builder::data_type(SqlType::Timestamp),
        true,
    ));
    arrays.push(Arc::new(
        arrow::array::TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(
            extracted, rows,
        ))
        .with_timezone(UTC),
    ));
    if with_row {
        fields.push(Field::new(sink_sql::table::ROW, DataType::Int64, true));
        arrays.push(Arc::new(arrow::array::Int64Array::from_iter_values(
            (0..rows as i64).map(|i| meta.first_row + i),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| LoadError(format!("cannot assemble a page for DuckDB: {e}")))
}

/// The value for a column of type `ty` (which fits it): the common values straight from
/// the page's bytes, the others through `serde_json` (escaped strings, nested values, a
/// value in a wider column).
fn value<'a>(ty: SqlType, page: &'a Page, raw: &Raw, row: usize) -> Result<Val<'a>, LoadError> {
    let text = |bytes: &'a [u8]| match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Val::Str(Cow::Borrowed(s))),
        Err(_) => Err(LoadError(format!(
            "record {} of the load is not JSON: invalid UTF-8",
            record_number(page, row)
        ))),
    };
    Ok(match (ty, raw.kind) {
        (_, Kind::Null) => Val::Null,
        (SqlType::BigInt, Kind::Int) => Val::Int(raw.num),
        (SqlType::Double, Kind::Int) => Val::Float(raw.num as f64),
        (SqlType::Double, Kind::Uint | Kind::Float) => {
            let text = std::str::from_utf8(page.text(raw)).unwrap_or_default();
            text.parse::<f64>().map_or(Val::Null, Val::Float)
        }
        (SqlType::Text, Kind::Int | Kind::Uint) => text(page.text(raw))?,
        (SqlType::Boolean, Kind::True) => Val::Bool(true),
        (SqlType::Boolean, Kind::False) => Val::Bool(false),
        (SqlType::Timestamp, Kind::Str) if raw.time => Val::Micros(raw.num),
        (SqlType::Text, Kind::Str) => text(page.plain(raw))?,
        _ => {
            let v = page.value(raw, row, false)?;
            cell_value(&Cell::new(ty, &v), record_number(page, row))?
        }
    })
}

/// The record's number in the load, for messages.
fn record_number(page: &Page, row: usize) -> i64 {
    page.first_row() + row as i64 + 1
}

/// A cell as an owned value.
fn cell_value(cell: &Cell<'_>, record: i64) -> Result<Val<'static>, LoadError> {
    Ok(match cell {
        Cell::Null => Val::Null,
        Cell::Int(i) => Val::Int(*i),
        Cell::Float(f) => Val::Float(*f),
        Cell::Bool(b) => Val::Bool(*b),
        Cell::Timestamp(s) => match sink_sql::datetime_micros(s) {
            Some(us) => Val::Micros(us),
            None => {
                return Err(LoadError(format!(
                    "record {record} of the load: {s:?} is not an RFC 3339 date-time, and its column is timestamptz"
                )));
            }
        },
        Cell::Text(s) => Val::Str(Cow::Owned(s.to_string())),
        Cell::Json(s) => Val::Str(Cow::Owned(s.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

    fn read(lines: &str) -> (Table, Page) {
        let mut model = Table::default();
        let mut page = Page::default();
        sink_sql::scan::Scanner::new(false)
            .scan(&mut model, lines.as_bytes().to_vec(), 10, &mut page)
            .unwrap();
        (model, page)
    }

    fn meta() -> Meta {
        Meta {
            load_id: "l".into(),
            extracted_at: "2026-12-02T10:00:00Z".into(),
            first_row: 10,
        }
    }

    fn texts(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let a = batch.column_by_name(name).unwrap().as_string::<i32>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
            .collect()
    }

    #[test]
    fn every_kind_lands_in_its_column_as_the_serde_path_would_write_it() {
        let (model, page) = read(concat!(
            r#"{"i":1,"d":1,"t":"2024-01-01T00:00:00Z","s":"plain","e":"esc\"aped","n":{"a":[1]},"b":true,"u":18446744073709551615,"w":1}"#,
            "\n",
            r#"{"i":2,"d":2.5,"t":null,"s":7,"e":"x","n":[1,2],"b":false,"w":"text"}"#,
            "\n",
            r#"{"i":3}"#,
            "\n",
        ));
        let batch = record_batch(&model, &page, &meta(), true).unwrap();
        let ints = |name: &str| -> Vec<Option<i64>> {
            let a = batch
                .column_by_name(name)
                .unwrap()
                .as_primitive::<Int64Type>();
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect()
        };
        assert_eq!(ints("i"), [Some(1), Some(2), Some(3)]);
        let d = batch
            .column_by_name("d")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!((d.value(0), d.value(1), d.is_null(2)), (1.0, 2.5, true));
        let t = batch
            .column_by_name("t")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.value(0), 1_704_067_200_000_000);
        assert!(t.is_null(1) && t.is_null(2));
        assert_eq!(
            texts(&batch, "s"),
            [Some("plain".into()), Some("7".into()), None]
        );
        assert_eq!(
            texts(&batch, "e"),
            [Some("esc\"aped".into()), Some("x".into()), None]
        );
        assert_eq!(
            texts(&batch, "n"),
            [Some(r#"{"a":[1]}"#.into()), Some("[1,2]".into()), None]
        );
        let b = batch.column_by_name("b").unwrap().as_boolean();
        assert_eq!((b.value(0), b.value(1), b.is_null(2)), (true, false, true));
        assert_eq!(
            texts(&batch, "u"),
            [Some("18446744073709551615".into()), None, None]
        );
        assert_eq!(
            texts(&batch, "w"),
            [Some("1".into()), Some("text".into()), None]
        );
        assert_eq!(texts(&batch, "_load_id"), vec![Some("l".to_owned()); 3]);
        assert_eq!(ints("_row"), [Some(10), Some(11), Some(12)]);
        let at = batch
            .column_by_name("_extracted_at")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(2), 1_796_205_600_000_000);
        // Without `_row` (a replace's staging table) the batch ends at `_extracted_at`.
        let batch = record_batch(&model, &page, &meta(), false).unwrap();
        assert!(batch.column_by_name("_row").is_none());
    }

    #[test]
    fn a_date_time_column_refuses_what_is_not_one() {
        let (mut model, page) = read("{\"t\":\"soon\"}\n");
        // A declared date-time column that received a string of another shape.
        model = Table::new(vec![sink_sql::Column {
            name: model.columns()[0].name.clone(),
            ty: SqlType::Timestamp,
        }]);
        let e = record_batch(&model, &page, &meta(), true).unwrap_err();
        assert!(e.0.contains("record 11") && e.0.contains("\"soon\""), "{e}");
    }
}
