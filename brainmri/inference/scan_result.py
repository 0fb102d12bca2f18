"""What :meth:`~brainmri.inference.predictor.Predictor.predict_volume` returns: one result per slice of a scan,
and the scan's summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from brainmri.inference.verdict import Verdict

if TYPE_CHECKING:
    from brainmri.io.volumes import Volume


@dataclass
class SliceResult:
    index: int  # position in the volume
    probabilities: dict[str, float] | None = None  # None when skipped
    verdict: Verdict | None = None
    skipped: str = ""  # why the slice was not read ("" when it was)

    def tumour_probability(self) -> float:
        """1 − P(no tumour) (0 for a skipped slice or a model without a "notumor" class)."""
        if self.probabilities is None or "notumor" not in self.probabilities:
            return 0.0
        return 1.0 - self.probabilities["notumor"]


@dataclass
class VolumeResult:
    volume: "Volume"
    slices: list[SliceResult]
    labels: list[str]

    def read(self) -> list[SliceResult]:
        return [s for s in self.slices if not s.skipped]

    def most_suspicious(self, count: int = 5) -> list[SliceResult]:
        """The read slices with the highest tumour probability, highest first."""
        return sorted(self.read(), key=lambda s: -s.tumour_probability())[:count]

    def summary(self) -> dict:
        read = self.read()
        top = self.most_suspicious()
        best = {label: max(read, key=lambda s: s.probabilities[label]).index for label in self.labels} if read else {}
        return {
            "kind": self.volume.kind,
            "plane": self.volume.plane,
            "slices": len(self.volume),
            "predicted": len(self.slices),
            "read": len(read),
            "skipped": len(self.slices) - len(read),
            "ok": sum(1 for s in read if s.verdict and s.verdict.ok),
            "sequence": self.volume.sequence,
            "most_suspicious": [
                {
                    "slice": s.index,
                    "tumour_probability": s.tumour_probability(),
                    "label": max(s.probabilities, key=s.probabilities.get),
                    "status": s.verdict.status,
                }
                for s in top
            ],
            "highest_slice_per_class": best,
        }
