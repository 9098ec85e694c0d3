//! How many cores are free for a transcription right now, so that the
//! default thread count adapts to the machine's load.
//!
//! whisper.cpp splits every step of the model across its threads and waits
//! at a barrier for the slowest one. On a 2-core machine with one core busy
//! elsewhere, two threads take longer than one (the JFK clip: about 1.0 s
//! with ggml's spinning barriers, 2.2 s with OpenMP's, 0.85 s on one
//! thread; 0.43 s on two threads idle). So, when `threads` is not set, each
//! transcription uses as many threads as there are cores that the rest of
//! the machine left free, measured over the last second, at least one and
//! at most the configured most (see `bench/stt.sh`, load condition).
//!
//! A [`Meter`] samples `/proc/stat` (the jiffies of the cores this process
//! may run on, from `Cpus_allowed_list` in `/proc/self/status`) and
//! `/proc/self/stat` (this process's own jiffies) every [`INTERVAL`] on a
//! thread of its own, which it stops and joins when it is dropped. What
//! other processes used is the cores' busy time minus this process's.
//! That is the past second, so at each transcription it is capped by what
//! runs now: `procs_running` in `/proc/stat`, less the calling thread, the
//! fewest of three readings a millisecond apart. Without the cap, a
//! conversation's transcription right after the previous reply's synthesis
//! and chat took one thread on an idle machine (626 ms instead of 385 on
//! the JFK clip). Where `/proc` cannot be read (not Linux),
//! [`Meter::start`] returns `None` and the configured most is used.

use std::{
    collections::VecDeque,
    sync::{
        mpsc::{self, RecvTimeoutError},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// How often the meter samples.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// How many samples the meter keeps: the window is `(WINDOW - 1) *
/// INTERVAL`, one second.
const WINDOW: usize = 5;

/// Readings of the tasks running now per transcription.
const NOW_READINGS: usize = 3;

/// Load elsewhere below this fraction of a core is ignored: a machine's
/// background noise (a shell, a log line) must not halve the threads.
const SLACK: f64 = 0.25;

/// One reading of the counters, in clock ticks (USER_HZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Busy ticks of the cores this process may use, summed.
    pub busy: u64,
    /// All ticks (busy and idle) of those cores, summed.
    pub total: u64,
    /// This process's own ticks (user and system).
    pub own: u64,
}

/// Cores the rest of the machine kept busy between two samples, out of
/// `cpus` cores: the cores' busy time less this process's, per elapsed
/// tick of one core. `None` when no time passed.
pub fn busy_elsewhere(before: Sample, after: Sample, cpus: usize) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    if total == 0 || cpus == 0 {
        return None;
    }
    let elapsed = total as f64 / cpus as f64;
    let busy = after.busy.saturating_sub(before.busy) as f64;
    let own = after.own.saturating_sub(before.own) as f64;
    Some(((busy - own) / elapsed).clamp(0.0, cpus as f64))
}

/// Other tasks runnable now, from `/proc/stat` text: `procs_running` less
/// the thread that reads it.
pub fn running_elsewhere(stat: &str) -> Option<f64> {
    let running: u32 = stat
        .lines()
        .find_map(|line| line.strip_prefix("procs_running"))?
        .trim()
        .parse()
        .ok()?;
    Some(f64::from(running.saturating_sub(1)))
}

/// The load to go by: the past window's, capped by the fewest tasks seen
/// running in `now`'s readings (the past alone when there are none).
pub fn load_now(past: f64, now: impl IntoIterator<Item = f64>) -> f64 {
    now.into_iter().fold(past, f64::min)
}

/// Threads for one transcription: the cores left free by `elsewhere` busy
/// ones out of `cpus`, rounded down after [`SLACK`], within 1 and `most`.
pub fn choose(most: u32, cpus: usize, elsewhere: f64) -> u32 {
    let free = (cpus as f64 - elsewhere + SLACK).floor();
    (free.max(1.0) as u32).clamp(1, most.max(1))
}

/// Parses `Cpus_allowed_list` from `/proc/self/status` ("0-3,5,8-9").
pub fn allowed_cpus(status: &str) -> Option<Vec<usize>> {
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse::<usize>().ok()?),
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Sums the busy and total ticks of `cpus` from `/proc/stat` text. A core
/// missing from the text (offline) counts nothing.
pub fn cores_ticks(stat: &str, cpus: &[usize]) -> Option<(u64, u64)> {
    let (mut busy, mut total, mut found) = (0u64, 0u64, false);
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else { continue };
        let Some((index, fields)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else { continue }; // the "cpu " sum line
        if !cpus.contains(&index) {
            continue;
        }
        let f: Vec<u64> = fields.split_whitespace().map_while(|v| v.parse().ok()).collect();
        if f.len() < 5 {
            return None;
        }
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let idle = f[3] + f[4];
        let all: u64 = f.iter().take(8).sum();
        busy += all - idle;
        total += all;
        found = true;
    }
    found.then_some((busy, total))
}

/// This process's user and system ticks from `/proc/self/stat` text (the
/// 14th and 15th fields; the command name may hold spaces and parentheses).
pub fn own_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn read(cpus: &[usize]) -> Option<Sample> {
    let (busy, total) = cores_ticks(&std::fs::read_to_string("/proc/stat").ok()?, cpus)?;
    let own = own_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some(Sample { busy, total, own })
}

/// Samples the load in the background while it lives.
pub struct Meter {
    cpus: usize,
    samples: Arc<Mutex<VecDeque<Sample>>>,
    /// Dropped to stop the thread: its wait ends at once.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Meter {
    /// Starts sampling; `None` where `/proc` does not tell.
    pub fn start() -> Option<Self> {
        let allowed = allowed_cpus(&std::fs::read_to_string("/proc/self/status").ok()?)?;
        let first = read(&allowed)?;
        let samples = Arc::new(Mutex::new(VecDeque::from([first])));
        let (stop, stopped) = mpsc::channel::<()>();
        let s = Arc::clone(&samples);
        let cpus = allowed.len();
        let thread = thread::Builder::new()
            .name("stt-cpu-meter".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if let Some(sample) = read(&allowed) {
                        let mut samples = s.lock().unwrap_or_else(|e| e.into_inner());
                        if samples.len() == WINDOW {
                            samples.pop_front();
                        }
                        samples.push_back(sample);
                    }
                }
            })
            .ok()?;
        Some(Meter {
            cpus,
            samples,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The cores this process may run on.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Cores other processes kept busy over the window; `None` until the
    /// meter has two samples.
    pub fn busy_elsewhere(&self) -> Option<f64> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        busy_elsewhere(*samples.front()?, *samples.back()?, self.cpus)
    }

    /// Threads for a transcription now: see [`choose`], with the load of
    /// the past second capped by the tasks running now; `most` until the
    /// meter has measured.
    pub fn threads(&self, most: u32) -> u32 {
        let Some(past) = self.busy_elsewhere() else {
            return most;
        };
        // The fewest of a few readings a millisecond apart: a task that
        // wakes for a moment (the host passing the audio on) is not load.
        let now = (0..NOW_READINGS).filter_map(|i| {
            if i > 0 {
                thread::sleep(Duration::from_millis(1));
            }
            running_elsewhere(&std::fs::read_to_string("/proc/stat").ok()?)
        });
        choose(most, self.cpus, load_now(past, now))
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // Joined, not detached: nothing of the plugin may run after the
            // engine's shutdown, whatever the host does next.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_with_ranges() {
        let status = "Name:\tx\nCpus_allowed:\tf\nCpus_allowed_list:\t0-2,5,7-8\nMems_allowed:\t1\n";
        assert_eq!(allowed_cpus(status), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(allowed_cpus("Cpus_allowed_list:\t3\n"), Some(vec![3]));
        assert_eq!(allowed_cpus("Name:\tx\n"), None);
        assert_eq!(allowed_cpus("Cpus_allowed_list:\tx-y\n"), None);
    }

    const STAT: &str = "cpu  300 0 100 900 10 0 0 0 0 0\n\
                        cpu0 100 0 50 400 5 0 0 0 0 0\n\
                        cpu1 200 0 50 500 5 0 0 0 0 0\n\
                        intr 12345\nctxt 99\nprocs_running 3\nprocs_blocked 0\n";

    #[test]
    fn only_the_allowed_cores_are_summed() {
        assert_eq!(cores_ticks(STAT, &[0, 1]), Some((400, 1310)));
        assert_eq!(cores_ticks(STAT, &[1]), Some((250, 755)));
        assert_eq!(cores_ticks(STAT, &[4]), None);
    }

    #[test]
    fn the_tasks_running_now_exclude_the_reader() {
        assert_eq!(running_elsewhere(STAT), Some(2.0));
        assert_eq!(running_elsewhere("procs_running 1\n"), Some(0.0));
        assert_eq!(running_elsewhere("cpu 1 2 3\n"), None);
    }

    #[test]
    fn past_load_that_has_ended_does_not_count() {
        assert_eq!(load_now(1.0, [0.0, 1.0, 0.0]), 0.0, "the previous turn has ended");
        assert_eq!(load_now(1.0, [1.0, 2.0, 1.0]), 1.0, "a busy loop is still running");
        assert_eq!(load_now(0.1, [3.0, 2.0, 2.0]), 0.1, "a moment's tasks are not load");
        assert_eq!(load_now(0.8, []), 0.8, "nothing read: the past alone");
    }

    #[test]
    fn own_ticks_survive_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (hearth (worker) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0 100";
        assert_eq!(own_ticks(stat), Some(42));
        assert_eq!(own_ticks("garbage"), None);
    }

    #[test]
    fn load_elsewhere_is_the_cores_busy_time_less_our_own() {
        let before = Sample {
            busy: 1000,
            total: 4000,
            own: 100,
        };
        // One second at 100 ticks per second on 2 cores: 200 ticks.
        let idle = Sample {
            busy: 1005,
            total: 4200,
            own: 102,
        };
        assert!(busy_elsewhere(before, idle, 2).unwrap() < 0.05);
        // One core busy elsewhere, and we ran on the other.
        let loaded = Sample {
            busy: 1200,
            total: 4200,
            own: 200,
        };
        assert_eq!(busy_elsewhere(before, loaded, 2), Some(1.0));
        // Our own two threads on both cores are not load.
        let ours = Sample {
            busy: 1200,
            total: 4200,
            own: 300,
        };
        assert_eq!(busy_elsewhere(before, ours, 2), Some(0.0));
        assert_eq!(busy_elsewhere(before, before, 2), None);
    }

    #[test]
    fn threads_follow_the_free_cores() {
        assert_eq!(choose(2, 2, 0.0), 2);
        assert_eq!(choose(2, 2, 0.2), 2, "background noise is ignored");
        assert_eq!(choose(2, 2, 0.5), 1);
        assert_eq!(choose(2, 2, 1.0), 1);
        assert_eq!(choose(2, 2, 2.0), 1, "never fewer than one");
        assert_eq!(choose(4, 8, 3.0), 4, "never more than the most");
        assert_eq!(choose(4, 4, 1.0), 3);
    }

    #[test]
    fn busy_processes_elsewhere_are_measured_and_take_threads_away() {
        let Some(meter) = Meter::start() else {
            panic!("/proc/stat and /proc/self/status should be readable on Linux");
        };
        let cpus = meter.cpus();
        // One busy process per core we may use: whatever else runs, the
        // cores are full of someone else's work.
        let mut busy: Vec<_> = (0..cpus)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("sh")
            })
            .collect();
        thread::sleep(INTERVAL * (WINDOW as u32) + INTERVAL);
        let elsewhere = meter.busy_elsewhere();
        let threads = meter.threads(cpus as u32);
        for child in &mut busy {
            let _ = child.kill();
            let _ = child.wait();
        }
        let elsewhere = elsewhere.expect("two samples after a second");
        assert!(
            elsewhere > cpus as f64 - 0.75,
            "{cpus} busy processes measured as {elsewhere:.2} cores"
        );
        assert_eq!(threads, 1, "{elsewhere:.2} of {cpus} cores busy elsewhere");
    }
}
