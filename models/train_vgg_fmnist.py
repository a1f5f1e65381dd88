#!/usr/bin/env python3
"""Train the shipped Fashion-MNIST VGG-style CNN (PyTorch, CPU) and export it for eventsnn.

``--dataset mnist`` trains the same network on MNIST (``models/mnist_vgg``, no flips).

Architecture (only ops of eventsnn's Graph: conv, batchnorm, relu, maxpool, flatten,
linear, identity for dropout)::

    [conv3x3 32 - BN - ReLU] x2 - maxpool 2   (28 -> 14)
    [conv3x3 64 - BN - ReLU] x2 - maxpool 2   (14 -> 7)
    flatten - linear 128 - ReLU - dropout 0.3 - linear 10

Usage::

    python models/train_vgg_fmnist.py --data ../shared/data/fashion-mnist --epochs 12 \\
        --out models/fmnist_vgg --threads 2
    python models/train_vgg_fmnist.py --dataset mnist --epochs 4 --threads 1   # models/mnist_vgg

Writes OUT.pt (state_dict), OUT.json (accuracy on the full test set, command, time,
normalisation), checkpoints/OUT.ckpt (per epoch, --resume) and, when eventsnn.io.torch_import is
available, the native Graph OUT.npz. Only the Fashion-MNIST model written to
models/fmnist_vgg (the default) is also copied to eventsnn/models/ (the shipped model).
"""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import base_parser, graph_accuracy, run, shared_data  # noqa: E402
from architectures import vgg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHORT = {"fashion-mnist": "fmnist", "mnist": "mnist"}
SHIPPED = "fmnist_vgg"


def build_model(width=32, hidden=128, n_classes=10, dropout=0.3):
    """The shipped VGG-style network (see the module docstring) as an ``nn.Sequential``."""
    w = width
    return vgg([w, w, "M", 2 * w, 2 * w, "M"], in_ch=1, in_size=28, hidden=hidden,
               n_classes=n_classes, dropout=dropout)


def is_shipped(out, dataset):
    """True only for the Fashion-MNIST model written to models/fmnist_vgg (the default)."""
    out = Path(out)
    return (dataset == "fashion-mnist" and out.name in (SHIPPED, SHIPPED + ".npz")
            and out.resolve().parent == (REPO / "models").resolve())


def check_and_ship(graph, meta, out, log=print):
    """Check the Graph forward on the shipped sample, record it, copy to eventsnn/models/.

    The copy is made only for the shipped Fashion-MNIST model (see :func:`is_shipped`)."""
    from eventsnn.datasets import Normalization, load_dataset

    norm = Normalization.from_dict(meta["normalization"])
    ds = load_dataset("fashion-mnist-sample", normalization=norm)
    acc = graph_accuracy(graph, ds.x, ds.y)
    meta["graph_accuracy_shipped_sample"] = acc
    meta["n_shipped_sample"] = len(ds)
    out = Path(out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"native graph accuracy on the {len(ds)} shipped test images: {acc:.4f}")
    if is_shipped(out, "fashion-mnist"):
        dest = REPO / "eventsnn" / "models"
        dest.mkdir(exist_ok=True)
        shutil.copy(out.with_suffix(".npz"), dest / out.with_suffix(".npz").name)
        shutil.copy(out.with_suffix(".json"), dest / out.with_suffix(".json").name)
        log(f"copied {out.stem}.npz/.json to {dest}")


def main(argv=None):
    p = base_parser(__doc__.splitlines()[0], None, epochs=12, out_default=None, lr=0.05)
    p.add_argument("--dataset", choices=sorted(SHORT), default="fashion-mnist",
                   help="data set (default: %(default)s); sets the default --data and --out")
    p.add_argument("--width", type=int, default=32)
    args = p.parse_args(argv)
    if args.data is None:
        args.data = shared_data(args.dataset)
    if args.out is None:
        args.out = str(REPO / "models" / f"{SHORT[args.dataset]}_vgg")
    # the shipped-sample check only on Fashion-MNIST; check_and_ship copies into
    # eventsnn/models/ only the shipped model (is_shipped), never an MNIST one
    on_graph = check_and_ship if args.dataset == "fashion-mnist" else None
    # MNIST digits are not mirror-symmetric: no flips there
    run(args, build_model(width=args.width), pad=2, flip=args.dataset == "fashion-mnist",
        on_graph=on_graph)


if __name__ == "__main__":
    main()
