"""The data a run uses: GPU table, formats, offers and calibration, each swappable by path."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from hardware.formats import FORMATS_CSV, FormatTable, load_formats
from hardware.gpus import GPUS_CSV, GpuTable, load_gpus
from optimizer.calibration import CALIBRATION_CSV, Calibration, load_calibration
from pricing.offers import OFFERS_CSV, Offer, load_offers, merge_offers


class Tables:
    """Lazily loaded tables; the shipped CSVs are defaults, never code."""

    def __init__(self, hardware: Path | None = None, pricing: Sequence[Path] = (),
                 calibration: Path | None = None, formats: Path | None = None) -> None:
        self.hardware_path = Path(hardware) if hardware else GPUS_CSV
        self.pricing_paths = [Path(p) for p in pricing] or [OFFERS_CSV]
        self.calibration_path = Path(calibration) if calibration else CALIBRATION_CSV
        self.formats_path = Path(formats) if formats else FORMATS_CSV

    @cached_property
    def gpus(self) -> GpuTable:
        return load_gpus(self.hardware_path)

    @cached_property
    def formats(self) -> FormatTable:
        return load_formats(self.formats_path)

    @cached_property
    def offers(self) -> list[Offer]:
        return merge_offers(load_offers(p) for p in self.pricing_paths)

    @cached_property
    def calibration(self) -> Calibration:
        return load_calibration(self.calibration_path)

    def with_calibration(self, calibration: Calibration) -> Tables:
        """The same tables with another calibration (used while fitting)."""
        other = Tables(self.hardware_path, self.pricing_paths, self.calibration_path, self.formats_path)
        other.__dict__["calibration"] = calibration
        for name in ("gpus", "formats"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other


DEFAULT = Tables()
