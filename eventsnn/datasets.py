"""Dataset readers, normalisation and the shipped Fashion-MNIST sample.

Readers return raw ``uint8`` images; :func:`load_dataset` turns them into a :class:`Dataset`
of normalised float32 NCHW images, the input format of :meth:`eventsnn.graph.Graph.forward`
and of the simulator (direct coding feeds the normalised image as a constant analog current,
see ``paper-notes.md``, Sec. "Input").

Formats read from any path a user gives:

* IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw (:func:`read_idx`);
* MNIST-style folders holding ``train-images-idx3-ubyte[.gz]`` ... ``t10k-labels-idx1-ubyte[.gz]``
  (:func:`read_mnist_folder`);
* CIFAR-10 "python version" pickle batches ``data_batch_1..5`` / ``test_batch``
  (:func:`read_cifar10_batches`);
* ``.npz`` archives with ``x``/``y`` arrays, or ``x_train``/``y_train``/``x_test``/``y_test``
  as written by ``shared/data/cifar10-jpeg/to_npz.py`` (:func:`read_npz`).

Normalisation constants are data (:class:`Normalization`), stored beside the model that was
trained with them, never hard-coded in code paths.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import describe, file_kind

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "Dataset",
    "Normalization",
    "default_model_path",
    "load_dataset",
    "load_shipped",
    "read_cifar10_batches",
    "read_cifar10_jpeg",
    "read_idx",
    "read_mnist_folder",
    "read_npz",
    "read_raw",
    "subset",
    "subset_indices",
    "write_idx",
]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

_PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_SAMPLE = _PACKAGE_DIR / "data" / "fashion_mnist_sample.npz"
SHIPPED_MODEL = _PACKAGE_DIR / "models" / "fmnist_vgg.npz"

# IDX type codes (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in _IDX_DTYPES.items()}


# ----------------------------------------------------------------------------- IDX

def _open_maybe_gzip(path):
    """Open ``path`` for binary reading, transparently un-gzipping (gzip magic ``1f 8b``)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path):
    """Read an IDX file (the MNIST / Fashion-MNIST container), gzip-compressed or raw.

    The file starts with a 4-byte magic number ``00 00 TT RR``: ``TT`` is the element type
    (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
    ``0x0E`` float64) and ``RR`` the rank; then ``RR`` big-endian int32 dimensions, then the
    data in C order, big-endian.

    Parameters
    ----------
    path : str or os.PathLike
        File to read. Gzip compression is detected from the content, not the name.

    Returns
    -------
    numpy.ndarray
        Array of the stored shape, native byte order (``uint8`` for images and labels).

    Raises
    ------
    ValueError
        If the magic number is not an IDX magic number, or the file is shorter than its
        header says (truncated download).
    """
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # corrupt / truncated gzip stream
        raise ValueError(f"{path}: cannot decompress IDX file ({exc}); "
                         "the download is probably truncated, fetch it again") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty file)'}; "
                         "expected 0000TTRR with TT in {08,09,0b,0c,0d,0e} "
                         "(e.g. 00000803 for images, 00000801 for labels). "
                         "Is this an IDX file?")
    dtype, rank = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * rank
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header (rank {rank} needs {header} bytes, "
                         f"file has {len(raw)}); fetch the file again")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=rank, offset=4))
    count = int(np.prod(shape, dtype=np.int64))
    need = header + count * dtype.itemsize
    if len(raw) < need:
        raise ValueError(f"{path}: truncated IDX file: shape {shape} needs {need} bytes, "
                         f"file has {len(raw)}; fetch the file again")
    data = np.frombuffer(raw, dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file (inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; gzip-compressed when ``compress`` is true.
    array : array_like
        Data of dtype uint8, int8, int16, int32, float32 or float64; rank 1 to 255.
    compress : bool, optional
        Gzip the output. Default: true when ``path`` ends with ``.gz``.
    """
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in _IDX_CODES:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; convert to one of "
                        "uint8, int8, int16, int32, float32, float64")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX stores rank 1..255 arrays, got rank {array.ndim}")
    code = _IDX_CODES[key]
    payload = (bytes([0, 0, code, array.ndim])
               + np.asarray(array.shape, ">i4").tobytes()
               + np.ascontiguousarray(array, _IDX_DTYPES[code]).tobytes())
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as fh:
        fh.write(payload)


_MNIST_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_idx(folder, stem):
    """Locate ``stem`` in ``folder`` under the usual spellings (``.gz``, ``-``/``.`` before idx)."""
    alt = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, alt + ".gz", alt):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}[.gz] (MNIST-style folders hold "
                            "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)")


def read_mnist_folder(folder, split="test"):
    """Read one split of an MNIST-style folder (MNIST, Fashion-MNIST, KMNIST ...).

    Parameters
    ----------
    folder : str or os.PathLike
        Folder with the four standard IDX files, gzip-compressed or not.
    split : {"train", "test"}
        ``"train"`` reads ``train-*``, ``"test"`` reads ``t10k-*``.

    Returns
    -------
    x : numpy.ndarray
        ``uint8`` images, shape (N, H, W).
    y : numpy.ndarray
        ``uint8`` labels, shape (N,).
    """
    _check_split(split)
    folder = Path(folder)
    img_stem, lab_stem = _MNIST_STEMS[split]
    x = read_idx(_find_idx(folder, img_stem))
    y = read_idx(_find_idx(folder, lab_stem))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not "
                         "match (expected (N,H,W) and (N,))")
    return x, y


# ----------------------------------------------------------------------------- CIFAR

def read_cifar10_batches(folder, split="test"):
    """Read CIFAR-10 in its "python version" format (``cifar-10-batches-py``).

    The batches ``data_batch_1`` .. ``data_batch_5`` (train) and ``test_batch`` (test) are
    Python pickles of a dict with ``b"data"`` (N, 3072) uint8 rows (R, G, B planes of 32x32)
    and ``b"labels"``. That format *is* a pickle, so this function uses :mod:`pickle` with
    ``encoding="bytes"`` -- only for these files. Unpickling can execute code: read only
    batches from a source you trust (or convert them once to ``.npz``).

    Parameters
    ----------
    folder : str or os.PathLike
        The ``cifar-10-batches-py`` folder.
    split : {"train", "test"}

    Returns
    -------
    x : numpy.ndarray
        ``uint8`` images, shape (N, 3, 32, 32) (NCHW).
    y : numpy.ndarray
        ``uint8`` labels, shape (N,).
    """
    import pickle  # CIFAR-10's own file format; see the docstring

    _check_split(split)
    folder = Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a CIFAR-10 python folder holds "
                                    "data_batch_1..data_batch_5 and test_batch")
        with open(path, "rb") as fh:
            try:
                batch = pickle.load(fh, encoding="bytes")
            except Exception as exc:
                raise ValueError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise ValueError(f"{path}: a CIFAR-10 batch is a dict with b'data' and b'labels'")
        data = np.asarray(batch[b"data"], np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: b'data' has shape {data.shape}, expected (N, 3072)")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], np.uint8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) != len(y):
        raise ValueError(f"{folder}: {len(x)} images but {len(y)} labels")
    return x, y


# ----------------------------------------------------------------------------- npz

def read_cifar10_jpeg(path, split="test", progress=False):
    """Read CIFAR-10 stored as JPEG files in a ``.tar.gz`` (``{train,test}/<class>/NNNN.jpg``).

    This is the layout of ``../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz``; images are
    decoded with Pillow (``pip install pillow``, in the ``all`` extra) and returned sorted by
    file name, i.e. **sorted by class** — take subsets with :func:`subset`, never ``[:n]``.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.
    split : {"train", "test"}
    progress : bool
        Show a tqdm progress bar over the archive's members and the decoding.

    Returns
    -------
    x : numpy.ndarray
        uint8 (N, 32, 32, 3) RGB images.
    y : numpy.ndarray
        uint8 (N,) labels in :data:`CIFAR10_CLASSES` (alphabetical) order.
    """
    _check_split(split)
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading CIFAR-10 JPEG archives needs Pillow: pip install pillow") from None
    from tqdm.auto import tqdm

    images = []
    try:
        with tarfile.open(path, "r|gz") as tar:  # a gzip stream: read in order, sort after
            for m in tqdm(tar, desc=f"read {Path(path).name}", unit="file", disable=not progress):
                parts = m.name.split("/")
                if m.isfile() and m.name.endswith(".jpg") and len(parts) >= 3 and parts[-3] == split:
                    images.append((m.name, tar.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .tar.gz of CIFAR-10 JPEG files ({e})") from None
    if not images:
        raise ValueError(f"{path}: no '{split}/<class>/*.jpg' images inside")
    xs, ys = [], []
    for name, data in tqdm(sorted(images), desc=f"decode {split}", unit="img",
                           disable=not progress):
        cls = name.split("/")[-2]
        if cls not in CIFAR10_CLASSES:
            raise ValueError(f"{path}: unknown class folder {cls!r} in {name}; expected one of "
                             f"{CIFAR10_CLASSES}")
        xs.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8))
        ys.append(CIFAR10_CLASSES.index(cls))
    return np.stack(xs), np.asarray(ys, dtype=np.uint8)


def read_npz(path, split="test"):
    """Read images and labels from an ``.npz`` archive.

    Accepted keys: ``x``/``y`` (one split, ``split`` ignored), or ``x_train``/``y_train`` and
    ``x_test``/``y_test`` (as written by ``cifar10-jpeg/to_npz.py``). Images may be
    (N, H, W), (N, C, H, W) or channels-last (N, H, W, C) with C in {1, 3} (the layout is
    normalised later by :func:`load_dataset`). Optional ``classes`` (string array), ``mean``
    and ``std`` arrays are returned too. Loaded with ``allow_pickle=False``.

    Returns
    -------
    x : numpy.ndarray
    y : numpy.ndarray
    extra : dict
        ``classes``/``mean``/``std`` when present; ``single_split: True`` for an ``x``/``y``
        file (the same images whatever ``split`` asks for).
    """
    _check_split(split)
    try:
        z = np.load(path, allow_pickle=False)
        keys = set(z.files)
    except Exception as e:  # noqa: BLE001 - zip/pickle/format errors: not an npz of arrays
        raise ValueError(f"{path}: not a readable numpy .npz archive ({type(e).__name__}); "
                         "data files must be .npz archives with arrays x and y (or x_train/"
                         "y_train and x_test/y_test)") from None
    with z:
        if {"x", "y"} <= keys:
            kx, ky = "x", "y"
        elif {f"x_{split}", f"y_{split}"} <= keys:
            kx, ky = f"x_{split}", f"y_{split}"
        else:
            raise ValueError(f"{path}: expected arrays 'x' and 'y', or 'x_{split}' and "
                             f"'y_{split}'; found {sorted(keys)}")
        x, y = z[kx], z[ky]
        extra = {k: z[k] for k in ("classes", "mean", "std") if k in keys}
        if kx == "x":
            extra["single_split"] = True
    if len(x) != len(y):
        raise ValueError(f"{path}: {kx} has {len(x)} images but {ky} has {len(y)} labels")
    return x, y, extra


# ----------------------------------------------------------------------------- dataset

@dataclass(frozen=True)
class Normalization:
    """Per-channel input normalisation ``x' = (x / 255 - mean) / std``.

    ``mean`` and ``std`` are in units of the [0, 1]-scaled image. They belong to a trained
    model (the model was trained on images normalised this way) and are stored with it.

    Parameters
    ----------
    mean, std : sequence of float
        One value per channel (or one value for all channels).
    """

    mean: tuple
    std: tuple

    def __post_init__(self):
        mean = tuple(float(v) for v in np.atleast_1d(np.asarray(self.mean, np.float64)))
        std = tuple(float(v) for v in np.atleast_1d(np.asarray(self.std, np.float64)))
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError(f"Normalization: mean has {len(mean)} values but std has "
                             f"{len(std)}; give one per channel")
        if not all(np.isfinite(mean)) or not all(np.isfinite(std)) or min(std) <= 0:
            raise ValueError(f"Normalization: mean {mean} must be finite and std {std} "
                             "positive")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def identity(cls):
        """Scale to [0, 1] only (mean 0, std 1)."""
        return cls((0.0,), (1.0,))

    @classmethod
    def fit(cls, x):
        """Per-channel mean/std of ``uint8`` images ``x`` (N,H,W) or (N,C,H,W), in [0, 1] units.

        Use it on the *training* split; the result is what a model's inputs are normalised by.
        """
        x = _to_nchw(np.asarray(x))
        mean, sq = [], []
        for c in range(x.shape[1]):  # per channel, float64 accumulation, chunked
            xc = x[:, c]
            s = s2 = 0.0
            for i in range(0, len(xc), 4096):
                chunk = xc[i:i + 4096].astype(np.float64) / 255.0
                s += chunk.sum()
                s2 += np.square(chunk).sum()
            n = xc.size
            mean.append(s / n)
            sq.append(s2 / n)
        std = [float(np.sqrt(max(q - m * m, 0.0))) for m, q in zip(mean, sq)]
        return cls(tuple(mean), tuple(std))

    def apply(self, x):
        """Return float32 NCHW ``(x / 255 - mean) / std`` for ``uint8`` images ``x``.

        ``x`` is (N,H,W), (N,C,H,W) or channels-last (N,H,W,C); float input is taken as
        already in [0, 1] (not divided by 255).
        """
        x = np.asarray(x)
        scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
        x = _to_nchw(x)
        c = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise ValueError(f"Normalization has {len(v)} {name} values but the images "
                                 f"have {c} channels")
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        out = x.astype(np.float32) * np.float32(scale)
        out -= mean
        out /= std
        return out

    def to_dict(self):
        """JSON-serialisable ``{"mean": [...], "std": [...]}``."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(d["mean"], d["std"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"normalisation must be a dict with 'mean' and 'std', got {d!r}") \
                from exc


@dataclass
class Dataset:
    """Normalised images with labels.

    Attributes
    ----------
    x : numpy.ndarray
        float32 (N, C, H, W), normalised by ``normalization``.
    y : numpy.ndarray
        int64 (N,) class indices.
    classes : tuple of str
        Class names, ``classes[y[i]]``.
    normalization : Normalization
        How ``x`` was produced from the raw images.
    name : str
        Source description.
    single_split : bool
        The source holds one set of images (an ``.npz`` with ``x``/``y``): asking it for the
        train split gives the same images as for the test split.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple = ()
    normalization: Normalization = field(default_factory=Normalization.identity)
    name: str = ""
    single_split: bool = False

    def __post_init__(self):
        self.x = np.asarray(self.x, np.float32)
        self.y = np.asarray(self.y, np.int64)
        if self.x.ndim != 4:
            raise ValueError(f"Dataset.x must be (N,C,H,W), got shape {self.x.shape}")
        if self.y.shape != (len(self.x),):
            raise ValueError(f"Dataset.y must be ({len(self.x)},), got {self.y.shape}")
        self.classes = tuple(str(c) for c in self.classes)

    def __len__(self):
        return len(self.y)

    @property
    def mean(self):
        """Per-channel mean of the normalisation."""
        return self.normalization.mean

    @property
    def std(self):
        """Per-channel std of the normalisation."""
        return self.normalization.std


def subset(ds, n, seed=0):
    """Take ``n`` samples spread over the whole data set, classes balanced where possible.

    Never ``ds[:n]``: some sources (``to_npz.py``) are sorted by class. Samples are drawn
    class by class in round-robin order from seeded per-class permutations, then shuffled
    with the same seed, so every class gets ``n // n_classes`` or one more (as far as the
    class has samples).

    Parameters
    ----------
    ds : Dataset or tuple (x, y)
        Data to subset; a tuple returns a tuple.
    n : int
        Number of samples, ``1 <= n <= len``.
    seed : int
        Seed of the permutation; same seed, same subset.

    Returns
    -------
    Dataset or tuple
        Same type as ``ds``.
    """
    x, y = (ds.x, ds.y) if isinstance(ds, Dataset) else ds
    idx = subset_indices(y, n, seed)
    if isinstance(ds, Dataset):
        return Dataset(x[idx], y[idx], ds.classes, ds.normalization, ds.name)
    return x[idx], y[idx]


def subset_indices(y, n, seed=0):
    """Indices of the class-balanced seeded subset used by :func:`subset` (sorted order not kept)."""
    y = np.asarray(y)
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(y):
        raise ValueError(f"subset size n={n!r} must be an int in [1, {len(y)}]")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    picked, rank = [], 0
    while len(picked) < n:  # round-robin over classes -> balanced
        for members in per_class:
            if rank < len(members) and len(picked) < n:
                picked.append(members[rank])
        rank += 1
    return rng.permutation(np.asarray(picked, np.int64))


def _check_split(split):
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _to_nchw(x):
    """(N,H,W) -> (N,1,H,W); channels-last (N,H,W,C), C in {1,3}, -> (N,C,H,W); NCHW as is.

    The layout is channels-last when axis 1 is not a channel count (1 or 3) but axis 3 is.
    """
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x
    raise ValueError(f"images must be (N,H,W), (N,C,H,W) or (N,H,W,C), got shape {x.shape}")


_NAMED = {
    "fashion-mnist": ("fashion-mnist", FASHION_MNIST_CLASSES),
    "mnist": ("mnist", MNIST_CLASSES),
}


def _default_roots(name):
    """Where named data sets are looked for: $EVENTSNN_DATA/<name>, Debian's /usr/share/datasets."""
    roots = []
    env = os.environ.get("EVENTSNN_DATA")
    if env:
        roots.append(Path(env) / name)
    roots.append(Path("/usr/share/datasets") / name)
    return roots


def read_raw(name_or_path, split="test", progress=False):
    """Read raw images and labels from a named data set or a path (no normalisation).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        ``"fashion-mnist-sample"`` (shipped: 1000 test / 500 train images),
        ``"fashion-mnist"``/``"mnist"`` (searched in ``$EVENTSNN_DATA/<name>`` and
        ``/usr/share/datasets/<name>``), an MNIST-style folder,
        a CIFAR-10 python batch folder, a CIFAR-10 JPEG ``.tar.gz``, an ``.npz`` file, or a
        single IDX image file (its labels file is found by replacing ``images-idx3`` with ``labels-idx1``).
    split : {"train", "test"}
    progress : bool
        Show progress bars while reading (JPEG archives, the slow format).

    Returns
    -------
    x : numpy.ndarray
        ``uint8`` images as stored (N,H,W), (N,C,H,W) or (N,H,W,C).
    y : numpy.ndarray
        Labels (N,).
    info : dict
        ``classes`` (tuple of str), ``name`` and, for files that store them, ``mean``/``std``.
    """
    _check_split(split)
    key = str(name_or_path)
    if key == "fashion-mnist-sample":
        path = SHIPPED_SAMPLE
    elif key in _NAMED:
        folder, classes = _NAMED[key]
        for root in _default_roots(folder):
            if root.is_dir():
                x, y = read_mnist_folder(root, split)
                return x, y, {"classes": classes, "name": f"{key}:{split}"}
        raise FileNotFoundError(
            f"data set {key!r} not found in {[str(r) for r in _default_roots(folder)]}; "
            "pass the folder path instead, or set EVENTSNN_DATA to its parent folder")
    else:
        path = Path(name_or_path)
    path = Path(path)
    name = f"{path.name}:{split}"
    if path.is_dir():
        if (path / "test_batch").is_file() or (path / "data_batch_1").is_file():
            x, y = read_cifar10_batches(path, split)
            return x, y, {"classes": CIFAR10_CLASSES, "name": name}
        x, y = read_mnist_folder(path, split)
        classes = FASHION_MNIST_CLASSES if "fashion" in str(path).lower() else MNIST_CLASSES
        return x, y, {"classes": classes, "name": name}
    if not path.is_file():
        raise FileNotFoundError(f"{key!r} is neither a known data set name "
                                f"({['fashion-mnist-sample', *_NAMED]}) nor an existing path")
    kind = file_kind(path)
    if kind == "tar":
        x, y = read_cifar10_jpeg(path, split, progress)
        return x, y, {"classes": CIFAR10_CLASSES, "name": name}
    if kind not in ("data", "npz", "idx", "gzip"):
        raise ValueError(f"{path}: {describe(kind)}, not a data set; data is a data set name, a "
                         "folder (IDX or CIFAR-10 batches), a CIFAR-10 JPEG .tar.gz, an .npz with "
                         "arrays x and y, or an IDX images file")
    if kind in ("data", "npz"):
        x, y, extra = read_npz(path, split)
        info = {"name": name, "single_split": extra.get("single_split", False)}
        if "classes" in extra:
            info["classes"] = tuple(str(c) for c in extra["classes"])
        elif "cifar" in path.name.lower():
            info["classes"] = CIFAR10_CLASSES
        if "mean" in extra and "std" in extra:
            info["mean"], info["std"] = extra["mean"], extra["std"]
        if key == "fashion-mnist-sample":
            info["name"] = f"{key}:{split}"
        return x, y, info
    # a single IDX images file
    x = read_idx(path)
    lab = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    if lab == path or not lab.is_file():
        raise FileNotFoundError(f"{path}: no labels file {lab.name} beside it; pass the "
                                "folder holding images and labels instead")
    y = read_idx(lab)
    return x, y, {"classes": (), "name": path.name}


def load_dataset(name_or_path, split="test", normalization=None, n=None, seed=0, progress=False):
    """Load a data set as normalised float32 NCHW images and int64 labels.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        See :func:`read_raw`: ``"fashion-mnist-sample"``, ``"fashion-mnist"``, ``"mnist"``,
        a folder (MNIST-style IDX or CIFAR-10 python batches) or an ``.npz`` file.
    split : {"train", "test"}
    normalization : Normalization, dict, "fit" or None
        ``None``: the normalisation stored in the file when it has one (the shipped sample
        stores the shipped model's), else scale to [0, 1] only. ``"fit"``: compute it from
        the *train* split of the same source (:meth:`Normalization.fit`). A dict needs
        ``mean`` and ``std``. Pass the normalisation your model was trained with.
    n : int, optional
        Take a class-balanced seeded subset of ``n`` samples (:func:`subset`).
    seed : int
        Seed of the subset.
    progress : bool
        Show progress bars while reading (see :func:`read_raw`).

    Returns
    -------
    Dataset
    """
    x, y, info = read_raw(name_or_path, split, progress)
    if normalization is None:
        norm = (Normalization(info["mean"], info["std"]) if "mean" in info
                else Normalization.identity())
    elif isinstance(normalization, Normalization):
        norm = normalization
    elif isinstance(normalization, dict):
        norm = Normalization.from_dict(normalization)
    elif normalization == "fit":
        xt = x if split == "train" else read_raw(name_or_path, "train")[0]
        norm = Normalization.fit(xt)
    else:
        raise TypeError(f"normalization must be a Normalization, a dict, 'fit' or None, "
                        f"got {normalization!r}")
    if np.issubdtype(y.dtype, np.floating) or y.ndim != 1:
        raise ValueError(f"labels must be integer class indices (N,), got {y.dtype} {y.shape}")
    if n is not None:
        idx = subset_indices(y, n, seed)
        x, y = x[idx], y[idx]
    ds = Dataset(norm.apply(x), y, info.get("classes", ()), norm, info["name"],
                 info.get("single_split", False))
    if not ds.classes:
        ds.classes = tuple(str(c) for c in range(int(ds.y.max()) + 1 if len(ds.y) else 0))
    return ds


def load_shipped(split="test"):
    """The shipped Fashion-MNIST sample, normalised as the shipped model expects.

    ``split="test"``: 1000 test images (100 per class); ``split="train"``: 500 training
    images (50 per class) for calibration. Class-balanced seeded subsets of Fashion-MNIST
    (MIT licence, (c) Zalando SE), regenerated by ``models/make_shipped_subset.py``; see
    ``eventsnn/data/README.md``.

    Parameters
    ----------
    split : {"test", "train"}

    Returns
    -------
    Dataset
        x (N, 1, 28, 28) float32, y (N,) int64.
    """
    return load_dataset("fashion-mnist-sample", split)


def default_model_path():
    """Path of the shipped Fashion-MNIST VGG model and the normalisation it was trained with.

    The model is a native :class:`eventsnn.graph.Graph` ``.npz`` (load it with
    ``eventsnn.graph.load_graph``); its normalisation is stored as data in the sidecar JSON
    beside it (``fmnist_vgg.json``, key ``normalization``) and, identically, in the shipped
    sample (:func:`load_shipped` returns images already normalised with it).

    Returns
    -------
    path : pathlib.Path
    normalization : Normalization

    Raises
    ------
    FileNotFoundError
        If the package was installed without its model file.
    """
    if not SHIPPED_MODEL.is_file():
        raise FileNotFoundError(f"shipped model {SHIPPED_MODEL} is missing; reinstall "
                                "eventsnn or run models/train_vgg_fmnist.py")
    sidecar = SHIPPED_MODEL.with_suffix(".json")
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        return SHIPPED_MODEL, Normalization.from_dict(meta["normalization"])
    with np.load(SHIPPED_SAMPLE, allow_pickle=False) as z:
        return SHIPPED_MODEL, Normalization(z["mean"], z["std"])
