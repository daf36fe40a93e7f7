//! [`ReportOnDrop`]: a value that reports what its destructor sees, to check in which context a
//! future (or a task holding it) is dropped.

use std::sync::mpsc;

/// Sends `read()` (what the destructor sees: a variable, several, the OTel context...) when
/// dropped. The receiver may be gone by then: the report is simply lost.
pub(crate) struct ReportOnDrop<T> {
    to: mpsc::Sender<T>,
    read: fn() -> T,
}

impl<T> ReportOnDrop<T> {
    pub(crate) fn new(to: mpsc::Sender<T>, read: fn() -> T) -> Self {
        ReportOnDrop { to, read }
    }
}

impl<T> Drop for ReportOnDrop<T> {
    fn drop(&mut self) {
        let _ = self.to.send((self.read)());
    }
}
