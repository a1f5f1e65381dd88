#!/usr/bin/env python3
"""Make the runs listed in ``runs.py`` (all of them, or ``--only``), resumably.

Chunked runs (``run_experiment.py``, ``calibration.py``) are started again and again with
``--max-chunks N`` until the script reports that nothing is left (exit code 10): every process
re-imports eventsnn, and every finished chunk is a file, so an interrupted run continues
where it stopped when the same command is given again. One-shot runs are skipped when their
result file exists (``--force`` reruns them). Processes run one at a time, with ``--threads``
numba/OpenMP threads (default 1, as the published results were made) at ``--nice``.

Examples::

    python experiments/run_all.py --list                 # the runs and what is done
    python experiments/run_all.py                        # everything, in order
    python experiments/run_all.py --only resnet56 --hours 2
    python experiments/tables.py                         # then the tables and figures
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from runs import RUNS  # noqa: E402

RESULTS = HERE / "results"
NOTHING_LEFT = 10  # exit code of a chunked script when no chunk is left to simulate


def command(run):
    """The command line of one run (this interpreter)."""
    return [sys.executable, str(HERE / run["script"]), *run["args"]]


def select(only):
    """The runs named in the comma-separated ``only`` (all when None), in list order."""
    if not only:
        return list(RUNS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = [r["name"] for r in RUNS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown runs {unknown}; choose from {known}")
    return [r for r in RUNS if r["name"] in names]


def state(run):
    if "output" in run:
        return "done" if (RESULTS / run["output"]).is_file() else "to run"
    return f"chunked, {run['chunks_per_call']} chunks per process"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--only", help="comma-separated run names from runs.py (default: all)")
    p.add_argument("--list", action="store_true", help="print the runs, run nothing")
    p.add_argument("--hours", type=float, help="start no new process after this many hours")
    p.add_argument("--threads", type=int, default=1, help="numba/OpenMP threads (default 1)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the runs (default 10)")
    p.add_argument("--force", action="store_true", help="rerun one-shot runs whose result exists")
    args = p.parse_args(argv)
    runs = select(args.only)
    if args.list:
        for r in runs:
            print(f"{r['name']:24s} {state(r):34s} {r['script']} {' '.join(r['args'])}")
        return 0
    threads = str(args.threads)
    env = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads)
    deadline = None if args.hours is None else time.monotonic() + 3600 * args.hours

    def call(cmd):
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError
        print("+", " ".join(cmd), flush=True)
        return subprocess.run(cmd, env=env, preexec_fn=lambda: os.nice(args.nice)).returncode

    failed = []
    try:
        for r in runs:
            if "output" in r:
                if (RESULTS / r["output"]).is_file() and not args.force:
                    print(f"{r['name']}: {r['output']} exists, skipped", flush=True)
                    continue
                if call(command(r)) != 0:
                    failed.append(r["name"])
                continue
            while True:
                rc = call(command(r) + ["--max-chunks", str(r["chunks_per_call"])])
                if rc == NOTHING_LEFT:
                    break
                if rc != 0:
                    failed.append(r["name"])
                    break
    except TimeoutError:
        print(f"--hours {args.hours} reached: no new process started; the same command resumes",
              flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
