//! The fields of a span or an event as JSON values, in the order they were
//! recorded.
//!
//! What: [`FieldValues`] is a `tracing` visitor that keeps each field's name
//! and value — numbers and booleans as JSON numbers and booleans, strings as
//! strings, anything else as the text of its `Debug` (errors: `Display`).
//!
//! Why: the JSON format writes the fields of every span in scope beside the
//! event's own, each key once. It must know each span's fields by name, with
//! their types, when an event is written: kept typed here, they are neither
//! parsed back from text nor formatted twice.
//!
//! How: a span's values are recorded once when it is created and updated by
//! `Span::record` (a field recorded again replaces its value); an event's
//! are recorded when it is written.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};

/// Field names and values, each name once.
#[derive(Debug, Default)]
pub struct FieldValues(Vec<(&'static str, Value)>);

impl FieldValues {
    /// Sets `name` to `value`, in place when it is there already.
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }

    /// Removes `name` and returns its value.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.0.iter().position(|(n, _)| *n == name)?;
        Some(self.0.remove(at).1)
    }

    /// The fields in the order they were first recorded.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0.iter().map(|(n, v)| (*n, v))
    }
}

impl Visit for FieldValues {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and the infinities have no JSON number: null.
        self.set(field.name(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value =
            i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::from);
        self.set(field.name(), value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value =
            u64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::from);
        self.set(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), Value::from(format!("{value:?}")));
    }
}
