//! Loudness: the model's float audio to PCM16.
//!
//! As Piper does it, a sentence is scaled so that its loudest sample is full
//! range (`normalize`, the default), times `volume`, and clipped. A text's
//! first sentence goes out in two chunks (see [`crate::synth`]), and its
//! loudest sample may be in the second, which was not decoded when the
//! first went out. So the second chunk keeps the first chunk's gain unless
//! that would clip, and then lowers it to its own — ramped over
//! [`RAMP_SECONDS`], finished before the first sample that would clip — so
//! a sentence never clips and never jumps in loudness. A sentence in one
//! chunk is Piper's, rounded to the nearest step where Piper truncates.

/// How long a lowered gain takes to reach its new level.
pub const RAMP_SECONDS: f32 = 0.01;

/// The gain that makes `audio` full range (times `volume`) when
/// `normalize`, else `volume`; 0 for silence.
pub fn gain(audio: &[f32], normalize: bool, volume: f32) -> f32 {
    if !normalize {
        return volume;
    }
    let peak = peak(audio);
    if peak < 1e-8 {
        0.0
    } else {
        volume / peak
    }
}

fn peak(audio: &[f32]) -> f32 {
    audio
        .iter()
        .filter(|s| s.is_finite())
        .fold(0.0f32, |m, s| m.max(s.abs()))
}

/// `audio` as PCM16 at one gain.
pub fn to_pcm16(audio: &[f32], gain: f32) -> Vec<i16> {
    audio.iter().map(|&s| sample(s, gain)).collect()
}

fn sample(s: f32, gain: f32) -> i16 {
    let s = if s.is_finite() { s * gain } else { 0.0 };
    // Rounded, not truncated as Piper does: the loudest sample times its
    // gain may come out a hair under 1.0 in float, and must still be full
    // scale.
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// The second chunk of a sentence whose first chunk went out at `before`:
/// its PCM16, keeping `before` where that does not clip (see the module
/// doc). `sample_rate` sets the ramp's length.
pub fn continuation(audio: &[f32], before: f32, normalize: bool, volume: f32, sample_rate: u32) -> Vec<i16> {
    let own = gain(audio, normalize, volume);
    if !normalize || own >= before {
        return to_pcm16(audio, before);
    }
    let ramp = ((RAMP_SECONDS * sample_rate as f32) as usize).max(1);
    // The ramp must be over before the first sample too loud at `before`.
    let limit = audio
        .iter()
        .position(|s| s.is_finite() && s.abs() * before > 1.0)
        .unwrap_or(audio.len());
    let ramp = ramp.min(limit);
    audio
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let g = if i < ramp {
                before + (own - before) * (i + 1) as f32 / ramp as f32
            } else {
                own
            };
            sample(s, g)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_sentence_is_peak_normalised_and_clipped() {
        assert_eq!(
            to_pcm16(&[0.25, -0.5], gain(&[0.25, -0.5], true, 1.0)),
            vec![16384, -32767]
        );
        assert_eq!(
            to_pcm16(&[0.25, -0.5], gain(&[0.25, -0.5], false, 1.0)),
            vec![8192, -16384]
        );
        assert_eq!(
            to_pcm16(&[2.0, f32::NAN], gain(&[2.0, f32::NAN], false, 1.0)),
            vec![32767, 0]
        );
        assert_eq!(to_pcm16(&[0.0, 0.0], gain(&[0.0, 0.0], true, 1.0)), vec![0, 0]);
        assert_eq!(to_pcm16(&[0.5], gain(&[0.5], true, 0.5)), vec![16384]);
    }

    #[test]
    fn a_continuation_keeps_the_first_gain_unless_it_would_clip() {
        // Quieter than the first chunk: same gain.
        assert_eq!(continuation(&[0.1, -0.2], 2.0, true, 1.0, 22_050), vec![6553, -13107]);
        // Louder: lowered to its own gain by the first sample that would
        // clip, so nothing clips.
        let audio: Vec<f32> = (0..1000).map(|i| if i == 500 { 0.8 } else { 0.3 }).collect();
        let pcm = continuation(&audio, 2.0, true, 1.0, 22_050);
        assert_eq!(pcm[500], 32767);
        assert!(pcm.iter().all(|&s| s < 32767 || s == pcm[500]));
        assert_eq!(pcm[0], sample(0.3, 2.0 + (1.25 - 2.0) / 220.0));
        assert_eq!(pcm[219], sample(0.3, 1.25));
        assert_eq!(pcm[999], sample(0.3, 1.25));
        // Loud at once: no room for a ramp.
        let pcm = continuation(&[0.8, 0.3], 2.0, true, 1.0, 22_050);
        assert_eq!(pcm, vec![32767, sample(0.3, 1.25)]);
        // Without normalisation the gain is the volume throughout.
        assert_eq!(continuation(&[0.8], 0.5, false, 0.5, 22_050), vec![13107]);
    }
}
