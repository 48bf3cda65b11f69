//! `privlin import` and `privlin export-onnx` from the command line: a network written in
//! PyTorch (python/onnx_models.py) imported, run through the whole pipeline on synthetic data
//! (private inference of two test images included), exported back to ONNX with its masks;
//! refusals that name the node and write nothing.
mod common;

use common::{privlin, s};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}

/// Runs a Python script in the venv (an ONNX model written with the onnx helper).
fn run_python(script: &str) {
    let out = Command::new(python())
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn generate(dir: &Path, models: &str) {
    let out = Command::new(python())
        .current_dir(repo().join("python"))
        .args(["onnx_models.py", "--models", models, "--out"])
        .arg(dir)
        .output()
        .expect("running python/onnx_models.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_imported_model_runs_the_pipeline_through_private_inference() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "plain_cnn");
    let ckpt = dir.path().join("imported");
    let (ok, out, err) = privlin(&[
        "import",
        s(&dir.path().join("plain_cnn.onnx")),
        "--out",
        s(&ckpt),
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("3 sites"), "{out}");
    let body = common::tiny_pipeline_with_pi()
        .replace(
            "arch = \"resnet9\"\nwidth = 0.125",
            &format!("from = \"{}\"", ckpt.display()),
        )
        .replace("preset = \"senet\"", "preset = \"privshap\"")
        .replace("budget = \"4%\"", "budget = \"20%\"");
    let cfg = common::pipeline_config(dir.path(), &body);
    let (ok, _, err) = privlin(&["run", s(&cfg)]);
    assert!(ok, "{err}");
    assert!(err.contains("model: graph"), "{err}");
    assert!(
        err.contains("private inference of 2 test images: private class = float class on"),
        "{err}"
    );
    let run = dir.path().join("run");
    let pi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pi/pi.json")).unwrap()).unwrap();
    assert_eq!(pi["images"], 2);
    // The protocol computes the fixed-point model exactly.
    assert_eq!(pi["gc_overflows"], 0, "{pi}");
    // The fine-tuned partial-ReLU model back to ONNX, with its masks.
    let onnx = dir.path().join("final.onnx");
    let (ok, out, err) = privlin(&[
        "export-onnx",
        "--ckpt",
        s(&run.join("final")),
        "--out",
        s(&onnx),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("partial"), "{out}");
    assert!(onnx.exists());
}

#[test]
fn import_refusals_name_the_node_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // An operation privlin does not run: a Sigmoid, written with the onnx helper.
    let model = dir.path().join("sigmoid.onnx");
    let script = format!(
        r#"
import onnx
from onnx import helper, TensorProto
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="gate")], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), r"{}")
"#,
        model.display()
    );
    run_python(&script);
    let target = dir.path().join("out");
    let (ok, _, err) = privlin(&["import", s(&model), "--out", s(&target)]);
    assert!(!ok);
    assert!(
        err.contains("node `gate`")
            && err.contains("`Sigmoid` is not supported")
            && err.contains("Conv"),
        "{err}"
    );
    assert!(!target.exists(), "nothing is written on failure");
    // Not ONNX at all.
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\xff\xff\xff\xff not a protobuf").unwrap();
    let (ok, _, err) = privlin(&["import", s(&junk), "--out", s(&target)]);
    assert!(!ok && err.contains("junk.onnx"), "{err}");
    assert!(!target.exists());
    // The graph's class count is checked against --classes.
    generate(dir.path(), "concat_cnn");
    let (ok, _, err) = privlin(&[
        "import",
        s(&dir.path().join("concat_cnn.onnx")),
        "--out",
        s(&target),
        "--classes",
        "100",
    ]);
    assert!(!ok && err.contains("--classes 100"), "{err}");
    assert!(!target.exists());
    // Private inference says which node the engine cannot run yet: a dilated convolution.
    let dilated = dir.path().join("dilated.onnx");
    let script = format!(
        r#"
import numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
fw = numpy_helper.from_array(np.ones((4, 4), np.float32), "fw")
nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="wide", dilations=[2, 2]),
         helper.make_node("Relu", ["c"], ["r"], name="act"),
         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
         helper.make_node("Flatten", ["p"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)]
g = helper.make_graph(nodes, "g", [x], [y], [w, fw])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), r"{}")
"#,
        dilated.display()
    );
    run_python(&script);
    let ckpt = dir.path().join("dilated");
    let (ok, _, err) = privlin(&[
        "import",
        s(&dilated),
        "--out",
        s(&ckpt),
        "--input-size",
        "8",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = privlin(&[
        "pi",
        "export",
        "--ckpt",
        s(&ckpt),
        "--out",
        s(&dir.path().join("pi")),
    ]);
    assert!(
        !ok && err.contains("node `wide`") && err.contains("dilated"),
        "{err}"
    );
}

/// torchvision's stem (7x7 stride 2, a 3x3 max-pool of stride 2 and padding 1), a
/// concatenation of two branches and MobileNetV2's depthwise convolutions and ReLU6 sites run
/// under the protocol: the private class is the fixed-point model's on every image, no value
/// leaves the circuits' range.
#[test]
fn imported_stems_and_concatenations_run_privately() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "tv_resnet18,concat_cnn,mobilenet_v2");
    for m in ["tv_resnet18", "concat_cnn", "mobilenet_v2"] {
        let ckpt = dir.path().join(m);
        let (ok, _, err) = privlin(&[
            "import",
            s(&dir.path().join(format!("{m}.onnx"))),
            "--out",
            s(&ckpt),
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0.25,0.25,0.25",
        ]);
        assert!(ok, "{err}");
        let out = dir.path().join(format!("{m}-pi"));
        let (ok, _, err) = privlin(&[
            "pi",
            "measure",
            "--ckpt",
            s(&ckpt),
            "--out",
            s(&out),
            "--images",
            "2",
        ]);
        assert!(ok, "{m}: {err}");
        let pi: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("pi.json")).unwrap()).unwrap();
        assert_eq!(pi["images"], 2, "{m}");
        assert_eq!(pi["gc_overflows"], 0, "{m}: {pi}");
        assert_eq!(pi["agree_fixed_point"], pi["agree_float"], "{m}: {pi}");
    }
}
