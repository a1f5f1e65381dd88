#!/usr/bin/env python3
"""Train a small CIFAR-style ResNet on MNIST or Fashion-MNIST (PyTorch, CPU), resumable.

Network: :class:`architectures.ResNet` -- stem conv3x3 16, three stages of ``--blocks``
basic blocks (16, 32, 64 channels; 28 -> 14 -> 7), 1x1-conv shortcuts where the shape
changes, global average pool, linear. ``--blocks 1`` is ResNet-8, ``--blocks 3`` ResNet-20.

Usage::

    python models/train_resnet.py --dataset fashion-mnist --blocks 1 --epochs 10 --threads 2
    python models/train_resnet.py --dataset mnist --blocks 1 --epochs 6 --threads 2
    # interrupted? add --resume (continues from checkpoints/<OUT name>.ckpt)

Writes OUT.pt, OUT.json (full-test-set accuracy, command, time, normalisation), and with
eventsnn.io.torch_import the native Graph OUT.npz (default OUT: models/<dataset>_resnet<depth>).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import base_parser, run, shared_data  # noqa: E402
from architectures import ResNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHORT = {"mnist": "mnist", "fashion-mnist": "fmnist"}


def main(argv=None):
    p = base_parser(__doc__.splitlines()[0], None, epochs=10, out_default=None, lr=0.1)
    p.add_argument("--dataset", choices=sorted(SHORT), default="fashion-mnist")
    p.add_argument("--blocks", type=int, default=1, help="basic blocks per stage")
    p.add_argument("--width", type=int, default=16, help="channels of the first stage")
    args = p.parse_args(argv)
    if args.data is None:
        args.data = shared_data(args.dataset)
    if args.out is None:
        args.out = str(REPO / "models" / f"{SHORT[args.dataset]}_resnet{6 * args.blocks + 2}")
    w = args.width
    model = ResNet(args.blocks, (w, 2 * w, 4 * w), in_ch=1, n_classes=10)
    # MNIST digits are not mirror-symmetric: no flips there
    run(args, model, pad=2, flip=args.dataset == "fashion-mnist")


if __name__ == "__main__":
    main()
