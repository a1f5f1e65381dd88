"""The kernels' on-disk cache lives in a user cache directory and is invalidated by an edit of
ANY kernel source, not only the caller's.

``numba.njit(cache=True)`` checks only the file that defines a function, so a caller cached in
``__pycache__`` keeps the old code of a callee from another file. :func:`kernel_jit` keys
the cache by a digest of every source of the package; these tests build a two-module
package in a temporary directory, run it in fresh processes, edit the callee's module and
check that the caller is recompiled (and reloaded from the cache when nothing changed), and
that nothing is ever written inside the package.
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


def _run(root, cache_dir=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)]),
           "EVENTSNN_CACHE_DIR": str(cache_dir or root / "cache")}
    out = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, env=env,
                         cwd=root, timeout=300)
    assert out.returncode == 0, out.stderr
    result, hits, misses = (int(v) for v in out.stdout.split())
    return result, hits, misses


def test_edit_of_a_callee_module_recompiles_the_caller(tmp_path):
    _write_package(tmp_path, 1)
    assert _run(tmp_path) == (1001, 0, 1)       # compiled and written to the cache
    assert _run(tmp_path) == (1001, 1, 0)       # loaded from the cache
    assert list((tmp_path / "cache").rglob("outer.total-*.nbi"))
    assert not list((tmp_path / "pkg").rglob("*.nb*"))   # nothing inside the package
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


def test_cache_is_outside_the_package_and_keyed_by_sources_and_location(tmp_path):
    _write_package(tmp_path, 1)
    assert _run(tmp_path) == (1001, 0, 1)
    files = {p.relative_to(tmp_path / "cache") for p in (tmp_path / "cache").rglob("*.nb*")}
    assert files and not list((tmp_path / "pkg").rglob("*.nb*"))
    digest = caching.sources_digest(tmp_path / "pkg")
    assert {f.parts[0] for f in files} == {digest[:16]}
    # a second checkout of the same sources elsewhere gets its own entries
    other = tmp_path / "other"
    other.mkdir()
    _write_package(other, 1)
    assert _run(other, tmp_path / "cache") == (1001, 0, 1)
    assert _run(tmp_path) == (1001, 1, 0)       # the first checkout's entry is intact


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTSNN_CACHE_DIR", str(tmp_path / "a"))
    assert caching.cache_root() == tmp_path / "a"
    monkeypatch.delenv("EVENTSNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert caching.cache_root() == tmp_path / "xdg" / "eventsnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert caching.cache_root() == Path.home() / ".cache" / "eventsnn"


def test_engine_kernels_cache_outside_the_installed_package():
    from eventsnn.kernels import simulate

    package = Path(simulate.__file__).resolve().parents[1]
    path = Path(simulate.simulate_batch._cache._cache_path).resolve()
    assert package not in path.parents
    assert caching.cache_root().resolve() in path.parents


def test_unwritable_cache_directory_compiles_in_memory(tmp_path):
    _write_package(tmp_path, 3)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    assert _run(tmp_path, blocker)[:2] == (1003, 0)
    assert _run(tmp_path, blocker)[:2] == (1003, 0)   # compiled again: nothing was cached
    assert blocker.is_file()
    assert not list((tmp_path / "pkg").rglob("*.nb*"))
