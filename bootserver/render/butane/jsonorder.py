"""Key order of translated objects: Ignition's struct order, so output matches Butane's byte for byte."""

from __future__ import annotations


def reorder(out: dict, order) -> None:
    """Put keys back in Ignition's struct order after a hook added some (output cosmetics)."""
    items = [(key, out.pop(key)) for key in order if key in out]
    rest = list(out.items())
    out.clear()
    out.update(items)
    out.update(rest)
