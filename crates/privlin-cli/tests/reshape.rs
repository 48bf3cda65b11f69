//! The `shallow` preset end to end: SENet budgets and masks, the reshape stage (gated branching,
//! auxiliary classifier serving), private inference of the reshaped model, `info` and `eval` on it.
mod common;

use common::{privlin, s};

#[test]
fn shallow_preset_reshapes_and_runs_under_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let cfg = common::pipeline_config(
        dir.path(),
        r#"preset = "shallow"
budget = "3%"

[model]
arch = "resnet18"
width = 0.125

[data]
source = "synthetic"
train_per_class = 20
test_per_class = 5

[importance]
density = 0.2

[reshape]
d_th = 0.5
aux = "serve"
ramp_epochs = 0
init_batches = 2

[pi]
images = 2
"#,
    );
    let (ok, out, err) = privlin(&["plan", s(&cfg)]);
    assert!(
        ok && out.contains("reshape") && !out.contains("finetune"),
        "{out}{err}"
    );
    let (ok, out, err) = privlin(&["run", s(&cfg)]);
    assert!(ok, "{err}");
    assert!(
        out.contains("private inference of 2 test images: private class = float class on 2/2"),
        "{out}"
    );
    let final_ = run.join("final");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(final_.join("spec.json")).unwrap()).unwrap();
    let shallow = spec["model"]["shallow"].as_array().expect("shallow blocks");
    assert!(!shallow.is_empty(), "{spec}");
    assert_eq!(spec["model"]["aux"]["serve"], true);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(final_.join("reshape.json")).unwrap())
            .unwrap();
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{r}");
    let depth = |i: usize| rows[i]["layer_depth"].as_u64().unwrap();
    assert_eq!(depth(1), 16);
    let selected = r["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["selected"] == true)
        .count() as u64;
    assert!(selected >= shallow.len() as u64);
    assert_eq!(
        depth(2),
        16 - selected,
        "one convolution less per shallow block"
    );
    assert!(std::fs::read_to_string(final_.join("reshape.md"))
        .unwrap()
        .contains("MAC saving"));
    // The private-inference measurement sees the served model's MACs and ReLUs.
    let pi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pi/pi.json")).unwrap()).unwrap();
    assert_eq!(pi["partial"]["active_relus"], rows[3]["relus"], "{pi}");
    let (ok, out, err) = privlin(&["info", "--ckpt", s(&final_)]);
    assert!(ok, "{err}");
    assert!(
        out.contains("Depth reduction: shallow blocks") && out.contains("aux"),
        "{out}"
    );
    assert!(out.contains(&format!("layer depth {}", depth(3))), "{out}");
    let (ok, out, err) = privlin(&["eval", "--ckpt", s(&final_)]);
    assert!(ok, "{err}");
    assert!(out.contains("top-1") && out.contains("ReLUs"), "{out}");
    // The gated training directory is no export.
    let (ok, _, err) = privlin(&[
        "pi",
        "export",
        "--ckpt",
        s(&final_.join("gated")),
        "--out",
        s(&dir.path().join("x")),
    ]);
    assert!(!ok, "exported a training directory");
    assert!(
        err.contains("still gated") || err.contains("not a privlin checkpoint"),
        "{err}"
    );
    // A bad threshold is refused before anything runs, naming the field.
    let (ok, _, err) = privlin(&["run", s(&cfg), "--set", "reshape.d_th=2"]);
    assert!(!ok && err.contains("d_th"), "{err}");
}
