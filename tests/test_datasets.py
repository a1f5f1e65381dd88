"""Tests of eventsnn.datasets: readers, normalisation, subsets, the shipped sample."""

import gzip
import pickle

import numpy as np
import pytest

from eventsnn import datasets as D


# ----------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_idx_round_trip(tmp_path, gz, dtype):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(5, 4, 3)) * 50).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    D.write_idx(path, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = D.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(a, b)


def test_idx_header_layout(tmp_path):
    # magic 0x00000801 (uint8, rank 1), big-endian dimension, then the data
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
    np.testing.assert_array_equal(D.read_idx(path), [7, 8, 9])
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big")
                     + (258).to_bytes(4, "big") + (1).to_bytes(4, "big"))
    np.testing.assert_array_equal(D.read_idx(path), [258, 1])


def test_idx_gzip_detected_from_content(tmp_path):
    path = tmp_path / "no-suffix"
    D.write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3), compress=True)
    np.testing.assert_array_equal(D.read_idx(path), [[0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"\x01\x00\x08\x01xxxx",
                                     b"\x00\x00\x07\x01\x00\x00\x00\x01a", b"PK\x03\x04"])
def test_idx_bad_magic(tmp_path, content):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(path)


def test_idx_truncated(tmp_path):
    path = tmp_path / "t.gz"
    D.write_idx(path, np.zeros((10, 28, 28), np.uint8), compress=False)
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(path)
    path.write_bytes(raw[:9])  # header cut inside the dimensions
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(path)
    gzipped = gzip.compress(raw)
    path.write_bytes(gzipped[: len(gzipped) // 2])  # broken gzip stream
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="dtype"):
        D.write_idx(tmp_path / "x", np.zeros(3, np.uint16))


def _mnist_folder(tmp_path, gz, n=(30, 20)):
    rng = np.random.default_rng(1)
    data = {}
    for split, count, prefix in (("train", n[0], "train"), ("test", n[1], "t10k")):
        x = rng.integers(0, 256, (count, 6, 5), dtype=np.uint8)
        y = (np.arange(count) % 10).astype(np.uint8)
        ext = ".gz" if gz else ""
        D.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{ext}", x)
        D.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{ext}", y)
        data[split] = (x, y)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_folder(tmp_path, gz):
    data = _mnist_folder(tmp_path, gz)
    for split in ("train", "test"):
        x, y = D.read_mnist_folder(tmp_path, split)
        np.testing.assert_array_equal(x, data[split][0])
        np.testing.assert_array_equal(y, data[split][1])
    ds = D.load_dataset(tmp_path, "test")
    assert ds.x.shape == (20, 1, 6, 5) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64
    np.testing.assert_allclose(ds.x[:, 0], data["test"][0] / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="split"):
        D.read_mnist_folder(tmp_path, "val")


def test_mnist_folder_missing_file(tmp_path):
    _mnist_folder(tmp_path, True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        D.read_mnist_folder(tmp_path, "test")


def test_named_dataset_and_single_idx_file(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    data = _mnist_folder(tmp_path / "fashion-mnist", True)
    monkeypatch.setenv("EVENTSNN_DATA", str(tmp_path))
    ds = D.load_dataset("fashion-mnist", "train")
    assert ds.name == "fashion-mnist:train" and ds.classes == D.FASHION_MNIST_CLASSES
    assert len(ds) == len(data["train"][1])
    ds = D.load_dataset(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(ds.y, data["test"][1])
    monkeypatch.setenv("EVENTSNN_DATA", str(tmp_path / "elsewhere"))
    if not D.Path("/usr/share/datasets/mnist").is_dir():
        with pytest.raises(FileNotFoundError, match="EVENTSNN_DATA"):
            D.load_dataset("mnist")


def test_load_dataset_fit_uses_train_split(tmp_path):
    data = _mnist_folder(tmp_path, False)
    ds = D.load_dataset(tmp_path, "test", normalization="fit")
    xt = data["train"][0] / 255.0
    np.testing.assert_allclose(ds.mean, [xt.mean()], rtol=1e-9)
    np.testing.assert_allclose(ds.std, [xt.std()], rtol=1e-9)
    np.testing.assert_allclose(ds.x[:, 0], (data["test"][0] / 255.0 - xt.mean()) / xt.std(),
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- CIFAR

def _cifar_folder(tmp_path, per_batch=4):
    rng = np.random.default_rng(2)
    out = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, per_batch))
        with open(tmp_path / name, "wb") as fh:  # as the CIFAR-10 python version stores it
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"f"] * per_batch}, fh, protocol=2)
        split = "test" if name == "test_batch" else "train"
        out[split][0].append(data)
        out[split][1].append(labels)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


def test_cifar10_batches(tmp_path):
    ref = _cifar_folder(tmp_path)
    x, y = D.read_cifar10_batches(tmp_path, "train")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(x.reshape(20, -1), ref["train"][0])
    np.testing.assert_array_equal(y, ref["train"][1])
    # pixel (c, h, w) = row[c*1024 + h*32 + w]: red plane first
    assert x[3, 1, 2, 5] == ref["train"][0][3, 1024 + 2 * 32 + 5]
    ds = D.load_dataset(tmp_path, "test")
    assert ds.x.shape == (4, 3, 32, 32) and ds.classes == D.CIFAR10_CLASSES


def test_cifar10_bad_batch(tmp_path):
    _cifar_folder(tmp_path)
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match="3072"):
        D.read_cifar10_batches(tmp_path, "test")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10"):
        D.read_cifar10_batches(tmp_path, "test")


# ----------------------------------------------------------------------------- npz

def test_npz_xy_and_split_keys(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)  # channels-last like to_npz.py
    y = np.arange(8, dtype=np.uint8) % 10
    np.savez(tmp_path / "cifar10.npz", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    ds = D.load_dataset(tmp_path / "cifar10.npz", "train")
    assert ds.x.shape == (8, 3, 32, 32) and ds.classes == D.CIFAR10_CLASSES
    np.testing.assert_allclose(ds.x, x.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    assert len(D.load_dataset(tmp_path / "cifar10.npz", "test")) == 4

    np.savez(tmp_path / "plain.npz", x=x[:, :, :, 0], y=y.astype(np.int64))
    ds = D.load_dataset(tmp_path / "plain.npz", "train")
    assert ds.x.shape == (8, 1, 32, 32)
    assert ds.classes == tuple(str(i) for i in range(8))

    np.savez(tmp_path / "bad.npz", images=x, labels=y)
    with pytest.raises(ValueError, match="'x' and 'y'"):
        D.read_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "mismatch.npz", x=x, y=y[:3])
    with pytest.raises(ValueError, match="labels"):
        D.read_npz(tmp_path / "mismatch.npz")


def test_unknown_source():
    with pytest.raises(FileNotFoundError, match="known data set name"):
        D.load_dataset("no-such-dataset-or-path")


# ----------------------------------------------------------------------------- normalisation

def test_normalization_apply_and_round_trip():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    norm = D.Normalization([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    out = norm.apply(x)
    assert out.dtype == np.float32 and out.shape == (5, 3, 4, 4)
    ref = (x.transpose(0, 3, 1, 2) / 255.0 - np.array([0.4, 0.5, 0.6])[:, None, None]) \
        / np.array([0.2, 0.25, 0.3])[:, None, None]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert D.Normalization.from_dict(norm.to_dict()) == norm
    # float input is taken as already scaled to [0, 1]
    np.testing.assert_allclose(norm.apply(x.astype(np.float32) / 255), out, rtol=1e-5,
                               atol=1e-6)


def test_normalization_fit_per_channel():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (50, 3, 6, 6), dtype=np.uint8)
    norm = D.Normalization.fit(x)
    xs = x / 255.0
    np.testing.assert_allclose(norm.mean, xs.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(norm.std, xs.std(axis=(0, 2, 3)), rtol=1e-9)
    z = norm.apply(x)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_normalization_validation():
    with pytest.raises(ValueError, match="positive"):
        D.Normalization([0.5], [0.0])
    with pytest.raises(ValueError, match="per channel"):
        D.Normalization([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="channels"):
        D.Normalization([0.1, 0.2], [0.3, 0.3]).apply(np.zeros((1, 3, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="'mean' and 'std'"):
        D.Normalization.from_dict({"mu": 1})
    with pytest.raises(TypeError, match="normalization"):
        D.load_dataset("fashion-mnist-sample", normalization=3)


# ----------------------------------------------------------------------------- subsets

def test_subset_balanced_seeded_not_prefix():
    y = np.repeat(np.arange(10), 100)  # sorted by class, like to_npz.py output
    x = np.arange(1000, dtype=np.float32).reshape(1000, 1, 1, 1)
    ds = D.Dataset(x, y)
    s = D.subset(ds, 50, seed=1)
    assert len(s) == 50 and np.bincount(s.y, minlength=10).tolist() == [5] * 10
    assert len(set(s.x.ravel().tolist())) == 50  # no repeats
    np.testing.assert_array_equal(s.x, D.subset(ds, 50, seed=1).x)  # deterministic
    assert not np.array_equal(s.x, D.subset(ds, 50, seed=2).x)
    assert not np.array_equal(np.sort(s.x.ravel()), np.arange(50))
    xs, ys = D.subset((x, y), 23, seed=0)  # tuple in, tuple out; sizes differ by <= 1
    counts = np.bincount(ys, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 23
    with pytest.raises(ValueError, match="subset size"):
        D.subset(ds, 0)
    with pytest.raises(ValueError, match="subset size"):
        D.subset(ds, 1001)


def test_subset_unbalanced_classes():
    y = np.array([0] * 3 + [1] * 20)
    idx = D.subset_indices(y, 10, seed=0)
    assert np.bincount(y[idx]).tolist() == [3, 7]


# ----------------------------------------------------------------------------- shipped

def test_shipped_sample():
    ds = D.load_shipped()
    assert ds.x.shape == (1000, 1, 28, 28) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64
    assert np.bincount(ds.y, minlength=10).tolist() == [100] * 10
    assert ds.classes == D.FASHION_MNIST_CLASSES
    assert ds.name == "fashion-mnist-sample:test"
    assert len(ds.mean) == 1 and 0.2 < ds.mean[0] < 0.4 and 0.3 < ds.std[0] < 0.4
    with np.load(D.SHIPPED_SAMPLE) as z:
        raw, index, index_train = z["x_test"], z["index_test"], z["index_train"]
    assert raw.dtype == np.uint8 and len(np.unique(index)) == 1000
    assert not np.array_equal(np.sort(index), np.arange(1000))
    np.testing.assert_array_equal(ds.x, ds.normalization.apply(raw))
    train = D.load_shipped("train")  # calibration images, disjoint from the test set
    assert train.x.shape == (500, 1, 28, 28) and train.normalization == ds.normalization
    assert np.bincount(train.y, minlength=10).tolist() == [50] * 10
    assert len(np.unique(index_train)) == 500


def test_default_model_normalization_matches_sample():
    try:
        path, norm = D.default_model_path()
    except FileNotFoundError:
        pytest.skip("shipped model not built yet (models/train_vgg_fmnist.py)")
    assert path.suffix == ".npz" and path.is_file()
    assert norm == D.load_shipped().normalization


def test_shipped_model_reproduces_recorded_accuracy():
    import json

    from eventsnn.graph import load_graph

    try:
        path, norm = D.default_model_path()
    except FileNotFoundError:
        pytest.skip("shipped model not built yet (models/train_vgg_fmnist.py)")
    meta = json.loads(path.with_suffix(".json").read_text())
    graph = load_graph(path)
    ds = D.load_shipped()
    acc = float(np.mean(graph.forward(ds.x).argmax(1) == ds.y))
    assert acc == pytest.approx(meta["graph_accuracy_shipped_sample"], abs=1e-9)
    assert meta["test_accuracy"] >= 0.91 and meta["n_test"] == 10000


# ----------------------------------------------------------------------------- real data

def test_real_fashion_mnist_and_shipped_provenance(shared_dir):
    folder = shared_dir / "data" / "fashion-mnist"
    x, y = D.read_mnist_folder(folder, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    with np.load(D.SHIPPED_SAMPLE) as z:  # the shipped sample is what the script says
        np.testing.assert_array_equal(z["x_test"], x[z["index_test"]])
        np.testing.assert_array_equal(z["y_test"], y[z["index_test"]])
        np.testing.assert_array_equal(z["index_test"], D.subset_indices(y, 1000, seed=0))
        xt, yt = D.read_mnist_folder(folder, "train")
        np.testing.assert_array_equal(z["x_train"], xt[z["index_train"]])
        np.testing.assert_array_equal(z["y_train"], yt[z["index_train"]])
        norm = D.Normalization(z["mean"], z["std"])
    # the stored normalisation is Normalization.fit of the whole training split
    assert norm == D.Normalization.fit(xt)


def test_real_mnist(shared_dir):
    folder = shared_dir / "data" / "mnist"
    x, y = D.read_mnist_folder(folder, "test")
    assert x.shape == (10000, 28, 28) and y.max() == 9
    ds = D.load_dataset(folder, "test", n=200, seed=3)
    assert ds.x.shape == (200, 1, 28, 28) and np.bincount(ds.y).tolist() == [20] * 10


def test_cifar10_jpeg_archive(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    import io
    import tarfile

    from eventsnn.datasets import CIFAR10_CLASSES, load_dataset, read_cifar10_jpeg

    rng = np.random.default_rng(0)
    arch = tmp_path / "c.tar.gz"
    with tarfile.open(arch, "w:gz") as tar:
        for split, cls, k in [("test", "dog", 1), ("test", "airplane", 0), ("train", "cat", 0)]:
            buf = io.BytesIO()
            pil.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
            data = buf.getvalue()
            info = tarfile.TarInfo(f"{split}/{cls}/{k:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    x, y = read_cifar10_jpeg(arch, "test")
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    assert [CIFAR10_CLASSES[i] for i in y] == ["airplane", "dog"]   # sorted by name
    ds = load_dataset(arch, split="train")
    assert ds.x.shape == (1, 3, 32, 32) and ds.classes[ds.y[0]] == "cat"
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="tar.gz"):
        read_cifar10_jpeg(bad)


def test_real_cifar10_jpeg_archive(shared_dir):
    pytest.importorskip("PIL")
    from eventsnn.datasets import read_cifar10_jpeg

    x, y = read_cifar10_jpeg(shared_dir / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz", "test")
    assert x.shape == (10000, 32, 32, 3) and np.bincount(y).tolist() == [1000] * 10
