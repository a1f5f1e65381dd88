#!/usr/bin/env python3
"""Regenerate eventsnn/data/fashion_mnist_sample.npz, the shipped Fashion-MNIST test sample.

1000 images of the Fashion-MNIST *test* set, 100 per class, chosen by
``eventsnn.datasets.subset_indices(y_test, 1000, seed=0)`` (class-balanced, seeded), stored
as uint8 with their labels, the class names, and the normalisation (per-channel mean/std of
the Fashion-MNIST *training* images, ``Normalization.fit``) that the shipped model
``models/fmnist_vgg`` was trained with, plus the indices into the test set.

Usage::

    python models/make_shipped_subset.py [--data ../shared/data/fashion-mnist] [--out PATH]
"""

import argparse
from pathlib import Path

import numpy as np

from eventsnn.datasets import (FASHION_MNIST_CLASSES, SHIPPED_SAMPLE, Normalization,
                               read_mnist_folder, subset_indices)

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fashion-mnist"))
    p.add_argument("--out", default=str(SHIPPED_SAMPLE))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    x_train, _ = read_mnist_folder(args.data, "train")
    norm = Normalization.fit(x_train)
    x, y = read_mnist_folder(args.data, "test")
    idx = subset_indices(y, args.n, args.seed)
    np.savez_compressed(
        args.out, x=x[idx], y=y[idx], index=idx.astype(np.int32),
        classes=np.array(FASHION_MNIST_CLASSES), mean=np.array(norm.mean, np.float64),
        std=np.array(norm.std, np.float64))
    counts = np.bincount(y[idx], minlength=10)
    print(f"wrote {args.out}: {len(idx)} images, per class {counts.tolist()}, "
          f"normalisation {norm.to_dict()}, {Path(args.out).stat().st_size} bytes")


if __name__ == "__main__":
    main()
