//! The progress file of a warm job, `<cache dir>/warm.json`: written by `inferno cache warm` (in the
//! foreground or `--background`) after every step, read by `inferno cache status`.
//!
//! Written whole to a temporary file and renamed, so a reader never sees half a file. A job whose state is
//! `running` but whose process is gone was interrupted (killed, or the machine restarted).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The progress file's name in the cache directory.
pub const PROGRESS_FILE: &str = "warm.json";
/// The log file of a `--background` job in the cache directory.
pub const LOG_FILE: &str = "warm.log";

/// Where a warm job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Working.
    Running,
    /// Finished; every step succeeded.
    Done,
    /// Finished; some steps failed (see `errors`).
    Failed,
    /// Its process is gone while the file still says running (only ever computed by [`read`]).
    Interrupted,
}

/// The contents of the progress file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The warming process.
    pub pid: u32,
    /// Where it is.
    pub state: JobState,
    /// Whether it runs detached (`--background`).
    pub background: bool,
    /// Its log file, for background jobs.
    pub log: Option<PathBuf>,
    /// When it started, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// When the file was last written.
    pub updated_ms: u64,
    /// Steps in the job: one per model, one per prompt per model.
    pub total_steps: u64,
    /// Steps finished, successfully or not.
    pub done_steps: u64,
    /// What it is working on.
    pub current: Option<String>,
    /// Models warmed so far.
    pub models_warmed: u64,
    /// Responses stored so far.
    pub responses_stored: u64,
    /// Prompts that were already cached.
    pub responses_cached: u64,
    /// One line per failed step.
    pub errors: Vec<String>,
}

impl Progress {
    /// A new running job of `total_steps` in this process.
    pub fn start(total_steps: u64, background: bool, log: Option<PathBuf>) -> Self {
        let now = crate::cache::clock::now_ms();
        Self {
            pid: std::process::id(),
            state: JobState::Running,
            background,
            log,
            started_ms: now,
            updated_ms: now,
            total_steps,
            done_steps: 0,
            current: None,
            models_warmed: 0,
            responses_stored: 0,
            responses_cached: 0,
            errors: Vec::new(),
        }
    }
}

/// Writes `progress` to `dir/warm.json` atomically.
pub fn write(dir: &Path, progress: &Progress) -> io::Result<()> {
    crate::cache::private::create_dir_all(dir)?;
    let mut progress = progress.clone();
    progress.updated_ms = crate::cache::clock::now_ms();
    let tmp = dir.join(format!("{PROGRESS_FILE}.{}.tmp", std::process::id()));
    crate::cache::private::write(&tmp, serde_json::to_vec_pretty(&progress).expect("progress serialises"))?;
    std::fs::rename(&tmp, dir.join(PROGRESS_FILE))
}

/// The last warm job's progress in `dir`, if any; a running job whose process is gone reads as interrupted.
pub fn read(dir: &Path) -> Option<Progress> {
    let bytes = std::fs::read(dir.join(PROGRESS_FILE)).ok()?;
    let mut progress: Progress = serde_json::from_slice(&bytes).ok()?;
    if progress.state == JobState::Running && !is_alive(progress.pid) {
        progress.state = JobState::Interrupted;
    }
    Some(progress)
}

/// True when a process with this pid exists (Linux: it has a `/proc` entry).
pub fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_dead_writer_reads_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_none());
        let mut progress = Progress::start(3, false, None);
        progress.done_steps = 1;
        write(dir.path(), &progress).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!((back.state, back.done_steps, back.pid), (JobState::Running, 1, std::process::id()));
        // A pid above the kernel's pid_max cannot exist.
        progress.pid = 1 << 30;
        write(dir.path(), &progress).unwrap();
        assert_eq!(read(dir.path()).unwrap().state, JobState::Interrupted);
        std::fs::write(dir.path().join(PROGRESS_FILE), b"{half").unwrap();
        assert!(read(dir.path()).is_none(), "an unreadable file is no job");
    }
}
