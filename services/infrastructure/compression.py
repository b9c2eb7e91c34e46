"""How stored events are compressed: zlib, with a window sized for small events."""

from __future__ import annotations

import zlib

from eventsourcing.compressor import ZlibCompressor

WINDOW_BITS = 12  # a 4 KiB window: our events are a few hundred bytes to a few KiB
MEMORY_LEVEL = 4


class SmallEventCompressor(ZlibCompressor):
    """eventsourcing's ZlibCompressor with a 4 KiB window instead of 32 KiB.

    Setting up zlib's default window costs about ten times more than compressing a
    500-byte event with it (44 µs against 4 µs, same output size; docs/dispatcher.md),
    and every delivery stores three events. The output is ordinary zlib, so events
    written by either compressor read back with either (``decompress`` is inherited).
    """

    def compress(self, data: bytes) -> bytes:
        compressor = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL
        )
        return compressor.compress(data) + compressor.flush()
