"""Recognise eventsnn's input files by their content, not their name.

:func:`file_kind` looks at the first bytes (and, for ``.npz`` archives, at the names of the
arrays inside) so that an ONNX model without the ``.onnx`` suffix is read as ONNX, a converted
network passed where an ANN is expected is named as such, and random bytes get a message
saying what the file is not (instead of numpy's advice about pickles).
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import numpy as np

KINDS = ("folder", "graph", "network", "data", "npz", "onnx", "tar", "gzip", "idx", "unknown")
"""What :func:`file_kind` can answer."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_IDX_DTYPES = (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)


def _looks_like_onnx(head):
    # An ONNX ModelProto starts with field 1 (ir_version, varint): tag 0x08, then a small
    # version number (1..15 so far).
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 15


def _looks_like_idx(head):
    # IDX: two zero bytes, a dtype code, the rank.
    return len(head) >= 4 and head[:2] == b"\0\0" and head[2] in _IDX_DTYPES and 1 <= head[3] <= 4


def file_kind(path):
    """What ``path`` holds, judged by content.

    Returns
    -------
    str
        One of :data:`KINDS`: ``"folder"``; ``"graph"`` (an ANN written by ``Graph.save``);
        ``"network"`` (a converted network written by ``SpikingNetwork.save``); ``"data"``
        (an ``.npz`` with ``x``/``y`` or ``x_<split>``/``y_<split>`` arrays); ``"npz"`` (any
        other numpy archive); ``"onnx"``; ``"tar"`` (a possibly compressed tar archive);
        ``"gzip"`` (other gzip data, e.g. an IDX file); ``"idx"``; ``"unknown"``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] in _ZIP_MAGIC:
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError):
            return "unknown"
        if "__graph__" in keys:
            return "graph"
        if "__topology__" in keys:
            return "network"
        if {"x", "y"} <= keys or any(k.startswith("x_") for k in keys):
            return "data"
        return "npz"
    if head[:2] == b"\x1f\x8b":
        try:
            return "tar" if tarfile.is_tarfile(path) else "gzip"
        except (OSError, EOFError):
            return "gzip"
    if _looks_like_idx(head):
        return "idx"
    if _looks_like_onnx(head):
        return "onnx"
    if len(head) >= 8 and tarfile.is_tarfile(path):
        return "tar"
    return "unknown"


def describe(kind):
    """A short phrase for a :func:`file_kind` answer, for error messages."""
    return {
        "folder": "a folder", "graph": "an eventsnn ANN graph (.npz, Graph.save)",
        "network": "a converted SpikingNetwork (.npz, SpikingNetwork.save)",
        "data": "a data set (.npz with x/y arrays)", "npz": "a numpy .npz archive",
        "onnx": "an ONNX model", "tar": "a tar archive", "gzip": "gzip-compressed data",
        "idx": "an IDX array file", "unknown": "not a file eventsnn reads (unrecognised content)",
    }[kind]
