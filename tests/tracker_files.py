"""Readers for what trackers write, so tests check the values a user would see: the history
rows of an offline wandb run and the scalars of a TensorBoard event file."""

import json
import struct
from pathlib import Path

BLOCK = 32768  # wandb's run file: a leveldb-style log of 32 KiB blocks of records
HEADER = 7  # crc32 (4), length (2), kind (1): 1 full, 2 first, 3 middle, 4 last


def wandb_history(path) -> list[dict]:
    """The history rows of a wandb run file (``run-<id>.wandb``)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a wandb run file"
    pos, payload, rows = 7, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        payload = chunk if kind in (1, 2) else payload + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        (i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                        for i in record.history.item
                    }
                )
    return rows


def tensorboard_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value)]}`` of every event file in ``logdir`` (TFRecord framing: length
    u64, its crc u32, the Event protobuf, its crc u32)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out
