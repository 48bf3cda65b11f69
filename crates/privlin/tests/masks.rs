//! Activation sites: m * act(x) + (1 - m) * x at every granularity, gradients to masks, taps.
use privlin::nn::{with_torch_seed, Granularity, MaskSet, Model, ModelSpec, SiteMask};
use tch::{Device, Kind, Tensor};

fn small() -> Model {
    let mut s = ModelSpec::new("resnet18".parse().unwrap());
    s.width = 0.125;
    Model::seeded(s, Device::Cpu, 1).unwrap()
}

fn input() -> Tensor {
    with_torch_seed(2, || {
        Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu))
    })
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn ones_masks_equal_plain_relu_and_zero_masks_equal_identity() {
    let m = small();
    let x = input();
    let plain = m.forward(&x, false);
    for g in [Granularity::Pixel, Granularity::Channel, Granularity::Layer] {
        let ones = MaskSet::ones(m.sites(), g, false, Device::Cpu);
        assert!(
            max_diff(&plain, &m.forward_masked(&x, false, &ones)) < 1e-6,
            "{g:?}"
        );
    }
    let n = m.sites().len();
    let ident = m.forward_masked(&x, false, &MaskSet::coalition(&vec![false; n]));
    let mut zeros = MaskSet::ones(m.sites(), Granularity::Channel, false, Device::Cpu);
    for i in 0..n {
        zeros.set(
            i,
            SiteMask::Tensor(Tensor::zeros(
                [m.sites()[i].shape[0], 1, 1],
                (Kind::Float, Device::Cpu),
            )),
        );
    }
    assert!(max_diff(&ident, &m.forward_masked(&x, false, &zeros)) < 1e-5);
    assert!(
        max_diff(&ident, &plain) > 1e-3,
        "linearizing every site must change the output"
    );
}

#[test]
fn taps_hold_pre_and_post_activations_of_every_site() {
    let m = small();
    let x = input();
    let mut half = MaskSet::ones(m.sites(), Granularity::Pixel, false, Device::Cpu);
    let s0 = m.sites()[0].shape;
    // Site 0: keep the ReLU on the first half of the channels only.
    let mask0 = Tensor::cat(
        &[
            Tensor::ones([s0[0] / 2, s0[1], s0[2]], (Kind::Float, Device::Cpu)),
            Tensor::zeros(
                [s0[0] - s0[0] / 2, s0[1], s0[2]],
                (Kind::Float, Device::Cpu),
            ),
        ],
        0,
    );
    half.set(0, SiteMask::Tensor(mask0.shallow_clone()));
    let mut f = m.pass(false).with_masks(&half).with_taps();
    let _ = m.forward_with(&x, &mut f);
    let taps = f.take_taps();
    assert_eq!(taps.len(), m.sites().len());
    for (t, s) in taps.iter().zip(m.sites()) {
        assert_eq!(&t.pre.size()[1..], &s.shape[..]);
    }
    let expect = &taps[0].pre.relu() * &mask0 + &taps[0].pre * (1.0 - &mask0);
    assert!(max_diff(&taps[0].post, &expect) < 1e-6);
    assert!(max_diff(&taps[1].post, &taps[1].pre.relu()) < 1e-6);
    assert_eq!(half.counts(m.sites()).unwrap()[0], m.sites()[0].count() / 2);
}

#[test]
fn masks_receive_gradients() {
    let m = small();
    let x = input();
    let masks = MaskSet::ones(m.sites(), Granularity::Pixel, true, Device::Cpu);
    let y = m.forward_masked(&x, true, &masks);
    y.sum(Kind::Float).backward();
    for i in 0..masks.len() {
        let SiteMask::Tensor(t) = masks.get(i) else {
            panic!()
        };
        let g = t.grad();
        assert!(g.defined(), "site {i} has no mask gradient");
        assert_eq!(g.size(), t.size());
        assert!(
            g.abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "site {i}: zero mask gradient"
        );
    }
}

#[test]
fn mask_files_round_trip_and_bad_files_are_refused() {
    let m = small();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("masks.safetensors");
    let mut ms = MaskSet::ones(m.sites(), Granularity::Channel, false, Device::Cpu);
    ms.set(2, SiteMask::Identity);
    ms.save(m.sites(), &p).unwrap();
    let back = MaskSet::load(m.sites(), &p, Device::Cpu).unwrap();
    assert_eq!(
        back.counts(m.sites()).unwrap(),
        ms.counts(m.sites()).unwrap()
    );
    assert_eq!(back.counts(m.sites()).unwrap()[2], 0);
    // A mask file of another model names the problem.
    let mut other = ModelSpec::new("resnet18".parse().unwrap());
    other.width = 0.25;
    let om = Model::new(other, Device::Cpu).unwrap();
    let err = MaskSet::load(om.sites(), &p, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mask of site `act1` has shape"), "{err}");
}
