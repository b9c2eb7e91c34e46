"""Stored events stay readable whichever zlib compressor wrote them."""

from __future__ import annotations

import zlib

from eventsourcing.compressor import ZlibCompressor
from hypothesis import given
from hypothesis import strategies as st

from services.infrastructure.compression import SmallEventCompressor

small, default = SmallEventCompressor(), ZlibCompressor()


@given(st.binary(max_size=20_000))
def test_either_compressor_reads_what_the_other_wrote(data: bytes) -> None:
    assert default.decompress(small.compress(data)) == data
    assert small.decompress(default.compress(data)) == data


def test_a_typical_event_compresses_as_well_as_with_the_default_window() -> None:
    event = (
        b'{"body":"{\\"summary\\":\\"Clear communicator; strong on systems design.\\"}",'
        b'"url":"https://example.com/hooks/1","status":"pending"}'
    ) * 4
    compressed = small.compress(event)
    assert len(compressed) < len(event) / 2
    assert len(compressed) <= len(zlib.compress(event)) + 8
