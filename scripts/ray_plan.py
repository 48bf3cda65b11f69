#!/usr/bin/env python3
"""Run a privlin plan on a Ray cluster: each node of OUT/stages/plan.json becomes one Ray task
that runs `privlin stage run PLAN ID` on a worker, after the tasks of its dependencies.

privlin's executor `--executor ray` calls this script; it decides nothing about skipping or
resuming (the `stage run` process does, from the stamps in the run directory), so the run
directory must be on a filesystem that every Ray node sees at the same path, and the `privlin`
binary must be runnable at the same path on every node.

Resources per task: stages that train (train, linearize, finetune) ask for one GPU where the
cluster has GPUs; an importance stage whose Shapley game is sharded over utility actors only
coordinates (0 CPUs, its actors take the CPUs); every other stage asks for --stage-cpus CPUs.
A task whose process fails is retried (--retries); stamps and artifacts are written atomically,
so a retry never sees half a file.
"""
import argparse
import json
import os
import subprocess
import sys
import time

TRAINING = {"train", "linearize", "finetune", "reshape"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--privlin", required=True, help="the privlin binary")
    ap.add_argument("--address", help="auto or HOST:PORT; none: start a local instance")
    ap.add_argument("--num-cpus", type=int, help="CPUs of a local instance")
    ap.add_argument("--threads", type=int, default=1, help="CPUs and libtorch threads per task")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--stage-arg", action="append", default=[], help="extra `stage run` argument")
    args = ap.parse_args()

    import ray

    plan_path = os.path.abspath(args.plan)
    with open(plan_path) as f:
        plan = json.load(f)
    init = dict(include_dashboard=False, log_to_driver=True, logging_level="warning")
    if args.address:
        ray.init(address=args.address, **init)
    else:
        # A local instance listens on loopback only: a local run never uses another interface.
        ray.init(num_cpus=args.num_cpus, _node_ip_address="127.0.0.1", **init)
    gcs = ray.get_runtime_context().gcs_address
    gpus = ray.cluster_resources().get("GPU", 0)
    threads = max(1, args.threads)

    @ray.remote
    def run_stage(node_id, *deps):
        cmd = [args.privlin, "stage", "run", plan_path, node_id, "--threads", str(threads)]
        cmd += args.stage_arg
        # Utility actors of a sharded game join this cluster.
        env = dict(os.environ, RAY_ADDRESS=gcs)
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            raise RuntimeError(f"privlin stage run {node_id} exited with status {rc}")
        return node_id

    refs = {}
    t0 = time.time()
    for node in plan["nodes"]:
        spec = node["spec"]
        kind = spec["stage"]
        opts = dict(max_retries=args.retries, retry_exceptions=True, name=f"privlin:{node['id']}")
        if kind in TRAINING and gpus > 0:
            opts.update(num_gpus=1, num_cpus=threads)
        elif kind == "importance" and spec["config"].get("workers", 1) > 1:
            opts.update(num_cpus=0)
        else:
            opts.update(num_cpus=threads)
        deps = [refs[d] for d in node["deps"]]
        refs[node["id"]] = run_stage.options(**opts).remote(node["id"], *deps)
    try:
        ray.get(list(refs.values()))
    except Exception as e:  # the task's own error, after its retries
        print(f"ray: the plan failed: {e}", file=sys.stderr)
        ray.shutdown()
        sys.exit(1)
    print(
        f"ray: {len(refs)} stages done in {time.time() - t0:.1f} s on {gcs} "
        f"({int(ray.cluster_resources().get('CPU', 0))} CPUs, {int(gpus)} GPUs)",
        file=sys.stderr,
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
