"""A request body as it arrives: in memory up to a threshold, spooled to a temporary file beyond.

The whole body is read before the application runs, so `wsgi.input` never waits on the
network and a slow upload holds no worker; spooling keeps memory bounded meanwhile.
"""

from __future__ import annotations

import io
import tempfile
from typing import BinaryIO


class Body:
    """Accumulates body bytes; `stream()` hands them to the application, rewound."""

    __slots__ = ("_file", "_parts", "size", "threshold")

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.size = 0
        self._parts: list[bytes] = []
        self._file: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        """Append `data`; spools everything to disk once the threshold is passed."""
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._parts.append(data)
        if self.size > self.threshold:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the request
            self._file.writelines(self._parts)
            self._parts = []

    @property
    def spooled(self) -> bool:
        """True once the body lives in a temporary file."""
        return self._file is not None

    def stream(self) -> BinaryIO:
        """A readable stream over the whole body, positioned at its start."""
        if self._file is not None:
            self._file.seek(0)
            return self._file
        parts = self._parts
        return io.BytesIO(parts[0] if len(parts) == 1 else b"".join(parts))

    def close(self) -> None:
        """Release the temporary file, if any."""
        if self._file is not None:
            self._file.close()
