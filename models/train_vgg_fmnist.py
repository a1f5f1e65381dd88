#!/usr/bin/env python3
"""Train the shipped Fashion-MNIST VGG-style CNN (PyTorch, CPU) and export it for eventsnn.

Architecture (only ops of eventsnn's Graph: conv, batchnorm, relu, maxpool, flatten,
linear, identity for dropout)::

    [conv3x3 32 - BN - ReLU] x2 - maxpool 2   (28 -> 14)
    [conv3x3 64 - BN - ReLU] x2 - maxpool 2   (14 -> 7)
    flatten - linear 128 - ReLU - dropout 0.3 - linear 10

Usage::

    python models/train_vgg_fmnist.py --data ../shared/data/fashion-mnist --epochs 12 \\
        --out models/fmnist_vgg --threads 2

Writes OUT.pt (state_dict), OUT.json (accuracy on the full test set, command, time,
normalisation), checkpoints/OUT.ckpt (per epoch, --resume) and, when eventsnn.io.torch is
available, the native Graph OUT.npz, also copied to eventsnn/models/ (the shipped model).
"""

import json
import shutil
import sys
from pathlib import Path

import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import base_parser, export_native, graph_accuracy, shared_data, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def build_model(width=32, hidden=128, n_classes=10, in_ch=1, dropout=0.3):
    """The VGG-style network as an ``nn.Sequential`` (exports op by op)."""
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU()]
    w1, w2 = width, 2 * width
    return nn.Sequential(
        *block(in_ch, w1), *block(w1, w1), nn.MaxPool2d(2),
        *block(w1, w2), *block(w2, w2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(w2 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )


def check_and_ship(graph, meta, out, log=print):
    """Check the Graph forward on the shipped sample, record it, copy to eventsnn/models/."""
    from eventsnn.datasets import Normalization, load_dataset

    norm = Normalization.from_dict(meta["normalization"])
    ds = load_dataset("fashion-mnist-sample", normalization=norm)
    acc = graph_accuracy(graph, ds.x, ds.y)
    meta["graph_accuracy_shipped_sample"] = acc
    meta["n_shipped_sample"] = len(ds)
    out = Path(out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"native graph accuracy on the {len(ds)} shipped test images: {acc:.4f}")
    if out.resolve().parent == (REPO / "models").resolve():
        dest = REPO / "eventsnn" / "models"
        dest.mkdir(exist_ok=True)
        shutil.copy(out.with_suffix(".npz"), dest / out.with_suffix(".npz").name)
        shutil.copy(out.with_suffix(".json"), dest / out.with_suffix(".json").name)
        log(f"copied {out.stem}.npz/.json to {dest}")


def main(argv=None):
    p = base_parser(__doc__.splitlines()[0], shared_data("fashion-mnist"), epochs=12,
                    out_default=str(REPO / "models" / "fmnist_vgg"), lr=0.05)
    p.add_argument("--width", type=int, default=32)
    args = p.parse_args(argv)
    model = build_model(width=args.width)
    out = Path(args.out)
    if args.convert_only:
        import torch
        model.load_state_dict(torch.load(out.with_suffix(".pt")))
        meta = json.loads(out.with_suffix(".json").read_text())
    else:
        meta = train(args, model, pad=2, flip=True)
    graph = export_native(model, out, meta["input_shape"])
    if graph is not None:
        check_and_ship(graph, meta, out)


if __name__ == "__main__":
    main()
