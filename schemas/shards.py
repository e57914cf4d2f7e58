"""WebDataset shard writer: whole samples, bounded by count and bytes, atomic, deterministic.

Only what is specific to shards lives here (the sink pattern of Ray Data's
`webdataset_datasink`): member naming, size budgets, temp-then-rename. Tar
headers carry fixed mtime/uid/gid so the same samples give the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

SHARD_PATTERN = "shard-{:06d}.tar"


def encode_field(value: Any) -> bytes:
    """bytes as is; str as UTF-8; dict/list as canonical JSON; numpy arrays as .npy."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue()
    raise TypeError(f"cannot store a {type(value).__name__} in a shard")


class ShardWriter:
    """Write samples `{key: {ext: value}}` into `out_dir/shard-NNNNNN.tar` files.

    A shard is closed before a sample would push it past `max_samples` or
    `max_bytes` (a single sample larger than `max_bytes` gets a shard of its own).
    """

    def __init__(
        self,
        out_dir: str | Path,
        max_samples: int = 1000,
        max_bytes: int = 1 << 30,
        start_index: int = 0,
    ) -> None:
        if max_samples < 1 or max_bytes < 1:
            raise ValueError("max_samples and max_bytes must be positive")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.index = start_index
        self.written: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._count = self._bytes = 0
        self._reserved = False

    def write(self, key: str, fields: dict[str, Any]) -> str:
        """Add one sample; returns the name of the shard that holds it."""
        if "." in key or "/" in key:
            raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
        payload = {ext: encode_field(v) for ext, v in sorted(fields.items())}
        size = sum(len(b) + 1024 for b in payload.values())  # + tar header and padding
        if not self._reserved:
            self.reserve(size)
        self._reserved = False
        for ext, data in payload.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._count += 1
        self._bytes += size
        return SHARD_PATTERN.format(self.index)

    def reserve(self, size: int) -> str:
        """Make room for a sample of about `size` bytes; returns the shard it will go to.

        Lets a caller put the shard's name inside the sample (the clip record does).
        The next `write` goes to that shard whatever its real size.
        """
        if self._tar is not None and (
            self._count >= self.max_samples or self._bytes + size > self.max_bytes
        ):
            self._finish()
        if self._tar is None:
            self._open()
        self._reserved = True
        return SHARD_PATTERN.format(self.index)

    def _open(self) -> None:
        self._tmp = self.out_dir / (SHARD_PATTERN.format(self.index) + ".tmp")
        # Open across many write() calls; closed in _finish.
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self._count = self._bytes = 0

    def _finish(self) -> None:
        assert self._tar is not None
        self._tar.close()
        final = self.out_dir / SHARD_PATTERN.format(self.index)
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, final)
        self.written.append(final.name)
        self._tar = None
        self.index += 1

    def close(self) -> list[str]:
        """Finish the open shard; returns the names of every shard written."""
        if self._tar is not None:
            self._finish()
        return self.written

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
