"""Markdown tables of the measuring commands' figures."""

from __future__ import annotations

from collections.abc import Iterable


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """A Markdown table: ``header``'s cells, a rule, then one line per row (cells as they are written)."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
