//! Network design from the command line (issue 18): `privlin info --cull --thin`, `privlin
//! design equalize` writing a config that `privlin train` takes, the `deepreduce` preset on a
//! model without a stem ReLU through private inference, and a sweep over several base networks.
mod common;

use common::{pipeline_config, privlin, s};

#[test]
fn info_prices_culled_and_thinned_models_and_refuses_bad_values() {
    let (ok, out, err) = privlin(&["info", "--cull", "stem,s1", "--thin"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("DeepReDuce operations: culled stem, s1; thinned"),
        "{out}"
    );
    assert!(out.contains("ReLUs: 114688 counted"), "{out}");
    let (ok, out, _) = privlin(&["info", "--arch", "hrn-5x7x2x", "--width", "0.25", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["relu_total"], 378_880);
    for (args, needle) in [
        (vec!["info", "--arch", "hrn-5x0x2x"], "beta = 0"),
        (vec!["info", "--arch", "hrn-5x7"], "hrn-5x7"),
        (
            vec!["info", "--cull", "stem,s1,s2,s3,s4"],
            "every counted ReLU",
        ),
        (vec!["info", "--cull", "layer9"], "`layer9`"),
        (
            vec!["info", "--stem-stride", "2", "--input-size", "40"],
            "40x40",
        ),
        (vec!["info", "--thin", "middle"], "`middle`"),
    ] {
        let (ok, _, err) = privlin(&args);
        assert!(!ok && err.contains(needle), "{args:?}: {err}");
    }
}

/// `privlin train ARGS` for one epoch on a few synthetic images into `out`; returns stderr.
fn train_tiny(args: &[&str], out: &std::path::Path) -> String {
    let mut all: Vec<&str> = vec!["train"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--data",
        "synthetic",
        "--train-per-class",
        "10",
        "--test-per-class",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--device",
        "cpu",
        "--out",
        s(out),
    ]);
    let (ok, stdout, err) = privlin(&all);
    assert!(ok, "{stdout}{err}");
    err
}

#[test]
fn equalized_hybrenet_trains_from_the_written_config() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("hrn.toml");
    let (ok, out, err) = privlin(&[
        "design",
        "equalize",
        "--order",
        "S3>S2>S4>S1",
        "--width",
        "0.03125",
        "--out",
        s(&toml),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("* hrn-5x7x2x"), "{out}");
    assert!(
        out.contains("hrn-7x5x2x") && out.contains("hrn-6x6x2x"),
        "{out}"
    );
    let ckpt = dir.path().join("ar");
    let err = train_tiny(&["--config", s(&toml)], &ckpt);
    assert!(!err.contains("distilling"), "{err}");
    let info = |dir: &std::path::Path| -> serde_json::Value {
        let (ok, out, err) = privlin(&["info", "--ckpt", s(dir), "--json"]);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let v = info(&ckpt);
    assert_eq!(v["arch"], "hrn-5x7x2x");
    // m = 2: stem 2,048; stages 8,192 / 10,240 / 17,920 / 8,960.
    assert_eq!(v["relu_total"], 2048 + 8192 + 10240 + 17920 + 8960);
    // A culled, thinned ResNet-18 without a stem ReLU trained with KD from that checkpoint.
    let student = dir.path().join("student");
    let err = train_tiny(
        &[
            "--arch",
            "resnet18",
            "--width",
            "0.0625",
            "--cull",
            "stem,s1",
            "--thin",
            "second",
            "--teacher",
            s(&ckpt),
        ],
        &student,
    );
    assert!(err.contains("distilling from"), "{err}");
    // m = 4: stages 2 to 4 hold 8,192 + 4,096 + 2,048 ReLUs; thinning keeps half.
    assert_eq!(info(&student)["relu_total"], (8192 + 4096 + 2048) / 2);
    // An unknown order is refused before anything is written.
    let bad = dir.path().join("bad.toml");
    let (ok, _, err) = privlin(&["design", "equalize", "--order", "S3>S2", "--out", s(&bad)]);
    assert!(!ok && err.contains("each of the four stages"), "{err}");
    assert!(!bad.exists());
}

/// DeepReDuce on a ResNet-18 without a stem ReLU: criticality measured, stages culled and thinned
/// to the budget, KD, fine-tuning, and the result under the two-party protocol with the float
/// model's class.
#[test]
fn deepreduce_preset_runs_through_private_inference() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = pipeline_config(
        dir.path(),
        r#"preset = "deepreduce"
budget = "30%"

[model]
arch = "resnet18"
width = 0.125
cull = ["stem"]

[data]
source = "synthetic"
train_per_class = 20
test_per_class = 5

[pi]
images = 4
"#,
    );
    let (ok, out, err) = privlin(&["run", s(&cfg)]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("stage criticality by deepreduce"), "{err}");
    let lin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pr/linearize.json")).unwrap())
            .unwrap();
    assert_eq!(lin["method"], "deepreduce");
    assert_eq!(lin["budget_outcome"], "at_most");
    let relus = lin["relus"].as_i64().unwrap();
    assert!(
        relus > 0 && relus <= lin["budget"].as_i64().unwrap(),
        "{lin}"
    );
    // Whole sites: every counted site kept or removed entirely; the stem is not counted.
    for site in lin["sites"].as_array().unwrap() {
        let kept = site["kept"].as_i64().unwrap();
        if site["name"] == "act1" {
            assert_eq!(site["counted"], false);
        } else if site["counted"] == true {
            assert!(
                kept == 0 || kept == site["capacity"].as_i64().unwrap(),
                "{site}"
            );
        }
    }
    assert!(run.join("pr/criticality.json").exists());
    let pi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pi/pi.json")).unwrap()).unwrap();
    assert_eq!(pi["partial"]["active_relus"].as_i64().unwrap(), relus);
    assert!(pi["agree_float"].as_u64().unwrap() >= 3, "{pi}");
}

#[test]
fn sweep_over_base_networks_names_the_winner_per_budget() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = pipeline_config(
        dir.path(),
        r#"preset = "relupruner"
budget = "5%"

[model]
arch = "resnet18"
width = 0.125

[data]
source = "synthetic"
train_per_class = 10
test_per_class = 4

[pi]
images = 0
"#,
    );
    let (ok, out, err) = privlin(&[
        "sweep",
        s(&cfg),
        "--budgets",
        "5%",
        "--models",
        "resnet18@0.0625,hrn-3x2x2x@0.0625",
    ]);
    assert!(ok, "{out}{err}");
    assert!(run.join("models/resnet18_w0.0625/ar/spec.json").exists());
    assert!(run.join("models/hrn_3x2x2x_w0.0625/ar/spec.json").exists());
    let csv = std::fs::read_to_string(run.join("sweep.csv")).unwrap();
    assert!(
        csv.contains("resnet18_w0.0625_relupruner")
            && csv.contains("hrn_3x2x2x_w0.0625_relupruner"),
        "{csv}"
    );
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "macs").unwrap();
    let macs: Vec<i64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    assert!(macs.len() == 2 && macs[0] != macs[1], "{csv}");
    assert!(out.contains("best at 5pct:"), "{out}");
    assert!(run.join("pareto-macs.svg").exists());
    // A second sweep into the same directory (another preset on one of the networks) reuses its
    // all-ReLU model and collects every point, old and new.
    let (ok, out, err) = privlin(&[
        "sweep",
        s(&cfg),
        "--budgets",
        "5%",
        "--models",
        "resnet18@0.0625",
        "--presets",
        "deepreduce",
    ]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("train/resnet18_w0.0625: "), "{err}");
    assert!(err.contains("is complete, skipped"), "{err}");
    let csv = std::fs::read_to_string(run.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.contains("resnet18_w0.0625_deepreduce"), "{csv}");
    let (ok, _, err) = privlin(&["sweep", s(&cfg), "--budgets", "5%", "--models", "hrn-1x"]);
    assert!(!ok && err.contains("hrn-1x"), "{err}");
}
