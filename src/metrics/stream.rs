//! The adapter that lets the crate's text encoders (which write to a `std::fmt::Write`) stream into a byte sink such
//! as the gzip encoder of a scrape.

use std::fmt;
use std::io;

/// Forwards every string it is given to an [`io::Write`] at once, keeping the first I/O error.
///
/// It holds no buffer of its own: the crate already hands over its output in chunks of about 4 KiB (see
/// [`super::Exposition::render_to`]), which is a fine size for the gzip encoder to take.
pub(super) struct IoWriter<'a> {
    sink: &'a mut dyn io::Write,
    /// The error the sink returned. [`fmt::Error`] carries no detail, so the detail waits here for
    /// [`IoWriter::finish`].
    error: Option<io::Error>,
}

impl<'a> IoWriter<'a> {
    pub(super) fn new(sink: &'a mut dyn io::Write) -> IoWriter<'a> {
        IoWriter { sink, error: None }
    }

    /// Turns the outcome of the encoding into the sink's own error, if it failed, or an error saying the encoding did.
    pub(super) fn finish(self, encoded: fmt::Result) -> io::Result<()> {
        match (encoded, self.error) {
            (_, Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
            (Err(fmt::Error), None) => Err(io::Error::other("encoding the exposition failed")),
        }
    }
}

impl fmt::Write for IoWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.error.is_some() {
            return Err(fmt::Error);
        }
        self.sink.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            fmt::Error
        })
    }
}
