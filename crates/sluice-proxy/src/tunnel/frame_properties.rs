//! Property tests of the frame tracker against a reference decoder: any frames,
//! cut anywhere, end where the reference says, with the right opcode.

use proptest::collection::vec;
use proptest::prelude::*;

use super::frame::FrameTracker;

/// How a frame's payload length is written: the shortest form, or a longer
/// one (RFC 6455 wants the shortest; the tracker follows any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LenForm {
    Shortest,
    Ext16,
    Ext64,
}

/// A generated frame.
#[derive(Debug, Clone)]
struct Spec {
    fin: bool,
    /// RSV1..3 (RSV1 on a permessage-deflate compressed frame).
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    form: LenForm,
    len: usize,
    /// Seed of the payload's bytes.
    seed: u64,
}

impl Spec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push((u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode);
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        let form = match self.form {
            LenForm::Shortest if self.len < 126 => LenForm::Shortest,
            LenForm::Shortest | LenForm::Ext16 if self.len <= 0xFFFF => LenForm::Ext16,
            _ => LenForm::Ext64,
        };
        match form {
            LenForm::Shortest => out.push(m | self.len as u8),
            LenForm::Ext16 => {
                out.push(m | 126);
                out.extend_from_slice(&(self.len as u16).to_be_bytes());
            }
            LenForm::Ext64 => {
                out.push(m | 127);
                out.extend_from_slice(&(self.len as u64).to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
        // Arbitrary-looking payload bytes (xorshift), masked as a client would.
        let mut x = self.seed | 1;
        out.extend((0..self.len).map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) ^ self.mask.map_or(0, |k| k[i % 4])
        }));
    }
}

/// A frame as the reference decoder reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RefFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    len: u64,
    /// Offset just after the frame.
    end: usize,
}

/// Splits a stream of complete frames (RFC 6455 §5.2) into frames.
fn reference(stream: &[u8]) -> Vec<RefFrame> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let b0 = stream[at];
        let b1 = stream[at + 1];
        let masked = b1 & 0x80 != 0;
        let (len, ext) = match b1 & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([stream[at + 2], stream[at + 3]])),
                2,
            ),
            127 => {
                let mut n = [0; 8];
                n.copy_from_slice(&stream[at + 2..at + 10]);
                (u64::from_be_bytes(n), 8)
            }
            n => (u64::from(n), 0),
        };
        let header = 2 + ext + if masked { 4 } else { 0 };
        let end = at + header + usize::try_from(len).unwrap();
        assert!(end <= stream.len(), "truncated frame");
        frames.push(RefFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0F,
            masked,
            len,
            end,
        });
        at = end;
    }
    frames
}

/// Feeds `stream` to a tracker in the pieces `cuts` make, calling `feed`
/// again on the rest of a piece after each frame end. Returns each frame
/// end as (offset after it, opcode); checks `at_boundary` after every call.
fn track(
    stream: &[u8],
    cuts: &[usize],
    boundaries: &[usize],
) -> Result<Vec<(usize, u8)>, TestCaseError> {
    let mut t = FrameTracker::default();
    let mut ends = Vec::new();
    let mut pos = 0;
    for end in cuts.iter().copied().chain([stream.len()]) {
        // An empty read changes nothing.
        let before = t.at_boundary();
        prop_assert_eq!(t.feed(&[]), (0, None));
        prop_assert_eq!(t.at_boundary(), before);
        let mut piece = &stream[pos..end];
        while !piece.is_empty() {
            let (used, frame_end) = t.feed(piece);
            prop_assert!(
                used > 0 && used <= piece.len(),
                "used {} of {}",
                used,
                piece.len()
            );
            pos += used;
            piece = &piece[used..];
            match frame_end {
                Some(e) => ends.push((pos, e.opcode)),
                None => prop_assert!(piece.is_empty(), "stopped at {} without a frame end", pos),
            }
            prop_assert_eq!(
                t.at_boundary(),
                boundaries.binary_search(&pos).is_ok(),
                "at_boundary at {}",
                pos
            );
        }
    }
    Ok(ends)
}

fn spec(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(0u8), 1 => Just(0b100), 1 => 0u8..8],
        0u8..=15,
        proptest::option::of(any::<[u8; 4]>()),
        prop_oneof![
            6 => Just(LenForm::Shortest),
            1 => Just(LenForm::Ext16),
            1 => Just(LenForm::Ext64)
        ],
        len,
        any::<u64>(),
    )
        .prop_map(|(fin, rsv, opcode, mask, form, len, seed)| Spec {
            fin,
            rsv,
            opcode,
            mask,
            form,
            len,
            seed,
        })
}

/// Cut points: a few anywhere, or (`every`) between every byte.
fn cuts(len: usize, every: bool, picks: &[prop::sample::Index]) -> Vec<usize> {
    if every {
        return (1..len).collect();
    }
    let mut cuts: Vec<usize> = picks.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn check(frames: &[Spec], every: bool, picks: &[prop::sample::Index]) -> Result<(), TestCaseError> {
    let mut stream = Vec::new();
    for f in frames {
        f.encode(&mut stream);
    }
    let reference = reference(&stream);
    // The reference reads back what was generated.
    let read_back: Vec<_> = reference
        .iter()
        .map(|r| (r.fin, r.rsv, r.opcode, r.masked, r.len))
        .collect();
    let generated: Vec<_> = frames
        .iter()
        .map(|f| (f.fin, f.rsv, f.opcode, f.mask.is_some(), f.len as u64))
        .collect();
    prop_assert_eq!(read_back, generated);

    let mut boundaries = vec![0];
    boundaries.extend(reference.iter().map(|r| r.end));
    let want: Vec<(usize, u8)> = reference.iter().map(|r| (r.end, r.opcode)).collect();
    let got = track(&stream, &cuts(stream.len(), every, picks), &boundaries)?;
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #[test]
    fn frame_ends_are_found_wherever_the_stream_is_cut(
        frames in vec(spec(prop_oneof![4 => 0usize..126, 1 => 126usize..400]), 0..20),
        every in prop::bool::weighted(0.2),
        picks in vec(any::<prop::sample::Index>(), 0..40),
    ) {
        check(&frames, every, &picks)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Longer frames, some over 65535 bytes (the 64-bit length form in its
    /// shortest use).
    #[test]
    fn long_frames_are_followed_too(
        frames in vec(
            spec(prop_oneof![
                2 => 0usize..300,
                1 => 126usize..=70_000,
                1 => 65_530usize..=65_540,
            ]),
            1..5,
        ),
        picks in vec(any::<prop::sample::Index>(), 0..40),
    ) {
        check(&frames, false, &picks)?;
    }
}
