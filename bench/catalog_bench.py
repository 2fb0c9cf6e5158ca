"""SkyPilot catalog reading: a 100,000-row catalog built from the real Azure excerpt (regions renamed)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from gpuplan.pricing.offers import read_table

EXCERPT = Path(__file__).parents[1] / "tests" / "data" / "skypilot" / "catalogs" / "v8" / "azure" / "vms.csv"


def run(rows: int = 100_000) -> dict[str, float]:
    lines = EXCERPT.read_text().splitlines()
    body = [r.replace(",eastus,", f",region{i % 500},") for i in range(rows // (len(lines) - 1) + 1) for r in lines[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        vms = Path(tmp) / "catalogs" / "v8" / "azure" / "vms.csv"
        vms.parent.mkdir(parents=True)
        vms.write_text("\n".join([lines[0], *body[:rows]]) + "\n")
        wall, cpu = time.perf_counter(), time.process_time()
        table = read_table(vms)
        return {"rows": rows, "offers": len(table.offers), "seconds": time.perf_counter() - wall,
                "cpu_seconds": time.process_time() - cpu}
