//! Which context variables a logging integration prints, and how: the choices the `tracing` and
//! `log` adapters share (a subset of variables, `Display` or `Debug`, a length cap, opaque
//! variables never printed, a value whose formatting panics skipped, and one key per variable
//! even when two share a name).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Context, Entry, VarKey};

#[derive(Clone, Debug)]
pub(crate) struct FieldSelection {
    /// Only these variables, when set.
    pub(crate) only: Option<Vec<VarKey>>,
    /// `Debug` even where the variable offers `Display`.
    pub(crate) debug_values: bool,
    /// Longer values are cut at a character boundary, ending with `…`.
    pub(crate) max_value_len: usize,
}

impl Default for FieldSelection {
    fn default() -> Self {
        FieldSelection {
            only: None,
            debug_values: false,
            max_value_len: 4096,
        }
    }
}

impl FieldSelection {
    /// Whether `entry` is printed: never an opaque variable, and only those of `only`.
    pub(crate) fn wants(&self, entry: &Entry<'_>) -> bool {
        entry.has_debug()
            && self
                .only
                .as_ref()
                .is_none_or(|keys| keys.contains(&entry.key()))
    }

    /// The wanted entries of `context`, each with the key it prints under: its name, or, for a
    /// variable that shares the name of another wanted one, `name#2`, `name#3`, ... in the order
    /// the variables were first used in the process (the first keeps the plain name). So no line
    /// or object ever has the same key twice, and the same variables always get the same keys.
    pub(crate) fn keyed<'c>(
        &'c self,
        context: &'c Context,
    ) -> impl Iterator<Item = (FieldKey, Entry<'c>)> + 'c {
        context
            .iter()
            .filter(|entry| self.wants(entry))
            .map(move |entry| {
                let (name, key) = (entry.name(), entry.key());
                // Names are rarely shared and contexts small: counting beats allocating.
                let earlier = context
                    .iter()
                    .filter(|other| other.name() == name && other.key() < key && self.wants(other))
                    .count();
                let number = earlier + 1;
                (FieldKey { name, number }, entry)
            })
    }

    /// Formats one value into `out`; `false` (and `out` unchanged) when its formatting panicked
    /// or failed.
    pub(crate) fn format_value(&self, entry: &Entry<'_>, out: &mut String) -> bool {
        let start = out.len();
        let formatted = catch_unwind(AssertUnwindSafe(|| {
            if self.debug_values {
                write!(out, "{}", entry.debug())
            } else {
                write!(out, "{}", entry.display())
            }
        }));
        match formatted {
            Ok(Ok(())) => {
                self.truncate(out, start);
                true
            }
            _ => {
                out.truncate(start);
                false
            }
        }
    }

    /// Cuts what was written to `out` after `start` to the configured length.
    pub(crate) fn truncate(&self, out: &mut String, start: usize) {
        if out.len() - start > self.max_value_len {
            let mut end = start + self.max_value_len;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push('…');
        }
    }
}

/// The key a variable prints under; see [`FieldSelection::keyed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldKey {
    name: &'static str,
    /// 1 for the first variable of that name, 2 for the next, ...
    number: usize,
}

impl FieldKey {
    /// The key as text, allocated only for a shared name.
    pub(crate) fn text(&self) -> Cow<'static, str> {
        match self.number {
            1 => Cow::Borrowed(self.name),
            _ => Cow::Owned(self.to_string()),
        }
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number {
            1 => f.write_str(self.name),
            number => write!(f, "{}#{number}", self.name),
        }
    }
}
