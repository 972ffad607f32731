"""Reading a W&B offline run back from its .wandb file, as wandb's own protobuf records.

wandb 0.31 ships no Python reader of the file any more (its Go service writes it, and `wandb
sync` reads it to upload). The file is LevelDB's log format, which wandb documents in its
source (the record header, the 32 KiB blocks): records of wandb.proto.wandb_internal_pb2.Record,
each checked against its CRC-32 here, so a misread fails loudly rather than reading garbage.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

FILE_HEADER = struct.Struct("<4sHB")  # ":W&B", magic 0xBEE1, version 0
RECORD_HEADER = struct.Struct("<IHB")  # CRC-32 (of the type byte, then the data), length, type
BLOCK = 32768  # a record's header never straddles a block: a shorter tail is padding
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    ident, magic, version = FILE_HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path}: not a .wandb file"
    offset, pending = FILE_HEADER.size, b""
    while offset + RECORD_HEADER.size <= len(data):
        if BLOCK - offset % BLOCK < RECORD_HEADER.size:
            offset += BLOCK - offset % BLOCK
            continue
        checksum, length, kind = RECORD_HEADER.unpack_from(data, offset)
        if kind == 0 and length == 0:
            break  # the zeros after the last record
        payload = data[offset + RECORD_HEADER.size:offset + RECORD_HEADER.size + length]
        assert zlib.crc32(payload, zlib.crc32(bytes([kind]))) == checksum, f"{path}: bad record at {offset}"
        offset += RECORD_HEADER.size + length
        pending += payload
        if kind in (FULL, LAST):
            yield wandb_internal_pb2.Record.FromString(pending)
            pending = b""


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def history(path: Path) -> list[dict]:
    """Every wandb.log call's values, in order."""
    return [{_key(item): json.loads(item.value_json) for item in record.history.item}
            for record in records(path) if record.WhichOneof("record_type") == "history"]


def run_info(path: Path) -> wandb_internal_pb2.RunRecord:
    """The run record: its id, group, project and config at start."""
    return next(record.run for record in records(path) if record.WhichOneof("record_type") == "run")


def config_of(run: wandb_internal_pb2.RunRecord) -> dict:
    return {_key(item): json.loads(item.value_json) for item in run.config.update}
