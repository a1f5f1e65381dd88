"""On-disk caching of the kernels, invalidated when ANY kernel source changes.

``numba.njit(cache=True)`` checks only the source file that defines a function: the compiled
batch driver (``simulate.py``) contains the kernels of ``neurons.py``, ``synapses.py`` and
``pooling.py`` it calls, so after an edit of one of those files it would keep loading a stale
driver from ``__pycache__``. :func:`kernel_jit` compiles like ``numba.njit(cache=True)`` (same
cache directories: ``NUMBA_CACHE_DIR``, else the package's ``__pycache__``, else the user-wide
cache), but the freshness stamp stored in each cache index also holds a SHA-256 of every
``*.py`` file of the function's package directory: any edit there recompiles every kernel of
the package. When no cache directory is writable, kernels are compiled in memory (as
``cache=False``) instead of failing at import.
"""

import functools
import hashlib
import inspect
from pathlib import Path

from numba import njit
from numba.core.caching import CompileResultCacheImpl, FunctionCache


def _source_files(directory):
    """``(name, mtime_ns, size)`` of the ``*.py`` files of ``directory``, sorted by name."""
    stats = ((p.name, p.stat()) for p in sorted(Path(directory).glob("*.py")))
    return tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)


@functools.lru_cache(maxsize=None)
def _digest(directory, files):
    h = hashlib.sha256()
    for name, _, _ in files:
        data = (Path(directory) / name).read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def sources_digest(directory):
    """SHA-256 (hex) of the names and contents of the ``*.py`` files in ``directory``.

    Memoised on the files' modification times and sizes, so an edit during the process is
    seen.
    """
    directory = str(Path(directory).resolve())
    return _digest(directory, _source_files(directory))


class _PackageStampedLocator:
    """Numba's cache locator of a function, with the sources of its whole package in the stamp."""

    def __init__(self, locator, directory):
        self._locator = locator
        self._directory = directory

    def ensure_cache_path(self):
        self._locator.ensure_cache_path()

    def get_cache_path(self):
        return self._locator.get_cache_path()

    def get_disambiguator(self):
        return self._locator.get_disambiguator()

    def get_source_stamp(self):
        return self._locator.get_source_stamp(), sources_digest(self._directory)


class _PackageCacheImpl(CompileResultCacheImpl):
    """Numba's cache implementation with :class:`_PackageStampedLocator`."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._locator = _PackageStampedLocator(self._locator,
                                               Path(inspect.getfile(py_func)).resolve().parent)


class PackageFunctionCache(FunctionCache):
    """A numba function cache whose entries are stale once any source of the package changes."""

    _impl_class = _PackageCacheImpl


def kernel_jit(**options):
    """``numba.njit(cache=True, **options)`` with the cache keyed by all sources of the package.

    Parameters
    ----------
    **options
        Passed to :func:`numba.njit` (``parallel``, ``inline``, ...); not ``cache``.

    Returns
    -------
    callable
        A decorator returning the numba dispatcher.
    """
    def decorate(py_func):
        dispatcher = njit(**options)(py_func)
        try:
            dispatcher._cache = PackageFunctionCache(py_func)
        except RuntimeError:  # no writable cache directory: compile in memory
            pass
        return dispatcher

    return decorate
