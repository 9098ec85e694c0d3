//! A host context for tests that records what the engine reports and
//! cancels on demand.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};

use crate::{abi::HostContext_TO, author::Context, client::Host};

/// Records progress and log lines; answers "cancelled" once [`cancel`]
/// was called or after a set number of progress reports.
///
/// Usable both as a [`crate::client::Host`] (for an
/// [`crate::client::Instance`]) and, through [`RecordingHost::context`], as
/// the [`Context`] the author traits take.
///
/// [`cancel`]: RecordingHost::cancel
#[derive(Debug, Default)]
pub struct RecordingHost {
    progress: Mutex<Vec<(f32, String)>>,
    logs: Mutex<Vec<(u8, String)>>,
    cancelled: AtomicBool,
    cancel_after: Mutex<Option<usize>>,
    reports: AtomicUsize,
}

impl RecordingHost {
    /// A host that has recorded nothing and does not cancel.
    pub fn new() -> Self {
        Self::default()
    }

    /// A host that cancels once `n` progress reports arrived.
    pub fn cancelling_after(n: usize) -> Self {
        let host = Self::default();
        *host.cancel_after.lock().unwrap_or_else(|e| e.into_inner()) = Some(n);
        host
    }

    /// From now on, `is_cancelled` answers true.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Every `(fraction, message)` reported so far.
    pub fn progress(&self) -> Vec<(f32, String)> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every `(level, line)` logged so far.
    pub fn logs(&self) -> Vec<(u8, String)> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A [`Context`] on this host, relative paths resolved against
    /// `base_dir`, for calling the author traits directly.
    pub fn context(&self, base_dir: &Path) -> Context<'_> {
        Context::new(HostContext_TO::from_ptr(self, TD_Opaque), base_dir)
    }
}

impl Host for RecordingHost {
    fn progress(&self, fraction: f32, message: &str) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((fraction, message.to_owned()));
        let seen = self.reports.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(n) = *self.cancel_after.lock().unwrap_or_else(|e| e.into_inner()) {
            if seen >= n {
                self.cancel();
            }
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn log(&self, level: u8, message: &str) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((level, message.to_owned()));
    }
}

impl crate::abi::HostContext for RecordingHost {
    fn progress(&self, fraction: f32, message: RStr<'_>) {
        Host::progress(self, fraction, message.as_str());
    }

    fn is_cancelled(&self) -> bool {
        Host::is_cancelled(self)
    }

    fn log(&self, level: u8, message: RStr<'_>) {
        Host::log(self, level, message.as_str());
    }
}
