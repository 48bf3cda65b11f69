//! Standard CIFAR augmentation (pad-4 random crop, horizontal flip) fused with normalization:
//! one pass from a `u8` CHW image to a normalized `f32` CHW image.

use super::Normalization;
use rand::Rng;

/// Crop offset and flip of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    pub dy: i64,
    pub dx: i64,
    pub flip: bool,
}

impl Jitter {
    pub const NONE: Jitter = Jitter {
        dy: 0,
        dx: 0,
        flip: false,
    };

    /// Offsets in `[-pad, pad]`, flip with probability 1/2 (torchvision's `RandomCrop(padding=pad)`
    /// then `RandomHorizontalFlip()`, zero padding).
    pub fn sample<R: Rng>(rng: &mut R, pad: i64) -> Self {
        Jitter {
            dy: rng.gen_range(-pad..=pad),
            dx: rng.gen_range(-pad..=pad),
            flip: rng.gen_bool(0.5),
        }
    }
}

/// Write `src` (u8, CHW, `size x size`) shifted by `j` and normalized into `dst`.
pub fn render(src: &[u8], size: i64, j: Jitter, norm: &Normalization, dst: &mut [f32]) {
    let plane = (size * size) as usize;
    for c in 0..3 {
        let scale = 1.0 / (255.0 * norm.std[c]);
        let shift = -norm.mean[c] / norm.std[c];
        let s = &src[c * plane..(c + 1) * plane];
        let d = &mut dst[c * plane..(c + 1) * plane];
        for y in 0..size {
            let sy = y + j.dy;
            for x in 0..size {
                let xx = if j.flip { size - 1 - x } else { x };
                let sx = xx + j.dx;
                let v = if sy >= 0 && sy < size && sx >= 0 && sx < size {
                    s[(sy * size + sx) as usize] as f32
                } else {
                    0.0
                };
                d[(y * size + x) as usize] = v * scale + shift;
            }
        }
    }
}
