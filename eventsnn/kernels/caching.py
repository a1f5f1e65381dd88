"""On-disk caching of the kernels in a user cache directory, keyed by ALL kernel sources.

``numba.njit(cache=True)`` checks only the source file that defines a function: the compiled
batch driver (``simulate.py``) contains the kernels of ``neurons.py``, ``synapses.py`` and
``pooling.py`` it calls, so after an edit of one of those files it would keep loading a stale
driver. It also writes into the package's ``__pycache__``, which pip's uninstall leaves
behind (an orphaned ``site-packages/eventsnn/`` then shadows a later editable install).

:func:`kernel_jit` compiles like ``numba.njit(cache=True)`` but stores the cache in
:func:`cache_root` (``$EVENTSNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/eventsnn``, else
``~/.cache/eventsnn``), never inside the installed package, in a folder named after a
SHA-256 of every ``*.py`` file of the function's package directory and a hash of that
directory's path: different source versions and different checkouts or installs each get
their own entries, and any edit of a kernel source recompiles every kernel of the package.
The digest is also part of the freshness stamp of each cache index. When the cache
directory cannot be created or written, kernels are compiled in memory (as ``cache=False``)
instead of failing at import. Old entries are never used again once the sources change;
the whole folder can be deleted at any time.
"""

import functools
import hashlib
import os
from pathlib import Path

from numba import njit
from numba.core.caching import (CompileResultCacheImpl, FunctionCache, _CacheLocator,
                                _SourceFileBackedLocatorMixin)


def cache_root():
    """The folder eventsnn keeps compiled kernels in (it need not exist yet).

    ``$EVENTSNN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/eventsnn``, else
    ``~/.cache/eventsnn``.
    """
    if os.environ.get("EVENTSNN_CACHE_DIR"):
        return Path(os.environ["EVENTSNN_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "eventsnn"
    return Path.home() / ".cache" / "eventsnn"


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


class UserCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """Numba cache locator: ``cache_root()/<sources digest>/<package dir name>_<path hash>``.

    The freshness stamp is numba's hash of the function's file together with
    :func:`sources_digest` of its package directory.
    """

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._directory = Path(py_file).resolve().parent

    def get_cache_path(self):
        return str(cache_root() / sources_digest(self._directory)[:16]
                   / self.get_suitable_cache_subpath(self._py_file))

    def get_source_stamp(self):
        return super().get_source_stamp(), sources_digest(self._directory)


class _UserCacheImpl(CompileResultCacheImpl):
    """Numba's cache implementation with :class:`UserCacheLocator` as the only locator."""

    _locator_classes = [UserCacheLocator]


class PackageFunctionCache(FunctionCache):
    """A numba function cache in the user cache directory, stale once any package source changes."""

    _impl_class = _UserCacheImpl


def kernel_jit(**options):
    """``numba.njit(cache=True, **options)`` with the cache in :func:`cache_root`.

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
