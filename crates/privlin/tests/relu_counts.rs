//! ReLU counts pinned to shared/docs/reference.md, and structural invariants of every architecture.
use privlin::nn::{Arch, Convention, Model, ModelSpec, SiteKind};
use tch::Device;

fn model(arch: &str, input: i64, conv: Convention) -> Model {
    let mut s = ModelSpec::new(arch.parse::<Arch>().unwrap());
    s.input_size = input;
    s.convention = conv;
    Model::new(s, Device::Cpu).unwrap()
}

#[test]
fn resnet18_counts_match_reference() {
    let m = model("resnet18", 32, Convention::ALL);
    assert_eq!(m.relu_count(), 557_056);
    assert_eq!(m.sites()[0].kind, SiteKind::Stem);
    assert_eq!(m.sites()[0].count(), 65_536);
    assert_eq!(model("resnet18", 32, Convention::SNL).relu_count(), 491_520);
    assert_eq!(
        model("resnet18", 64, Convention::ALL).relu_count(),
        2_228_224
    );
    assert_eq!(
        model("resnet18", 64, Convention::SNL).relu_count(),
        1_966_080
    );
}

#[test]
fn wrn_22_8_counts_match_reference() {
    assert_eq!(
        model("wrn-22-8", 32, Convention::SNL).relu_count(),
        1_359_872
    );
    let m = model("wrn-22-8", 32, Convention::RELUPRUNER);
    assert_eq!(m.relu_count(), 1_392_640);
    assert_eq!(m.sites().last().unwrap().kind, SiteKind::Final);
}

#[test]
fn resnet9_has_eight_relu_layers() {
    let m = model("resnet9", 32, Convention::ALL);
    assert_eq!(m.sites().len(), 8);
}

#[test]
fn resnet18_macs_and_params() {
    let m = model("resnet18", 32, Convention::ALL);
    // 0.56 GMACs and 11.17 M parameters for the CIFAR ResNet-18 (10 classes).
    assert_eq!(m.num_parameters(), 11_173_962);
    let macs = m.macs_total();
    assert!((550_000_000..560_000_000).contains(&macs), "{macs}");
    assert_eq!(
        m.layers()
            .iter()
            .filter(|l| l.kind == privlin::nn::LayerKind::Conv)
            .count(),
        20
    );
}

#[test]
fn site_names_are_unique_and_post_add_sites_close_blocks() {
    for arch in [
        "resnet9", "resnet34", "resnet50", "vgg11", "vgg16", "wrn-16-2",
    ] {
        let mut s = ModelSpec::new(arch.parse().unwrap());
        s.width = 0.25;
        let m = Model::new(s, Device::Cpu).unwrap();
        let mut names: Vec<_> = m.sites().iter().map(|s| s.name.clone()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{arch}: duplicate site names");
        let post = m
            .sites()
            .iter()
            .filter(|s| s.kind == SiteKind::PostAdd)
            .count();
        match arch {
            "resnet34" => assert_eq!(post, 16),
            "resnet50" => assert_eq!((post, n), (16, 49)),
            "vgg11" => assert_eq!((post, n), (0, 8)),
            "vgg16" => assert_eq!((post, n), (0, 13)),
            _ => {}
        }
    }
}

#[test]
fn silu_and_64px_inputs_build() {
    let mut s = ModelSpec::new(Arch::Resnet18);
    s.width = 0.25;
    s.input_size = 64;
    s.classes = 200;
    s.activation = privlin::nn::Activation::Silu;
    let m = Model::seeded(s, Device::Cpu, 0).unwrap();
    let x = privlin::nn::with_torch_seed(0, || {
        tch::Tensor::randn([2, 3, 64, 64], (tch::Kind::Float, Device::Cpu))
    });
    let y = m.forward(&x, false);
    assert_eq!(y.size(), vec![2, 200]);
}

#[test]
fn bad_specs_are_refused_with_a_reason() {
    let e = "resnet19".parse::<Arch>().unwrap_err().to_string();
    assert!(e.contains("resnet19") && e.contains("wrn-D-K"), "{e}");
    let e = "wrn-23-8".parse::<Arch>().unwrap_err().to_string();
    assert!(e.contains("6n+4"), "{e}");
    let mut s = ModelSpec::new(Arch::Vgg11);
    s.input_size = 20;
    let e = Model::new(s, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("input size 20"), "{e}");
}
