#!/usr/bin/env python3
"""A Shapley game's utility workers as Ray actors.

Speaks privlin's utility-worker protocol (one JSON object per line; see
crates/privlin/src/importance/workers.rs) on stdin / stdout, so `privlin importance --workers N
--utility-workers ray` (or an importance stage under `--executor ray`) starts it as its one
worker. It starts N actors (N = the hello's config.workers), each running one
`privlin utility-worker` process that loads the model and the utility set once, and splits every
batch of coalitions over them in contiguous shards (the caller orders a batch so that coalitions
sharing their first players sit together). Utilities travel as the bit patterns of f64, so the
merged answer is bit for bit what the actors computed.
"""
import argparse
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--privlin", required=True, help="the privlin binary")
    ap.add_argument("--address", help="auto or HOST:PORT (default: $RAY_ADDRESS, else a local instance)")
    args = ap.parse_args()

    import ray

    hello_line = sys.stdin.readline()
    if not hello_line:
        return
    hello = json.loads(hello_line)
    n = max(1, int(hello["config"].get("workers", 1)))
    address = os.environ.get("RAY_ADDRESS") or args.address
    init = dict(include_dashboard=False, log_to_driver=True, logging_level="warning")
    if address:
        ray.init(address=address, **init)
    else:
        # A local instance listens on loopback only: a local run never uses another interface.
        ray.init(_node_ip_address="127.0.0.1", **init)

    @ray.remote(num_cpus=1)
    class UtilityActor:
        def __init__(self, privlin, hello):
            self.proc = subprocess.Popen(
                [privlin, "utility-worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            self.ready = self.ask(hello)

        def ask(self, line):
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
            if not answer:
                return json.dumps({"error": f"utility worker exited ({self.proc.wait()})"}) + "\n"
            return answer

        def hello(self):
            return self.ready

        def evaluate(self, line):
            return self.ask(line)

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    actors = [UtilityActor.remote(args.privlin, hello_line) for _ in range(n)]
    readies = [json.loads(r) for r in ray.get([a.hello.remote() for a in actors])]
    for r in readies:
        if r.get("error"):
            reply(r)
            sys.exit(1)
    reply(readies[0])
    for line in sys.stdin:
        coalitions = json.loads(line)["coalitions"]
        k = min(n, max(1, len(coalitions)))
        base, extra = divmod(len(coalitions), k)
        chunks, at = [], 0
        for s in range(k):
            size = base + (1 if s < extra else 0)
            chunks.append(coalitions[at : at + size])
            at += size
        answers = ray.get(
            [a.evaluate.remote(json.dumps({"coalitions": c}) + "\n") for a, c in zip(actors, chunks)]
        )
        merged = {"utilities": [], "images": [0, 0], "segments": [0, 0]}
        for a in answers:
            a = json.loads(a)
            if a.get("error"):
                reply(a)
                sys.exit(1)
            merged["utilities"] += a["utilities"]
            for key in ("images", "segments"):
                merged[key][0] += a[key][0]
                merged[key][1] += a[key][1]
        reply(merged)
    ray.shutdown()


if __name__ == "__main__":
    main()
