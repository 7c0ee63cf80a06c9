//! The Prometheus text exposition format (version 0.0.4), as `/metrics`
//! writes it: a [`Family`] collects its series, and is written with its
//! `# HELP` and `# TYPE` lines once, its series under them, whatever order
//! the series were found in. [`Labels`] escape their values.

use std::fmt::{Display, Write};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A series' labels, rendered (`node="1",group="web"`).
#[derive(Debug, Clone)]
pub(crate) struct Labels(String);

impl Labels {
    /// The label every series carries: the node that answers.
    pub(crate) fn node(node: u64) -> Labels {
        Labels(format!("node=\"{node}\""))
    }

    /// These labels and `name="value"` (escaped).
    pub(crate) fn with(&self, name: &str, value: &str) -> Labels {
        let mut out = String::with_capacity(self.0.len() + name.len() + value.len() + 4);
        out.push_str(&self.0);
        out.push(',');
        out.push_str(name);
        out.push_str("=\"");
        escape_into(&mut out, value);
        out.push('"');
        Labels(out)
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One metric family and the series found for it so far.
#[derive(Debug)]
pub(crate) struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    series: String,
}

impl Family {
    /// An empty family.
    pub(crate) fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            series: String::new(),
        }
    }

    /// A series of a counter or gauge.
    pub(crate) fn sample(&mut self, labels: &Labels, value: impl Display) {
        let _ = writeln!(self.series, "{}{{{}}} {value}", self.name, labels.0);
    }

    /// The series of a histogram: a bucket per bound of `bounds` (with
    /// `cumulative`'s count, or `count` where it has none), `+Inf`, `_sum`
    /// and `_count`.
    pub(crate) fn histogram(
        &mut self,
        labels: &Labels,
        bounds: &[f64],
        cumulative: &[u64],
        count: u64,
        sum_seconds: f64,
    ) {
        let name = self.name;
        for (i, le) in bounds.iter().enumerate() {
            let n = cumulative.get(i).copied().unwrap_or(count).min(count);
            let _ = writeln!(self.series, "{name}_bucket{{{},le=\"{le}\"}} {n}", labels.0);
        }
        let l = &labels.0;
        let _ = writeln!(
            self.series,
            "{name}_bucket{{{l},le=\"+Inf\"}} {count}\n{name}_sum{{{l}}} {sum_seconds}\n{name}_count{{{l}}} {count}"
        );
    }
}

/// A whole `/metrics` answer, family after family.
#[derive(Debug, Default)]
pub(crate) struct Exposition(String);

impl Exposition {
    /// Writes `family`: its HELP and TYPE lines, then its series.
    pub(crate) fn push(&mut self, family: Family) {
        let Family {
            name,
            kind,
            help,
            series,
        } = family;
        let _ = write!(
            self.0,
            "# HELP {name} {help}\n# TYPE {name} {}\n{series}",
            kind.as_str()
        );
    }

    /// Writes each of `families`.
    pub(crate) fn push_all(&mut self, families: impl IntoIterator<Item = Family>) {
        for f in families {
            self.push(f);
        }
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let l = Labels::node(1).with("backend", "a\"b\\c\nd");
        assert_eq!(l.0, r#"node="1",backend="a\"b\\c\nd""#);
    }

    #[test]
    fn a_family_is_written_once_with_its_series_under_it() {
        let mut f = Family::new("x_total", Kind::Counter, "Things.");
        f.sample(&Labels::node(1).with("k", "a"), 2);
        f.sample(&Labels::node(1).with("k", "b"), 3);
        let mut h = Family::new("t_seconds", Kind::Histogram, "Times.");
        h.histogram(&Labels::node(1), &[0.5, 1.0], &[1], 3, 2.25);
        let mut e = Exposition::default();
        e.push_all([f, h]);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{node=\"1\",k=\"a\"} 2\nx_total{node=\"1\",k=\"b\"} 3\n\
             # HELP t_seconds Times.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{node=\"1\",le=\"0.5\"} 1\n\
             t_seconds_bucket{node=\"1\",le=\"1\"} 3\n\
             t_seconds_bucket{node=\"1\",le=\"+Inf\"} 3\n\
             t_seconds_sum{node=\"1\"} 2.25\nt_seconds_count{node=\"1\"} 3\n"
        );
    }
}
