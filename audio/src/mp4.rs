//! The edit list of the sound track of an MP4 (M4A) file, which symphonia reads but does not
//! apply: where the audio starts in the decoded samples (AAC encoders put 1024 or 2112 samples of
//! priming first) and how long it plays (the rest of the last frame is padding).
//!
//! Boxes are walked with bounds checks only; anything unexpected yields `None`, and the audio is
//! then decoded untrimmed, as before.

/// The part of the decoded audio to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// Samples to drop at the start, in `media_timescale` units (the track's; usually its rate).
    pub skip: u64,
    pub media_timescale: u32,
    /// How long to play after that, in `movie_timescale` units; `None` for all of it.
    pub duration: Option<u64>,
    pub movie_timescale: u32,
}

/// The edit of the first sound track of `file`, if it has one that trims something.
pub(crate) fn audio_edit(file: &[u8]) -> Option<Edit> {
    let moov = find(file, b"moov")?;
    let movie_timescale = timescale(find(moov, b"mvhd")?)?;
    boxes(moov).filter(|(kind, _)| kind == b"trak").find_map(|(_, trak)| {
        let mdia = find(trak, b"mdia")?;
        let handler = find(mdia, b"hdlr")?;
        if handler.get(8..12)? != b"soun" {
            return None;
        }
        let media_timescale = timescale(find(mdia, b"mdhd")?)?;
        let (duration, skip) = first_edit(find(find(trak, b"edts")?, b"elst")?)?;
        Some(Edit {
            skip,
            media_timescale,
            duration: (duration > 0).then_some(duration),
            movie_timescale,
        })
    })
}

/// The boxes in `data`: (type, payload).
fn boxes(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as u64;
        let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            // A 64-bit size follows the type.
            1 => (16, u64::from_be_bytes(data.get(8..16)?.try_into().ok()?)),
            // To the end of the enclosing box.
            0 => (8, data.len() as u64),
            n => (8, n),
        };
        let size = usize::try_from(size).ok().filter(|&s| s >= header && s <= data.len())?;
        let payload = &data[header..size];
        data = &data[size..];
        Some((kind, payload))
    })
}

fn find<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, payload)| payload)
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The timescale of an `mvhd` or `mdhd` box (the same layout up to it).
fn timescale(full_box: &[u8]) -> Option<u32> {
    let at = if *full_box.first()? == 1 { 20 } else { 12 };
    be_u32(full_box, at).filter(|&t| t > 0)
}

/// The first edit of an `elst` box that plays media (not an empty edit, media time -1):
/// (segment duration, media time).
fn first_edit(elst: &[u8]) -> Option<(u64, u64)> {
    let version = *elst.first()?;
    let count = be_u32(elst, 4)? as usize;
    let entry = if version == 1 { 20 } else { 12 };
    (0..count.min(16)).find_map(|i| {
        let at = 8 + i * entry;
        let (duration, time) = if version == 1 {
            (be_u64(elst, at)?, be_u64(elst, at + 8)? as i64)
        } else {
            (u64::from(be_u32(elst, at)?), i64::from(be_u32(elst, at + 4)? as i32))
        };
        u64::try_from(time).ok().map(|time| (duration, time))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        [&(payload.len() as u32 + 8).to_be_bytes()[..], kind, payload].concat()
    }

    #[test]
    fn reads_the_priming_and_duration_of_the_sound_track() {
        let mvhd = mk(b"mvhd", &[&[0u8; 12][..], &1000u32.to_be_bytes(), &[0; 4]].concat());
        let hdlr = mk(b"hdlr", &[&[0; 8][..], b"soun"].concat());
        let mdhd = mk(b"mdhd", &[&[0u8; 12][..], &44_100u32.to_be_bytes(), &[0; 4]].concat());
        let elst = mk(
            b"elst",
            &[
                &[0u8; 4][..],
                &1u32.to_be_bytes(),
                &11_000u32.to_be_bytes(),
                &1024u32.to_be_bytes(),
                &[0, 1, 0, 0],
            ]
            .concat(),
        );
        let trak = mk(
            b"trak",
            &[mk(b"edts", &elst), mk(b"mdia", &[hdlr, mdhd].concat())].concat(),
        );
        let file = [mk(b"ftyp", b"M4A "), mk(b"moov", &[mvhd, trak].concat())].concat();
        assert_eq!(
            audio_edit(&file),
            Some(Edit {
                skip: 1024,
                media_timescale: 44_100,
                duration: Some(11_000),
                movie_timescale: 1000
            })
        );
        // Cut anywhere: no edit, no panic.
        for n in 0..file.len() {
            assert_eq!(audio_edit(&file[..n]), None);
        }
    }
}
