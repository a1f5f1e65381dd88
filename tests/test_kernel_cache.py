"""The kernels' on-disk cache is invalidated by an edit of ANY kernel source, not only the caller's.

``numba.njit(cache=True)`` checks only the file that defines a function, so a caller cached in
``__pycache__`` keeps the old code of a callee from another file. :func:`kernel_jit` stamps
the cache with a digest of every source of the package; these tests build a two-module
package in a temporary directory, run it in fresh processes, edit the callee's module and
check that the caller is recompiled (and reloaded from the cache when nothing changed).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba

from eventsnn.kernels import caching

REPO = Path(__file__).resolve().parents[1]

INNER = textwrap.dedent("""
    from eventsnn.kernels.caching import kernel_jit


    @kernel_jit()
    def value():
        return {value}
""")
OUTER = textwrap.dedent("""
    from eventsnn.kernels.caching import kernel_jit

    from .inner import value


    @kernel_jit()
    def total():
        return value() + 1000
""")
RUN = ("import pkg.outer as o; r = o.total(); s = o.total.stats; "
       "print(r, sum(s.cache_hits.values()), sum(s.cache_misses.values()))")


def _write_package(root, value):
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inner.py").write_text(INNER.format(value=value))
    (pkg / "outer.py").write_text(OUTER)


def _run(root):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    env.pop("NUMBA_CACHE_DIR", None)  # the package's own __pycache__
    out = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, env=env,
                         cwd=root, timeout=300)
    assert out.returncode == 0, out.stderr
    result, hits, misses = (int(v) for v in out.stdout.split())
    return result, hits, misses


def test_edit_of_a_callee_module_recompiles_the_caller(tmp_path):
    _write_package(tmp_path, 1)
    assert _run(tmp_path) == (1001, 0, 1)       # compiled and written to the cache
    assert _run(tmp_path) == (1001, 1, 0)       # loaded from the cache
    assert list((tmp_path / "pkg" / "__pycache__").glob("outer.total-*.nbi"))
    _write_package(tmp_path, 22)                 # only inner.py changes
    assert _run(tmp_path) == (1022, 0, 1)       # not the stale 1001: recompiled
    assert _run(tmp_path) == (1022, 1, 0)


def test_sources_digest_follows_every_file(tmp_path):
    _write_package(tmp_path, 1)
    pkg = tmp_path / "pkg"
    before = caching.sources_digest(pkg)
    assert caching.sources_digest(pkg) == before
    (pkg / "inner.py").write_text(INNER.format(value=2))
    changed = caching.sources_digest(pkg)
    assert changed != before
    (pkg / "extra.py").write_text("# a new module\n")
    assert caching.sources_digest(pkg) not in (before, changed)


def test_engine_kernels_are_stamped_with_all_kernel_sources():
    from eventsnn.kernels import simulate

    kernels = Path(simulate.__file__).resolve().parent
    stamp = simulate.simulate_batch._cache._impl.locator.get_source_stamp()
    assert stamp[1] == caching.sources_digest(kernels)


def test_without_a_writable_cache_directory_kernels_compile_in_memory(monkeypatch):
    def no_locator(self, py_func):
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(caching.PackageFunctionCache, "__init__", no_locator)

    @caching.kernel_jit()
    def twice(x):
        return 2 * x

    assert isinstance(twice, numba.core.registry.CPUDispatcher)
    assert twice(21) == 42
