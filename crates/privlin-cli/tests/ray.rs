//! The Ray executor on a local Ray cluster of 2 CPUs that each test starts and stops: a sweep
//! gives exactly the files and numbers of the in-process executor, a task that fails once is
//! retried, and a Shapley game sharded over Ray actors gives the values of one process.
//!
//! Needs Ray in the project's venv (`bash scripts/setup.sh --ray`; `scripts/test.sh` does it).
//! These tests fail, not skip, without it. To leave them out, filter them so that cargo counts
//! them as filtered out, not passed: `cargo test --workspace -- --skip ray_`.

mod common;
use common as stages;
use common::{privlin, privlin_env, s};
use std::process::Command;

/// One local Ray instance at a time: two on a 2-core machine starve each other.
static ONE_RAY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ray_available() {
    let py = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
    let ok = Command::new(py)
        .args(["-c", "import ray"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "Ray is not installed in .venv: run `bash scripts/setup.sh --ray` (or leave these tests out with `-- --skip ray_`)"
    );
}

#[test]
fn ray_sweep_gives_the_files_of_one_process_and_retries_a_failed_task() {
    let _one = ONE_RAY.lock().unwrap_or_else(|e| e.into_inner());
    ray_available();
    let dir = tempfile::tempdir().unwrap();
    let (reference, on_ray) = (dir.path().join("seq"), dir.path().join("ray"));
    for d in [&reference, &on_ray] {
        std::fs::create_dir_all(d).unwrap();
        stages::sweep_config(d);
    }
    let cfg = reference.join("run.toml");
    let mut args = vec!["sweep", s(&cfg)];
    args.extend(stages::SWEEP);
    let (ok, _, err) = privlin(&args);
    assert!(ok, "{err}");
    let cfg = on_ray.join("run.toml");
    let mut args = vec!["sweep", s(&cfg)];
    args.extend(stages::SWEEP);
    args.extend(["--executor", "ray", "--ray-cpus", "2", "--retries", "1"]);
    let (ok, _, err) = privlin_env(&args, "PRIVLIN_FAIL_ONCE", "relupruner/3pct/finetune");
    assert!(ok, "{err}");
    assert!(
        err.contains("injected failure"),
        "the task failed once: {err}"
    );
    assert!(err.contains("ray: 21 stages done"), "{err}");
    let (a, b) = (reference.join("run"), on_ray.join("run"));
    assert_eq!(stages::numbers(&a), stages::numbers(&b));
    let (wa, wb) = (stages::weights(&a), stages::weights(&b));
    assert_eq!(wa.len(), wb.len());
    for (x, y) in wa.iter().zip(&wb) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between the executors", x.0);
    }
}

#[test]
fn ray_game_sharded_over_actors_gives_the_values_of_one_process() {
    let _one = ONE_RAY.lock().unwrap_or_else(|e| e.into_inner());
    ray_available();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = stages::tiny_checkpoint(dir.path());
    let extra = ["--method", "shapley-exact"];
    let (one, u1) = stages::game(dir.path(), &ckpt, "one", &extra);
    let (two, u2) = stages::game(
        dir.path(),
        &ckpt,
        "ray",
        &[
            "--method",
            "shapley-exact",
            "--workers",
            "2",
            "--utility-workers",
            "ray",
        ],
    );
    assert_eq!(one["values"], two["values"]);
    assert_eq!(u1, u2, "every utility, bit for bit");
    assert_eq!(two["params"]["workers"], 2);
}
