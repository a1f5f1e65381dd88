#!/usr/bin/env python3
"""Regenerate eventsnn/data/fashion_mnist_sample.npz, the shipped Fashion-MNIST sample.

* ``x_test``/``y_test``: 1000 images of the Fashion-MNIST *test* set, 100 per class, chosen
  by ``eventsnn.datasets.subset_indices(y_test, 1000, seed=0)`` (class-balanced, seeded);
* ``x_train``/``y_train``: 500 *training* images (50 per class, same rule, seed 0), for
  calibrating conversions without touching the test images;
* ``index_test``/``index_train``: positions in the original files;
* ``classes``; ``mean``/``std``: the normalisation (per-channel mean/std of all 60 000
  training images, ``Normalization.fit``) the shipped model ``eventsnn/models/fmnist_vgg`` was
  trained with.

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
    p.add_argument("--n", type=int, default=1000, help="test images")
    p.add_argument("--n-train", type=int, default=500, help="training (calibration) images")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    x_train, y_train = read_mnist_folder(args.data, "train")
    norm = Normalization.fit(x_train)
    x_test, y_test = read_mnist_folder(args.data, "test")
    i_test = subset_indices(y_test, args.n, args.seed)
    i_train = subset_indices(y_train, args.n_train, args.seed)
    np.savez_compressed(
        args.out, x_test=x_test[i_test], y_test=y_test[i_test],
        index_test=i_test.astype(np.int32), x_train=x_train[i_train],
        y_train=y_train[i_train], index_train=i_train.astype(np.int32),
        classes=np.array(FASHION_MNIST_CLASSES), mean=np.array(norm.mean, np.float64),
        std=np.array(norm.std, np.float64))
    print(f"wrote {args.out}: {len(i_test)} test images, per class "
          f"{np.bincount(y_test[i_test], minlength=10).tolist()}; {len(i_train)} train images, "
          f"per class {np.bincount(y_train[i_train], minlength=10).tolist()}; normalisation "
          f"{norm.to_dict()}; {Path(args.out).stat().st_size} bytes")


if __name__ == "__main__":
    main()
