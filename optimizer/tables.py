"""The data a run uses: GPU table, formats, offers and calibration, each swappable by path."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from gpuplan.hardware.formats import FORMATS_CSV, FormatTable, load_formats
from gpuplan.hardware.gpus import GPUS_CSV, GpuTable, load_gpus
from gpuplan.optimizer.serving.calibration import CALIBRATION_CSV, Calibration, load_calibration
from gpuplan.pricing.offers import OFFERS_CSV, Offer, OfferTable, expand_pricing, merge_offers, read_table
from gpuplan.pricing.ownership import (
    DEFAULT_POWER_UTILIZATION,
    ENERGY_CSV,
    OWNERSHIP_CSV,
    RESERVED_CSV,
    apply_reserved,
    load_energy,
    load_ownership,
    load_reserved,
    owned_offers,
)


class Tables:
    """Lazily loaded tables; the shipped CSVs are defaults, never code."""

    def __init__(self, hardware: Path | None = None, pricing: Sequence[Path] = (),
                 calibration: Path | None = None, formats: Path | None = None, reserved: Path | None = None,
                 ownership: Path | None = None, energy: Path | None = None,
                 power_utilization: float = DEFAULT_POWER_UTILIZATION) -> None:
        self.hardware_path = Path(hardware) if hardware else GPUS_CSV
        self.pricing_paths = [Path(p) for p in pricing] or [OFFERS_CSV]
        self.default_provider: str | None = None  # provider of a catalog outside SkyPilot's layout
        self.calibration_path = Path(calibration) if calibration else CALIBRATION_CSV
        self.formats_path = Path(formats) if formats else FORMATS_CSV
        self.reserved_path = Path(reserved) if reserved else RESERVED_CSV
        self.ownership_path = Path(ownership) if ownership else OWNERSHIP_CSV
        self.energy_path = Path(energy) if energy else ENERGY_CSV
        self.power_utilization = power_utilization

    @cached_property
    def gpus(self) -> GpuTable:
        return load_gpus(self.hardware_path)

    @cached_property
    def formats(self) -> FormatTable:
        return load_formats(self.formats_path)

    @cached_property
    def offers(self) -> list[Offer]:
        """Cloud offers with reserved prices merged in, plus one 'owned' offer per server type."""
        cloud = merge_offers(t.offers for t in self.pricing_tables)
        cloud = apply_reserved(cloud, load_reserved(self.reserved_path), self.reserved_path)
        rows, _ = load_ownership(self.ownership_path)
        return [*cloud, *owned_offers(rows, load_energy(self.energy_path), self.power_utilization)]

    @cached_property
    def pricing_tables(self) -> list[OfferTable]:
        """Each --pricing source read: ``PATH``, ``PROVIDER=PATH`` or ``skypilot`` (~/.sky/catalogs)."""
        return [read_table(path, provider) for path, provider in expand_pricing(self.pricing_paths,
                                                                                 self.default_provider)]

    @property
    def ownership_notes(self) -> tuple[str, ...]:
        return load_ownership(self.ownership_path)[1]

    @cached_property
    def calibration(self) -> Calibration:
        return load_calibration(self.calibration_path)

    def replace(self, power_utilization: float) -> Tables:
        """The same tables with another average power draw for owned servers."""
        other = Tables(self.hardware_path, self.pricing_paths, self.calibration_path, self.formats_path,
                       self.reserved_path, self.ownership_path, self.energy_path, power_utilization)
        other.default_provider = self.default_provider
        return other

    def with_calibration(self, calibration: Calibration) -> Tables:
        """The same tables with another calibration (used while fitting)."""
        other = self.replace(self.power_utilization)
        other.__dict__["calibration"] = calibration
        for name in ("gpus", "formats", "offers", "pricing_tables"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other


DEFAULT = Tables()
