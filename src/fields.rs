//! Which context variables a logging integration prints, and how: the choices the `tracing` and
//! `log` adapters share (a subset of variables, `Display` or `Debug`, a length cap, opaque
//! variables never printed, a value whose formatting panics skipped).

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Entry, VarKey};

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
