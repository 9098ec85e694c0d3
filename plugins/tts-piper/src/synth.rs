//! Speaking one text on a split voice (see [`crate::graph`]): which parts of
//! which sentences are computed when, on which worker, and when their audio
//! goes out.
//!
//! The rule, for a text of sentences `s0, s1, ...`:
//!
//! * Each sentence's *front* (phonemes → latent frames) runs in order. The
//!   first one runs on the fast front session, which has a thread per
//!   worker (nothing else has work yet); later ones on the lean,
//!   single-threaded one, while earlier sentences decode.
//! * Each sentence's frames are decoded in *parts* ([`plan`]), each part by
//!   one worker on its own decoder session, all workers at once. A part is
//!   decoded with the decoder's context on both sides, so the parts join
//!   into exactly the audio of the whole sentence.
//! * The first sentence of the text starts with a short part
//!   ([`FIRST_PART_FRAMES`], about 0.4 s, or a sixteenth of a long
//!   sentence), sent as soon as it is decoded: the first audio comes after
//!   the front and that part, not after the whole sentence. The rest of the
//!   sentence follows as one chunk, and every later sentence as one chunk,
//!   once all its parts are decoded (Piper's own unit: one chunk per
//!   sentence, its loudness normalised as a whole).
//! * Workers take the earliest work that is ready (parts of an earlier
//!   sentence before the front of a later one), at most [`LOOKAHEAD`]
//!   sentences ahead of the one being sent.
//!
//! A sink's stop is seen at the next chunk; the workers then finish the part
//! they hold (a fraction of a second at most) and take no more.

use std::{
    ops::Range,
    sync::{Arc, Condvar, Mutex},
};

use hearth_plugin_api::Flow;

use crate::runtime::{Latent, Model};

/// Frames in the first part of a text's first sentence (at Piper's usual
/// 256 samples a frame, 0.37 s at 22,050 Hz): long enough to play while the
/// rest is decoded, short enough to be quick.
pub const FIRST_PART_FRAMES: usize = 32;

/// The first part is at least this share of its sentence (1/16), so that
/// on one slow core the rest of a long sentence is decoded before the first
/// part has played.
pub const FIRST_PART_SHARE: usize = 16;

/// A sentence's frames (after its first part) are cut into parts of at
/// least this many, one per worker at most: each cut costs the decoder's
/// context twice, so short sentences stay in one part.
pub const PART_FRAMES: usize = 64;

/// How many sentences past the one being sent may be computed.
pub const LOOKAHEAD: usize = 2;

/// The parts of a sentence of `frames` frames: `first` when it begins the
/// text, with `workers` to share them.
pub fn plan(frames: usize, first: bool, workers: usize) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start = 0;
    if first && frames >= 2 * FIRST_PART_FRAMES {
        let len = FIRST_PART_FRAMES.max(frames.div_ceil(FIRST_PART_SHARE));
        parts.push(0..len);
        start = len;
    }
    let rest = frames - start;
    let n = (rest / PART_FRAMES).clamp(1, workers.max(1));
    let step = rest.div_ceil(n);
    parts.extend((0..n).map(|i| start + i * step..(start + (i + 1) * step).min(frames)));
    parts.retain(|r| !r.is_empty());
    parts
}

/// One chunk of audio as it goes out.
pub struct Chunk {
    /// The sentence it belongs to (an index into the text's sentences).
    pub sentence: usize,
    /// Float audio at the voice's rate.
    pub audio: Vec<f32>,
    /// Whether it continues its sentence (the first part went out before).
    pub continues: bool,
}

enum Front {
    Waiting,
    Running,
    /// Nothing to say in this sentence.
    Silent,
    Done {
        latent: Arc<Latent>,
        parts: Vec<(Range<usize>, Part)>,
    },
}

enum Part {
    Waiting,
    Running,
    Done(Vec<f32>),
    Sent,
}

struct State {
    fronts: Vec<Front>,
    /// The sentence being sent.
    sending: usize,
    /// Whether each front session is running.
    fast_busy: bool,
    lean_busy: bool,
    stop: bool,
    error: Option<String>,
}

enum Task {
    Front {
        sentence: usize,
        fast: bool,
    },
    Decode {
        sentence: usize,
        part: usize,
        latent: Arc<Latent>,
        range: Range<usize>,
    },
}

impl State {
    /// The most urgent ready work, marked as taken: the text's first part
    /// (its first audio), then the next front (the chain every later part
    /// waits on), then parts in sentence order.
    fn take(&mut self) -> Option<Task> {
        let end = self.fronts.len().min(self.sending + 1 + LOOKAHEAD);
        let first = (0..end).find(|&k| !matches!(self.fronts[k], Front::Silent));
        if let Some(k) = first.filter(|&k| k >= self.sending) {
            if let Front::Done { parts, .. } = &self.fronts[k] {
                if parts.len() > 1 && matches!(parts[0].1, Part::Waiting) {
                    return self.decode(k, 0);
                }
            }
        }
        let next = (self.sending..end).find(|&k| matches!(self.fronts[k], Front::Waiting | Front::Running));
        if let Some(k) = next.filter(|&k| matches!(self.fronts[k], Front::Waiting)) {
            // The first front with audio runs on the fast session, whose
            // threads are all the workers: nothing runs beside it.
            let fast = first.is_none_or(|f| f >= k);
            if !(self.fast_busy || (!fast && self.lean_busy)) {
                self.fronts[k] = Front::Running;
                if fast {
                    self.fast_busy = true;
                } else {
                    self.lean_busy = true;
                }
                return Some(Task::Front { sentence: k, fast });
            }
        }
        for k in self.sending..end {
            if let Front::Done { parts, .. } = &self.fronts[k] {
                if let Some(part) = parts.iter().position(|(_, p)| matches!(p, Part::Waiting)) {
                    return self.decode(k, part);
                }
            }
        }
        None
    }

    /// Takes part `part` of sentence `sentence`, whose front is done.
    fn decode(&mut self, sentence: usize, part: usize) -> Option<Task> {
        let Front::Done { latent, parts } = &mut self.fronts[sentence] else {
            return None;
        };
        parts[part].1 = Part::Running;
        Some(Task::Decode {
            sentence,
            part,
            latent: Arc::clone(latent),
            range: parts[part].0.clone(),
        })
    }

    /// Whether every piece of work has been taken (a running front still
    /// brings parts to decode).
    fn all_taken(&self) -> bool {
        self.fronts.iter().all(|f| match f {
            Front::Waiting | Front::Running => false,
            Front::Silent => true,
            Front::Done { parts, .. } => parts.iter().all(|(_, p)| !matches!(p, Part::Waiting)),
        })
    }
}

/// Speaks `sentences` (each turned into model ids by `ids`; `None`: nothing
/// to say) on `model`, calling `emit` with each chunk in order until it
/// answers stop. `model` must be split ([`Model::workers`] is `Some`).
pub fn speak(
    model: &Model,
    sentences: usize,
    ids: &(dyn Fn(usize) -> Result<Option<Vec<i64>>, String> + Sync),
    scales: [f32; 3],
    speaker: Option<i64>,
    emit: &mut dyn FnMut(Chunk) -> Flow,
) -> Result<(), String> {
    let workers = model.workers().ok_or("speak on a whole model")?;
    let shared = (
        Mutex::new(State {
            fronts: (0..sentences).map(|_| Front::Waiting).collect(),
            sending: 0,
            fast_busy: false,
            lean_busy: false,
            stop: false,
            error: None,
        }),
        Condvar::new(),
    );
    let (lock, wake) = &shared;
    let state = || lock.lock().unwrap_or_else(|e| e.into_inner());

    std::thread::scope(|scope| {
        for worker in 0..workers {
            let shared = &shared;
            scope.spawn(move || work(model, worker, workers, shared, ids, scales, speaker));
        }
        let result = send(&shared, emit);
        let mut st = state();
        st.stop = true;
        drop(st);
        wake.notify_all();
        result
    })
}

/// A worker: takes the earliest ready work until there is none left.
#[allow(clippy::too_many_arguments)]
fn work(
    model: &Model,
    worker: usize,
    workers: usize,
    (lock, wake): &(Mutex<State>, Condvar),
    ids: &(dyn Fn(usize) -> Result<Option<Vec<i64>>, String> + Sync),
    scales: [f32; 3],
    speaker: Option<i64>,
) {
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if st.stop || st.error.is_some() {
            return;
        }
        let Some(task) = st.take() else {
            if st.all_taken() {
                return;
            }
            st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        drop(st);
        match task {
            Task::Front { sentence, fast } => {
                let result = ids(sentence).and_then(|ids| match ids {
                    None => Ok(None),
                    Some(ids) => model.front(&ids, scales, speaker, fast).map(Some),
                });
                st = lock.lock().unwrap_or_else(|e| e.into_inner());
                if fast {
                    st.fast_busy = false;
                } else {
                    st.lean_busy = false;
                }
                match result {
                    Err(e) => st.error = Some(e),
                    Ok(None) => st.fronts[sentence] = Front::Silent,
                    Ok(Some(latent)) => {
                        let first = st.fronts[..sentence].iter().all(|f| matches!(f, Front::Silent));
                        let parts = plan(latent.frames(), first, workers)
                            .into_iter()
                            .map(|r| (r, Part::Waiting))
                            .collect();
                        st.fronts[sentence] = Front::Done {
                            latent: Arc::new(latent),
                            parts,
                        };
                    }
                }
            }
            Task::Decode {
                sentence,
                part,
                latent,
                range,
            } => {
                let result = model.decode(worker, &latent, range);
                st = lock.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Err(e) => st.error = Some(e),
                    Ok(audio) => {
                        if let Front::Done { parts, .. } = &mut st.fronts[sentence] {
                            parts[part].1 = Part::Done(audio);
                        }
                    }
                }
            }
        }
        wake.notify_all();
    }
}

/// The caller's side: sends each sentence's chunks in order as they are
/// ready.
fn send((lock, wake): &(Mutex<State>, Condvar), emit: &mut dyn FnMut(Chunk) -> Flow) -> Result<(), String> {
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    let sentences = st.fronts.len();
    let mut sent_any = false;
    for sentence in 0..sentences {
        st.sending = sentence;
        wake.notify_all();
        // The groups of parts that go out together: a split first part
        // alone, then the rest.
        let mut from = 0;
        loop {
            let ready = loop {
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
                match &mut st.fronts[sentence] {
                    Front::Silent => break None,
                    Front::Done { parts, .. } => {
                        let group = if !sent_any && from == 0 && parts.len() > 1 && parts[0].0.start == 0 {
                            0..1
                        } else {
                            from..parts.len()
                        };
                        if parts[group.clone()].iter().all(|(_, p)| matches!(p, Part::Done(_))) {
                            let audio: Vec<f32> = parts[group.clone()]
                                .iter_mut()
                                .flat_map(|(_, p)| match std::mem::replace(p, Part::Sent) {
                                    Part::Done(audio) => audio,
                                    _ => Vec::new(),
                                })
                                .collect();
                            break Some((group, audio, parts.len()));
                        }
                    }
                    Front::Waiting | Front::Running => {}
                }
                st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
            };
            let Some((group, audio, count)) = ready else {
                break;
            };
            drop(st);
            let flow = emit(Chunk {
                sentence,
                audio,
                continues: group.start > 0,
            });
            sent_any = true;
            st = lock.lock().unwrap_or_else(|e| e.into_inner());
            if flow == Flow::Stop {
                return Ok(());
            }
            if group.end == count {
                break;
            }
            from = group.end;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(parts: &[Range<usize>]) -> Vec<usize> {
        parts.iter().map(|r| r.len()).collect()
    }

    #[test]
    fn the_first_sentence_starts_with_a_short_part() {
        assert_eq!(plan(300, true, 2), vec![0..32, 32..166, 166..300]);
        assert_eq!(plan(300, true, 1), vec![0..32, 32..300]);
        // Long: a sixteenth, so the rest is decoded in time on one core.
        assert_eq!(lens(&plan(1000, true, 1)), vec![63, 937]);
        // Too short to gain from a cut.
        assert_eq!(plan(63, true, 4), vec![0..63]);
        assert_eq!(plan(64, true, 4), vec![0..32, 32..64]);
    }

    #[test]
    fn later_sentences_are_cut_only_when_long_and_workers_wait() {
        assert_eq!(plan(300, false, 1), vec![0..300]);
        assert_eq!(plan(127, false, 2), vec![0..127]);
        assert_eq!(plan(128, false, 2), vec![0..64, 64..128]);
        assert_eq!(plan(255, false, 2), vec![0..128, 128..255]);
        assert_eq!(lens(&plan(1000, false, 4)), vec![250, 250, 250, 250]);
        assert_eq!(lens(&plan(1001, false, 4)), vec![251, 251, 251, 248]);
        assert_eq!(plan(1, false, 2), vec![0..1]);
        for frames in 1..600 {
            for first in [false, true] {
                for workers in 1..5 {
                    let p = plan(frames, first, workers);
                    assert_eq!(p.first().unwrap().start, 0);
                    assert_eq!(p.last().unwrap().end, frames);
                    assert!(p.windows(2).all(|w| w[0].end == w[1].start));
                    assert!(p.len() <= workers + 1);
                }
            }
        }
    }
}
