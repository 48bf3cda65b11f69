//! Batches assembled in parallel (rayon) on a prefetching thread, deterministic for a given seed:
//! the shuffle of epoch `e` and the jitter of each image depend only on `(seed, e, position)`.

use super::augment::{render, Jitter};
use super::{Dataset, Normalization};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use tch::{Device, Tensor};

/// Images `(N, 3, S, S)` normalized, and labels `(N,)`.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Batch {
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct Loader {
    pub data: Arc<Dataset>,
    pub norm: Normalization,
    pub batch_size: usize,
    pub shuffle: bool,
    pub augment: bool,
    pub drop_last: bool,
    pub seed: u64,
    pub device: Device,
    pub channels_last: bool,
}

struct HostBatch {
    images: Vec<f32>,
    labels: Vec<i64>,
}

fn mix(seed: u64, epoch: u64, salt: u64) -> u64 {
    // SplitMix64-style mixing of (seed, epoch, salt).
    let mut z = seed
        .wrapping_add(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Loader {
    /// An evaluation loader: no shuffle, no augmentation, keeps the last partial batch.
    pub fn eval(
        data: Arc<Dataset>,
        norm: Normalization,
        batch_size: usize,
        device: Device,
    ) -> Self {
        Loader {
            data,
            norm,
            batch_size,
            shuffle: false,
            augment: false,
            drop_last: false,
            seed: 0,
            device,
            channels_last: false,
        }
    }

    /// A training loader: shuffled, augmented (if `augment`), drops the last partial batch.
    pub fn train(
        data: Arc<Dataset>,
        norm: Normalization,
        batch_size: usize,
        seed: u64,
        augment: bool,
        device: Device,
    ) -> Self {
        Loader {
            shuffle: true,
            augment,
            drop_last: true,
            seed,
            ..Loader::eval(data, norm, batch_size, device)
        }
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.data.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order of images in epoch `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if self.shuffle {
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(self.seed, epoch, 0)));
        }
        idx
    }

    fn assemble(&self, epoch: u64, start: usize, indices: &[usize]) -> HostBatch {
        let d = &self.data;
        let px = d.pixels();
        let mut images = vec![0f32; indices.len() * px];
        images.par_chunks_mut(px).enumerate().for_each(|(k, dst)| {
            let i = indices[k];
            let j = if self.augment {
                let mut rng =
                    ChaCha8Rng::seed_from_u64(mix(self.seed, epoch, 1 + (start + k) as u64));
                Jitter::sample(&mut rng, 4)
            } else {
                Jitter::NONE
            };
            render(d.image(i), d.size, j, &self.norm, dst);
        });
        HostBatch {
            images,
            labels: indices.iter().map(|&i| d.labels[i]).collect(),
        }
    }

    fn to_batch(&self, h: HostBatch) -> Batch {
        let n = h.labels.len() as i64;
        let s = self.data.size;
        let mut images = Tensor::from_slice(&h.images)
            .view([n, 3, s, s])
            .to_device(self.device);
        if self.channels_last {
            images = crate::nn::layers::to_channels_last(&images);
        }
        Batch {
            images,
            labels: Tensor::from_slice(&h.labels).to_device(self.device),
        }
    }

    /// The batches of epoch `epoch`, assembled two ahead on a background thread.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Batch> + '_ {
        let order = self.order(epoch);
        let nb = self.batches_per_epoch();
        let (tx, rx): (_, Receiver<HostBatch>) = sync_channel(2);
        let me = self.clone();
        std::thread::spawn(move || {
            for b in 0..nb {
                let start = b * me.batch_size;
                let end = (start + me.batch_size).min(order.len());
                if tx
                    .send(me.assemble(epoch, start, &order[start..end]))
                    .is_err()
                {
                    break;
                }
            }
        });
        rx.into_iter().map(move |h| self.to_batch(h))
    }
}
