"""Read and write safetensors checkpoints one tensor at a time, with plain file reads.

A safetensors file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
byte offsets) and the raw tensor bytes.  Reading each tensor with ``readinto`` (rather than through a
memory map, whose touched pages count as resident memory until the file is closed) and writing the
header first, then each tensor's bytes, keeps a process's memory near the largest single tensor
however large the checkpoint is.  Sharded checkpoints list their files in
``model.safetensors.index.json`` (``weight_map``: tensor name -> file name).

Example::

    checkpoint = SafetensorsCheckpoint("llama-dir")
    for name in checkpoint.names():
        print(name, checkpoint.info(name).shape)
    with ShardWriter("out/model.safetensors", {"w": ("BF16", (2, 3))}) as writer:
        writer.write("w", torch.zeros(2, 3, dtype=torch.bfloat16))
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies: its file, dtype name, shape and absolute byte range in the file."""

    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors of one safetensors file (name -> :class:`TensorInfo`) and its ``__metadata__``."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + length
    unknown = sorted({entry["dtype"] for entry in header.values()} - set(DTYPES))
    if unknown:
        raise ValueError(f"structprune.adapters.shards: {path} holds dtypes {unknown} that this reader does not know")
    infos = {name: TensorInfo(path, e["dtype"], tuple(e["shape"]), base + e["data_offsets"][0],
                              base + e["data_offsets"][1]) for name, e in header.items()}
    return infos, metadata


class SafetensorsCheckpoint:
    """A single-file or sharded safetensors checkpoint in a directory, read tensor by tensor."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index = self.directory / INDEX_NAME
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = sorted(set(weight_map.values()))
        elif (self.directory / SINGLE_NAME).is_file():
            self.files = [SINGLE_NAME]
        else:
            raise FileNotFoundError(f"structprune.adapters.shards: {self.directory} has neither {INDEX_NAME} nor "
                                    f"{SINGLE_NAME}; save the model with save_pretrained(safe_serialization=True)")
        self.sharded = index.is_file()
        self.tensors: dict[str, TensorInfo] = {}
        self.by_file: dict[str, list[str]] = {}
        for file in self.files:
            infos, _ = read_header(self.directory / file)
            self.tensors.update(infos)
            self.by_file[file] = sorted(infos, key=lambda n: infos[n].start)

    def names(self) -> list[str]:
        """Every tensor name, file by file, in on-disk order."""
        return [name for file in self.files for name in self.by_file[file]]

    def info(self, name: str) -> TensorInfo:
        return self.tensors[name]

    def read(self, name: str) -> torch.Tensor:
        """The whole tensor ``name`` (a fresh CPU tensor, no memory map)."""
        info = self.tensors[name]
        return _read_bytes(info.file, info.start, info.end - info.start).view(info.torch_dtype).reshape(info.shape)

    def row_blocks(self, name: str, max_bytes: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first row, block)``: ``name`` as consecutive blocks of rows along axis 0, each at most
        ``max_bytes`` (one row at least), for reductions over tensors too large to hold at once."""
        info = self.tensors[name]
        if not info.shape:
            yield 0, self.read(name)
            return
        row_bytes = max(1, (info.end - info.start) // max(info.shape[0], 1))
        rows = max(1, max_bytes // row_bytes)
        for first in range(0, info.shape[0], rows):
            count = min(rows, info.shape[0] - first)
            raw = _read_bytes(info.file, info.start + first * row_bytes, count * row_bytes)
            yield first, raw.view(info.torch_dtype).reshape((count,) + info.shape[1:])


def _read_bytes(path: Path, offset: int, size: int) -> torch.Tensor:
    buffer = torch.empty(size, dtype=torch.uint8)
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        view, done = memoryview(buffer.numpy()), 0
        while done < size:
            got = f.readinto(view[done:])
            if not got:
                raise EOFError(f"structprune.adapters.shards: {path} ends before byte {offset + size}")
            done += got
    return buffer


class ShardWriter:
    """Write one safetensors file whose tensors (name -> (dtype name, shape)) are known up front:
    the header goes first, then :meth:`write` appends each tensor's bytes, in the declared order."""

    def __init__(self, path: str | Path, layout: dict[str, tuple[str, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None):
        self.path, self.order, offset = Path(path), list(layout), 0
        header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
        for name, (dtype, shape) in layout.items():
            size = _numel(shape) * torch.empty((), dtype=DTYPES[dtype]).element_size()
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        self.sizes = {name: header[name]["data_offsets"][1] - header[name]["data_offsets"][0] for name in layout}
        self.total_bytes = offset
        self.file = open(self.path, "wb")
        self.file.write(struct.pack("<Q", len(encoded)) + encoded)
        self.written = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        expected = self.order[self.written]
        if name != expected:
            raise ValueError(f"structprune.adapters.shards: {self.path} expects {expected!r} next, got {name!r}")
        data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8)
        if data.numel() != self.sizes[name]:
            raise ValueError(f"structprune.adapters.shards: {name} has {data.numel()} bytes, the header says "
                             f"{self.sizes[name]}")
        self.file.write(memoryview(data.numpy()))
        self.written += 1

    def close(self) -> None:
        self.file.close()
        if self.written != len(self.order):
            missing = self.order[self.written:]
            raise ValueError(f"structprune.adapters.shards: {self.path} closed with {len(missing)} tensors unwritten "
                             f"({missing[:3]})")

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.file.close()


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count
