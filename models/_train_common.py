"""Shared training machinery for the scripts in models/ (PyTorch, CPU friendly).

Every script: loads raw uint8 data through :mod:`eventsnn.datasets`, fits the normalisation
on the *training* split (stored with the model as data), trains with SGD/Adam + cosine
schedule and light augmentation, checkpoints every epoch (``--resume`` continues from the
last checkpoint), evaluates on the full test split, writes ``<out>.pt`` (state_dict) and
``<out>.json`` (accuracy, command, time, normalisation) and, when ``eventsnn.io.torch_import`` is
available, the native eventsnn Graph ``<out>.npz``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eventsnn.datasets import Normalization, read_raw


def base_parser(description, data_default, epochs, out_default, lr, batch_size=128,
                optimizer="sgd"):
    """argparse parser with the options every training script shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=data_default,
                   help="data folder or .npz (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--out", default=out_default,
                   help="output prefix: writes OUT.pt, OUT.json, OUT.npz (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=optimizer)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file (default: checkpoints/<OUT name>.ckpt, git-ignored); "
                   "written after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--limit-train", type=int, default=None,
                   help="use only this many training images (smoke tests)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--convert-only", action="store_true",
                   help="skip training: load OUT.pt and (re)write the native Graph OUT.npz")
    return p


def load_uint8(data, split):
    """Raw uint8 NCHW images and int64 labels of one split."""
    x, y, _ = read_raw(data, split)
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray(y, np.int64)


def augment(xb, pad, flip):
    """Random crop after zero padding by ``pad`` pixels, and random horizontal flip.

    ``xb`` is scaled to [0, 1] but not yet normalised, so the padding is black (the
    background of MNIST-style images)."""
    n, _, h, w = xb.shape
    if pad:
        xp = F.pad(xb, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,))
        dx = torch.randint(0, 2 * pad + 1, (n,))
        out = torch.empty_like(xb)
        for i in range(n):
            out[i] = xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        xb = out
    if flip:
        m = torch.rand(n) < 0.5
        xb[m] = xb[m].flip(-1)
    return xb


def evaluate(model, x, y, mean, std, batch=500):
    """Top-1 accuracy of ``model`` on uint8 images ``x`` normalised by ``mean``/``std``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = (torch.from_numpy(x[i:i + batch]).float() / 255 - mean) / std
            correct += (model(xb).argmax(1).numpy() == y[i:i + batch]).sum()
    return float(correct) / len(x)


def train(args, model, pad=2, flip=True, log=print):
    """Train ``model`` as the command line says; returns the metadata dict (also saved)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path = (Path(args.checkpoint) if args.checkpoint
                 else Path(__file__).resolve().parents[1] / "checkpoints" / f"{out.name}.ckpt")
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)

    xtr, ytr = load_uint8(args.data, "train")
    xte, yte = load_uint8(args.data, "test")
    if args.limit_train:
        idx = np.random.default_rng(args.seed).permutation(len(xtr))[:args.limit_train]
        xtr, ytr = xtr[idx], ytr[idx]
    norm = Normalization.fit(xtr)
    c = xtr.shape[1]
    mean = torch.tensor(norm.mean * (c if len(norm.mean) == 1 else 1)).view(1, -1, 1, 1).float()
    std = torch.tensor(norm.std * (c if len(norm.std) == 1 else 1)).view(1, -1, 1, 1).float()
    log(f"train {xtr.shape} test {xte.shape} normalisation {norm.to_dict()}")

    steps_per_epoch = math.ceil(len(xtr) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                              weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warm = min(steps_per_epoch // 2, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))

    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    start_epoch, elapsed, history, commands = 0, 0.0, [], []
    if args.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["torch_rng"])
        start_epoch, elapsed, history = ck["epoch"], ck["elapsed"], ck["history"]
        commands = ck.get("commands", [f"(earlier run, epochs 1..{start_epoch})"])
        log(f"resumed from {ckpt_path} at epoch {start_epoch}")

    commands = commands + [f"{command}  # epochs {start_epoch + 1}..{args.epochs}"]
    xtr_t = torch.from_numpy(xtr)
    ytr_t = torch.from_numpy(ytr)
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        model.train()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        perm = torch.randperm(len(xtr_t), generator=g)
        tot_loss = 0.0
        for s in range(steps_per_epoch):
            bi = perm[s * args.batch_size:(s + 1) * args.batch_size]
            xb = xtr_t[bi].float() / 255
            if not args.no_augment:
                xb = augment(xb, pad, flip)
            xb = (xb - mean) / std
            loss = F.cross_entropy(model(xb), ytr_t[bi])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item()
        acc = evaluate(model, xte, yte, mean, std)
        elapsed += time.time() - t0
        history.append({"epoch": epoch + 1, "loss": tot_loss / steps_per_epoch,
                        "test_acc": acc, "elapsed_s": round(elapsed, 1)})
        log(f"epoch {epoch + 1}/{args.epochs} loss {tot_loss / steps_per_epoch:.4f} "
            f"test {acc:.4f} ({time.time() - t0:.0f} s, total {elapsed:.0f} s)")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                    "epoch": epoch + 1, "elapsed": elapsed, "history": history,
                    "commands": commands},
                   ckpt_path)

    acc = evaluate(model, xte, yte, mean, std)
    torch.save(model.state_dict(), out.with_suffix(".pt"))
    meta = {
        "test_accuracy": acc,
        "n_test": int(len(yte)),
        "data": str(args.data),
        "command": command,
        "commands": commands,
        "epochs": args.epochs,
        "train_time_s": round(elapsed, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "normalization": norm.to_dict(),
        "input_shape": list(xtr.shape[1:]),
        "history": history,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"final test accuracy {acc:.4f}; wrote {out.with_suffix('.pt')}, "
        f"{out.with_suffix('.json')}")
    return meta


def export_native(model, out, input_shape, log=print):
    """Write the native eventsnn Graph ``<out>.npz`` via ``eventsnn.io.torch_import.from_torch``.

    Returns the Graph, or None when the importer is not available yet.
    """
    try:
        from eventsnn.io.torch_import import from_torch
    except ImportError as exc:
        log(f"eventsnn.io.torch_import not available ({exc}); rerun with --convert-only later")
        return None
    model.eval()
    example = torch.zeros(1, *input_shape)
    graph = from_torch(model, example)
    path = Path(out).with_suffix(".npz")
    graph.save(path)
    log(f"wrote native graph {path}")
    return graph


def graph_accuracy(graph, x, y, batch=250):
    """Accuracy of ``graph.forward`` on normalised float32 images."""
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((graph.forward(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def shared_data(*parts):
    """Default data location ``../shared/data/...`` relative to the repository."""
    return str(Path(__file__).resolve().parents[2].joinpath("shared", "data", *parts))



def run(args, model, pad=2, flip=True, on_graph=None, log=print):
    """Train (or with ``--convert-only`` reload) ``model``, then export the native Graph.

    ``on_graph(graph, meta, out)`` is called after a successful export (checks, copies).
    """
    out = Path(args.out)
    if args.convert_only:
        model.load_state_dict(torch.load(out.with_suffix(".pt")))
        meta = json.loads(out.with_suffix(".json").read_text())
    else:
        meta = train(args, model, pad=pad, flip=flip, log=log)
    graph = export_native(model, out, meta["input_shape"], log=log)
    if graph is not None:
        x, y = load_uint8(args.data, "test")
        from eventsnn.datasets import Normalization
        xn = Normalization.from_dict(meta["normalization"]).apply(x)
        meta["graph_test_accuracy"] = graph_accuracy(graph, xn, y)
        out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        log(f"native graph accuracy on the full test split: {meta['graph_test_accuracy']:.4f}")
        if on_graph is not None:
            on_graph(graph, meta, out)
    return meta
