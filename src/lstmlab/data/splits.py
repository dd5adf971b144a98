"""Generic split types shared by every corpus and recipe."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextSplits:
    """Train / validation / test text, plus where each came from (for reports)."""

    train: str
    validation: str
    test: str
    description: str

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            if not getattr(self, name):
                raise ValueError(f"the {name} split is empty ({self.description})")
