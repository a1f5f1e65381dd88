#!/usr/bin/env python3
"""Train a reduced-width VGG-style CNN with max pooling on the CIFAR-10 JPEG copy, resumable.

Network (:func:`architectures.vgg`)::

    [conv 32]x2 - M - [conv 64]x2 - M - [conv 128]x2 - M - flatten - linear 256 - ReLU -
    dropout - linear 10          (each conv: 3x3, BN, ReLU; M: 2x2 max pool; 32 -> 4)

``--width 64`` doubles every conv width. Data: an ``.npz`` written by
``shared/data/cifar10-jpeg/to_npz.py`` (made on first use at ``checkpoints/cifar10_jpeg.npz``
when ``--data`` is left at its default), or a CIFAR-10 python batch folder.

Usage::

    python models/train_vgg_cifar10.py --epochs 40 --threads 2
    # interrupted? add --resume (continues from checkpoints/<OUT name>.ckpt)

Writes OUT.pt, OUT.json (full-test-set accuracy, command, time, normalisation) and, with
eventsnn.io.torch_import, the native Graph OUT.npz (default OUT: models/cifar10_vgg).
"""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_common import base_parser, run, shared_data  # noqa: E402
from architectures import vgg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NPZ = REPO / "checkpoints" / "cifar10_jpeg.npz"


def main(argv=None):
    p = base_parser(__doc__.splitlines()[0], str(DEFAULT_NPZ), epochs=40,
                    out_default=str(REPO / "models" / "cifar10_vgg"), lr=0.05)
    p.add_argument("--width", type=int, default=32)
    args = p.parse_args(argv)
    if Path(args.data) == DEFAULT_NPZ and not DEFAULT_NPZ.is_file():
        DEFAULT_NPZ.parent.mkdir(parents=True, exist_ok=True)
        script = shared_data("cifar10-jpeg", "to_npz.py")
        print(f"decoding the JPEG copy with {script} -> {DEFAULT_NPZ}", flush=True)
        subprocess.run([sys.executable, script, str(DEFAULT_NPZ)], check=True)
    w = args.width
    model = vgg([w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, "M"], in_ch=3, in_size=32,
                hidden=256, n_classes=10, dropout=0.3)
    run(args, model, pad=4, flip=True)


if __name__ == "__main__":
    main()
