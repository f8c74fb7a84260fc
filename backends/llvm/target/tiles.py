"""The shape of a register tile, the one target fact that is a structure rather than a
number: kept apart from the architecture modules so every one of them (``x86_64`` today)
returns the same type and the emitters depend on none of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TileShape:
    """Output pixels per tile (R) and output-channel blocks per tile (J)."""

    pixels: int
    blocks: int
