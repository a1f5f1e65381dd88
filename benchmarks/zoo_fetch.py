"""Populate the zoo directory with the pretrained weights listed in ``zoo_models.ZOO``.

Each file is taken from a local git copy of its source repository at the pinned commit
(``git -C <gitdir> show <commit>:<path>``), checked against its recorded sha256 and written to
the zoo directory under its zoo name. See ``zoo_fetch.md`` for how to obtain the git copies.

Usage::

    python benchmarks/zoo_fetch.py --repo mlcommons/tiny=/path/to/tiny.git \\
        --repo akamaster/pytorch_resnet_cifar10=/path/to/pytorch_resnet_cifar10.git \\
        [--zoo-dir DIR] [--models NAME ...]

``--mirror ROOT`` instead looks each repository up as ``ROOT/<owner>+<name>/repo``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_models import ZOO, entry, sha256, zoo_dir  # noqa: E402


def git_dir(repo, repos, mirror):
    """The local git directory of ``repo`` (``owner/name``) from ``--repo`` or ``--mirror``."""
    if repo in repos:
        return Path(repos[repo])
    if mirror is not None:
        return Path(mirror) / repo.replace("/", "+") / "repo"
    raise ValueError(f"no local copy of {repo} given: pass --repo {repo}=<git dir> or --mirror")


def fetch(name, directory, repos, mirror, log=print):
    """Write every weight file of zoo model ``name`` into ``directory``; returns their paths."""
    e = entry(name)
    gdir = git_dir(e.repo, repos, mirror)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, (path, digest) in e.files.items():
        out = directory / fname
        if out.is_file() and (digest is None or sha256(out) == digest):
            log(f"  {fname}: present")
            written.append(out)
            continue
        blob = subprocess.run(["git", "-C", str(gdir), "show", f"{e.commit}:{path}"],
                              capture_output=True, check=False)
        if blob.returncode:
            raise RuntimeError(f"{e.repo}@{e.commit[:10]}:{path}: {blob.stderr.decode().strip()}")
        if blob.stdout.startswith(b"version https://git-lfs"):
            raise RuntimeError(f"{e.repo}:{path} is a Git LFS pointer, not the weights")
        tmp = out.with_suffix(out.suffix + ".part")
        tmp.write_bytes(blob.stdout)
        if digest is not None and sha256(tmp) != digest:
            tmp.unlink()
            raise RuntimeError(f"{e.repo}:{path}: sha256 differs from the recorded {digest}")
        tmp.replace(out)
        log(f"  {fname}: {len(blob.stdout)} bytes from {e.repo}@{e.commit[:10]}:{path}")
        written.append(out)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zoo-dir", default=None,
                   help="destination (default: $EVENTSNN_ZOO_DIR or ~/.cache/eventsnn/zoo)")
    p.add_argument("--repo", action="append", default=[], metavar="OWNER/NAME=GITDIR",
                   help="local git directory of a source repository (repeatable)")
    p.add_argument("--mirror", default=None,
                   help="folder holding <owner>+<name>/repo git directories")
    p.add_argument("--models", nargs="*", default=sorted(ZOO), help="zoo models to fetch")
    args = p.parse_args(argv)
    repos = dict(r.split("=", 1) for r in args.repo)
    directory = zoo_dir(args.zoo_dir)
    failed = 0
    for name in args.models:
        print(f"{name} ({entry(name).repo}, {entry(name).licence})")
        try:
            fetch(name, directory, repos, args.mirror)
        except (RuntimeError, ValueError, OSError) as err:
            print(f"  FAILED: {err}")
            failed += 1
    print(f"zoo directory: {directory}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
