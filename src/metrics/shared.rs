//! Renders of the exposition shared between concurrent scrapes, so that the work and the memory of a scrape do not
//! grow with the number of scrapers.
//!
//! There is one slot per (format, encoding): OpenMetrics or text, gzip or identity. At most one render per slot is
//! in flight. A scrape that arrives while one is in flight waits for it and is answered with the same bytes (one
//! [`Bytes`] buffer, reference-counted, never copied per scrape). A finished render is also reused by scrapes that
//! arrive within [`REUSE_WINDOW`] of its start, so the ages and timestamps a scrape sees are those of its own arrival
//! to within that window (plus, for a scrape that waited, the render it waited for started before it arrived).
//!
//! Each slot keeps its last render (a few MiB at 10k agents) for twice the reuse window after it finished, then lets
//! it go and asks the allocator to hand free memory back to the system, so that a burst of scrapes leaves no peak
//! behind; the four slots bound what is held meanwhile.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::metrics::{Format, family, names};

/// How long a finished render is reused for scrapes that arrive after it started. One second: Prometheus scrapes
/// every 15 s or more, so a second of extra age is noise, while a burst of scrapers within a second costs one render.
pub const REUSE_WINDOW: Duration = Duration::from_secs(1);

/// HELP text of [`names::RENDERS`].
const RENDERS_HELP: &str = "Renders of the /metrics exposition by format and encoding; scrapes that arrive while one \
                            is in flight, or within a second of its start, share it instead of rendering again.";

/// One finished render.
struct Rendered {
    /// When the render began: the instant its ages were computed at.
    started: Instant,
    /// When it finished; a scrape that arrived before this waited for it.
    finished: Instant,
    /// The response body, shared by every scrape answered with it.
    body: Bytes,
}

/// The four slots and their render counters.
pub struct SharedRenders {
    /// Indexed by [`slot`]. A tokio mutex because it is held across the render's `.await`: that wait is exactly what
    /// makes a second scrape share the first one's render. Its queue is fair (first come, first served). Shared with
    /// the task that releases a render once it is too old to be reused.
    slots: Arc<[tokio::sync::Mutex<Option<Rendered>>; 4]>,
    /// Renders done per slot, for [`names::RENDERS`].
    renders: Arc<[AtomicU64; 4]>,
    /// [`REUSE_WINDOW`], shorter in tests.
    window: Duration,
}

impl fmt::Debug for SharedRenders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRenders")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The slot index of a format and encoding.
fn slot(format: Format, gzip: bool) -> usize {
    let f = match format {
        Format::OpenMetrics => 0,
        Format::Text => 2,
    };
    f + usize::from(gzip)
}

/// The `format` and `encoding` labels of slot `i`.
fn labels(i: usize) -> [(&'static str, &'static str); 2] {
    [
        ("format", if i < 2 { "openmetrics" } else { "text" }),
        ("encoding", if i % 2 == 1 { "gzip" } else { "identity" }),
    ]
}

impl Default for SharedRenders {
    fn default() -> SharedRenders {
        SharedRenders::new(REUSE_WINDOW)
    }
}

impl SharedRenders {
    /// Empty slots; a finished render is reused for `window` after its start.
    pub fn new(window: Duration) -> SharedRenders {
        SharedRenders {
            slots: Arc::new(Default::default()),
            renders: Arc::new(Default::default()),
            window,
        }
    }

    /// The body for a scrape of `format`, gzipped if `gzip`: the render in flight or one started less than the
    /// window ago, else a new one made by `render` on the blocking pool (rendering 100k agents is CPU work of tens
    /// of milliseconds, which must not stall the async workers). The error is a sentence for the `500` answer.
    pub async fn get<F>(&self, format: Format, gzip: bool, render: F) -> Result<Bytes, String>
    where
        F: FnOnce() -> std::io::Result<Vec<u8>> + Send + 'static,
    {
        let arrived = Instant::now();
        let i = slot(format, gzip);
        let mut slot = self.slots[i].lock().await;
        if let Some(r) = slot.as_ref() {
            if r.finished >= arrived || arrived.saturating_duration_since(r.started) < self.window {
                return Ok(r.body.clone());
            }
        }
        // Drop the previous render before making the next, so at most one per slot is held at any time.
        *slot = None;
        let started = Instant::now();
        let body = match tokio::task::spawn_blocking(render).await {
            Ok(Ok(body)) => Bytes::from(body),
            Ok(Err(e)) => return Err(format!("cannot write the exposition: {e}")),
            Err(e) => return Err(format!("rendering failed: {e}")),
        };
        let finished = Instant::now();
        self.renders[i].fetch_add(1, Ordering::Relaxed);
        let [(_, format), (_, encoding)] = labels(i);
        tracing::debug!(
            format,
            encoding,
            bytes = body.len(),
            took_ms = (finished - started).as_millis() as u64,
            "exposition rendered"
        );
        *slot = Some(Rendered {
            started,
            finished,
            body: body.clone(),
        });
        drop(slot);
        self.release_later(i, started);
        Ok(body)
    }

    /// After twice the window, drops slot `i`'s render if it is still the one that started at `started` (a newer
    /// render schedules its own release), then returns free memory to the system.
    fn release_later(&self, i: usize, started: Instant) {
        let (slots, linger) = (self.slots.clone(), self.window * 2);
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let mut slot = slots[i].lock().await;
            if slot.as_ref().is_some_and(|r| r.started == started) {
                *slot = None;
                drop(slot);
                return_free_memory();
            }
        });
    }

    /// The bytes of renders held now, all slots together.
    pub async fn held_bytes(&self) -> usize {
        let mut n = 0;
        for s in self.slots.iter() {
            n += s.lock().await.as_ref().map_or(0, |r| r.body.len());
        }
        n
    }

    /// The collector of [`names::RENDERS`], for the exporter's metrics registry.
    pub fn collector(&self) -> RendersCollector {
        RendersCollector {
            renders: self.renders.clone(),
        }
    }
}

/// Hands memory that is free but still mapped back to the system. glibc's allocator keeps the peak of a burst
/// (tens of MiB of exposition buffers at 10k agents) mapped in its arenas until told otherwise; `malloc_trim` is the
/// documented way to tell it. Other allocators return memory by themselves, so elsewhere this does nothing.
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a byte count to keep and only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Encodes [`names::RENDERS`] from the counters of a [`SharedRenders`].
#[derive(Debug)]
pub struct RendersCollector {
    renders: Arc<[AtomicU64; 4]>,
}

impl Collector for RendersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut fam = family(
            &mut encoder,
            names::RENDERS,
            RENDERS_HELP,
            MetricType::Counter,
        )?;
        for (i, n) in self.renders.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            fam.encode_family(&labels(i))?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_render_and_get_the_same_bytes() {
        let shared = Arc::new(SharedRenders::new(Duration::from_millis(0)));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(released));
        let mut scrapes = Vec::new();
        for _ in 0..16 {
            let (shared, calls, released) = (shared.clone(), calls.clone(), released.clone());
            scrapes.push(tokio::spawn(async move {
                shared
                    .get(Format::Text, true, move || {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        // Hold the first render until every scrape has arrived.
                        let _ = released.lock().unwrap().recv();
                        Ok(format!("render {n}").into_bytes())
                    })
                    .await
            }));
        }
        // Every scrape is queued behind the first render once the first render has started and the tasks ran.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
        for s in scrapes {
            let body = s.await.unwrap().unwrap();
            assert_eq!(body, Bytes::from_static(b"render 0"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "renders");
        assert_eq!(
            shared.renders[slot(Format::Text, true)].load(Ordering::SeqCst),
            1
        );
        // With a zero window, a scrape after the render finished renders afresh.
        drop(release);
        let again = shared
            .get(Format::Text, true, || Ok(b"fresh".to_vec()))
            .await
            .unwrap();
        assert_eq!(again, Bytes::from_static(b"fresh"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_render_is_let_go_after_twice_the_window_unless_a_newer_one_replaced_it() {
        let shared = SharedRenders::new(Duration::from_secs(1));
        shared
            .get(Format::OpenMetrics, false, || Ok(vec![0; 1000]))
            .await
            .unwrap();
        assert_eq!(shared.held_bytes().await, 1000);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            shared.held_bytes().await,
            1000,
            "still within twice the window"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            shared.held_bytes().await,
            0,
            "released after twice the window"
        );
    }

    #[tokio::test]
    async fn a_finished_render_is_reused_within_the_window_and_per_format_and_encoding() {
        let shared = SharedRenders::new(Duration::from_secs(60));
        let first = shared
            .get(Format::OpenMetrics, false, || Ok(b"one".to_vec()))
            .await
            .unwrap();
        let reused = shared
            .get(Format::OpenMetrics, false, || Ok(b"two".to_vec()))
            .await
            .unwrap();
        assert_eq!(
            (first.as_ref(), reused.as_ref()),
            (&b"one"[..], &b"one"[..])
        );
        let other = shared
            .get(Format::OpenMetrics, true, || Ok(b"gz".to_vec()))
            .await
            .unwrap();
        assert_eq!(other.as_ref(), b"gz", "gzip shares nothing with identity");
        let failed = shared
            .get(Format::Text, false, || {
                Err(std::io::Error::other("disk on fire"))
            })
            .await;
        assert_eq!(
            failed,
            Err("cannot write the exposition: disk on fire".to_string())
        );
    }
}
