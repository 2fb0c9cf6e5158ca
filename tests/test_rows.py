"""The provenance every table row carries (gpuplan.rows): a source that is not empty, an ``as_of`` that is
a date of the calendar, and the provenance columns after each schema's own (so dumps and CSV headers keep
their order)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU, GPUS_CSV
from gpuplan.optimizer.launch.accelerators import Accelerator
from gpuplan.optimizer.launch.checkpoints import Checkpoint
from gpuplan.optimizer.launch.engines import EngineValue, Flag, value_table
from gpuplan.optimizer.serving.calibration import CALIBRATION_CSV, CalibrationRow
from gpuplan.optimizer.serving.dataset_lengths import DatasetLengths
from gpuplan.optimizer.serving.expert_layout import ExpertLayout
from gpuplan.optimizer.serving.graphs import GraphLimit
from gpuplan.optimizer.serving.kernels import KernelConstant
from gpuplan.optimizer.serving.links import LinkRow
from gpuplan.optimizer.serving.measurements import Measurement
from gpuplan.optimizer.serving.priors import PriorRow
from gpuplan.optimizer.serving.scheduler import SCHEDULER_CSV, SchedulerRow, _scheduler_rows
from gpuplan.pricing.offers import OFFERS_CSV, Offer
from gpuplan.pricing.ownership import ENERGY_CSV, EnergyRow, OwnershipRow, ReservedRow
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gpuplan.rows import PROVENANCE, Sourced

SCHEMAS = (GPU, NumberFormat, Offer, OwnershipRow, ReservedRow, EnergyRow, CalibrationRow, PriorRow, LinkRow,
           KernelConstant, Measurement, Accelerator, Flag, EngineValue, Checkpoint, GraphLimit, DatasetLengths,
           ExpertLayout, SchedulerRow)
MEASURED_CSV = Path(__file__).parent / "data" / "measured.csv"


def _with_cell(src: Path, column: str, value: str, dest: Path) -> Path:
    """``src`` with ``column`` of its first data row (row 2 of the file) set to ``value``."""
    rows = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"))))
    rows[1][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    dest.write_text(buf.getvalue(), encoding="utf-8")
    return dest


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_table_schema_inherits_provenance_as_its_last_columns(schema: type[Sourced]) -> None:
    assert issubclass(schema, Sourced)
    assert tuple(schema.model_fields)[-len(PROVENANCE):] == PROVENANCE


def test_shipped_column_order_is_kept() -> None:
    # the first columns of hardware/gpus.csv and of a calibration CSV written by 'gpuplan calibrate'
    assert list(GPU.model_fields)[:3] == ["id", "name", "vendor"]
    assert list(CalibrationRow.model_fields)[:4] == ["engine", "gpu", "versions", "eta_mem"]
    # a row bad in a price and in its source reports the price first, as when the columns were declared last
    with pytest.raises(ValidationError) as err:
        Offer(provider="p", instance="i", gpu="h100-sxm", gpus_per_instance=8, on_demand_usd_per_hour=-1.0,
              source="", as_of="2026-01-01")
    assert [e["loc"] for e in err.value.errors()] == [("on_demand_usd_per_hour",), ("source",)]


@given(st.dates(min_value=dt.date(1000, 1, 1)))
def test_any_calendar_date_is_an_exact_as_of(day: dt.date) -> None:
    assert Sourced(source="s", as_of=day.isoformat()).as_of == day.isoformat()
    with pytest.raises(ValidationError):
        Sourced(source="s", as_of=day.strftime("%Y-%m"))  # a month is not an exact date


@pytest.mark.parametrize("as_of", ["2025-02-29", "2025-13-01", "2025-04-31", "2025", "2025-07", "2024-13", "2025-1-05",
                                   "05/01/2025", ""])
def test_dates_the_calendar_lacks_or_other_spellings_are_refused(as_of: str) -> None:
    # 2025 is not a leap year (no 29 February); April has 30 days
    with pytest.raises(ValidationError):
        Sourced(source="s", as_of=as_of)


def test_leap_day_is_a_date() -> None:
    assert Sourced(source="s", as_of="2024-02-29").as_of == "2024-02-29"  # 2024 is a leap year


def test_source_must_not_be_empty() -> None:
    with pytest.raises(ValidationError):
        Sourced(source="", as_of="2025-01-01")


@pytest.mark.parametrize(("option", "table", "column", "value", "command"), [
    ("--hardware", GPUS_CSV, "as_of", "2024-13", ["gpus"]),
    ("--hardware", GPUS_CSV, "as_of", "2020-09", ["gpus"]),  # a datasheet month: no longer accepted
    ("--energy", ENERGY_CSV, "as_of", "2023", ["prices"]),  # the energy table is checked like every other
    ("--energy", ENERGY_CSV, "source", "", ["prices"]),
    ("--pricing", OFFERS_CSV, "as_of", "2025-02-30", ["prices"]),
    ("--calibration", CALIBRATION_CSV, "as_of", "2026",
     ["perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"]),
    ("--calibration", CALIBRATION_CSV, "source", "", ["perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"]),
])
def test_bad_provenance_in_a_swapped_table_is_one_line(gpuplan, tmp_path: Path, option: str, table: Path,
                                                         column: str, value: str, command: list[str]) -> None:
    bad = _with_cell(table, column, value, tmp_path / table.name)
    r = gpuplan(option, str(bad), *command, "--format", "json")
    assert r.code == 2 and r.out == ""
    assert len(r.err.strip().splitlines()) == 1
    assert f"{bad}, row 2, column '{column}'" in r.err


def test_bad_as_of_in_measurements_is_one_line(gpuplan, tmp_path: Path) -> None:
    bad = _with_cell(MEASURED_CSV, "as_of", "2025-06", tmp_path / "m.csv")
    r = gpuplan("validate", str(bad), "--format", "json")
    assert r.code == 2 and f"{bad}, row 2, column 'as_of'" in r.err


def test_checkpoint_table_rows_are_dated_to_the_day(tmp_path: Path) -> None:
    from gpuplan.optimizer.errors import InputError
    from gpuplan.optimizer.launch.checkpoints import _package_csv, load_checkpoints

    bad = _with_cell(_package_csv(), "as_of", "2025-01", tmp_path / "checkpoints.csv")
    with pytest.raises(InputError, match=r"row 2, column 'as_of': String should match pattern"):
        load_checkpoints(bad)


def test_a_checkpoint_derived_from_a_catalog_row_keeps_its_date() -> None:
    from gpuplan.models.catalog import resolve
    from gpuplan.optimizer.launch.checkpoints import release_rules

    m = resolve("llama-3.1-8b")  # Meta's Llama 3.1 model card: 'Model Release Date: July 23, 2024'
    assert m.as_of == "2024-07-23"
    (ckpt,) = release_rules(m, "bf16", "vllm")
    assert (ckpt.checkpoint, ckpt.as_of) == ("meta-llama/Llama-3.1-8B-Instruct", "2024-07-23")


def test_month_dates_are_refused_in_the_catalog_and_format_tables(tmp_path: Path) -> None:
    from gpuplan.hardware.errors import InputError as HardwareInputError
    from gpuplan.hardware.formats import FORMATS_CSV, load_formats
    from gpuplan.models.catalog import CATALOG_CSV, load_catalog
    from gpuplan.models.errors import InputError as ModelInputError

    # configs/ sits next to the shipped catalog; the swapped copy must find them the same way
    (tmp_path / "configs").symlink_to(CATALOG_CSV.parent / "configs")
    with pytest.raises(ModelInputError, match=r"catalog.csv, row 2, column 'as_of': String should match pattern"):
        load_catalog(_with_cell(CATALOG_CSV, "as_of", "2024-07", tmp_path / "catalog.csv"))
    with pytest.raises(HardwareInputError, match=r"formats.csv, row 2, column 'as_of'"):
        load_formats(_with_cell(FORMATS_CSV, "as_of", "2024-01", tmp_path / "formats.csv"))


@pytest.mark.parametrize("table", ["gpus", "formats", "energy"])
def test_every_shipped_row_says_how_its_date_was_read(table: str) -> None:
    # each row of these tables carries an exact date and a note saying what the date is (a launch, a release,
    # a publication) or that the source gives only the month, of which as_of is the first day
    from gpuplan.hardware.formats import FORMATS_CSV

    path = {"gpus": GPUS_CSV, "formats": FORMATS_CSV, "energy": ENERGY_CSV}[table]
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    for row in rows:
        dt.date.fromisoformat(row["as_of"])
        assert "as_of:" in (row["notes"] or "") or row["as_of"] in row["source"], row


def test_model_catalog_and_region_rows_need_their_provenance(tmp_path: Path) -> None:
    from gpuplan.models.catalog import CATALOG_CSV, load_catalog
    from gpuplan.models.errors import InputError as ModelInputError
    from gpuplan.pricing.errors import InputError as PricingInputError
    from gpuplan.pricing.regions import COUNTRIES_CSV, RegionTable

    with pytest.raises(ModelInputError, match=r"row 2, column 'source': String should have at least 1 character"):
        load_catalog(_with_cell(CATALOG_CSV, "source", "", tmp_path / "catalog.csv"))
    with pytest.raises(PricingInputError, match=r"row 2, column 'as_of'"):
        RegionTable(countries=_with_cell(COUNTRIES_CSV, "as_of", "2026-12", tmp_path / "countries.csv"))


def test_read_cells_strips_cells_and_refuses_ragged_rows(tmp_path: Path) -> None:
    from gpuplan.rows import read_cells

    table = tmp_path / "t.csv"
    table.write_text("name,value,notes\n pue , 1.58 ,\nx,1,,extra\n", encoding="utf-8")
    rows = read_cells(table, ("name", "value"), ValueError)
    assert next(rows) == (2, {"name": "pue", "value": "1.58", "notes": None})
    with pytest.raises(ValueError, match=r"t.csv, row 3: more cells than header columns"):
        next(rows)
    with pytest.raises(ValueError, match=r"t.csv: missing column 'source'"):
        next(read_cells(table, ("name", "source"), ValueError))


def test_a_reserved_row_with_an_extra_cell_is_refused_like_every_table(gpuplan, tmp_path: Path) -> None:
    from gpuplan.pricing.ownership import RESERVED_CSV

    lines = RESERVED_CSV.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "reserved.csv"
    bad.write_text("\n".join([lines[0], lines[1] + ",surplus", *lines[2:]]) + "\n", encoding="utf-8")
    r = gpuplan("--reserved", str(bad), "prices", "--format", "json")
    assert r.code == 2 and r.err.strip() == f"error: {bad}, row 2: more cells than header columns"


def test_shipped_engine_values_are_sourced_rows() -> None:
    # every row of optimizer/launch/engine_values.csv passes the schema; vLLM spells a bf16 KV cache 'auto'
    # (vllm/config/cache.py: auto = the model's dtype), the first row of the table
    assert value_table()[("vllm", "kv_cache_dtype", "bf16")] == "auto"


def test_scheduler_table_rows_are_sourced_and_version_ranges_checked(tmp_path: Path) -> None:
    # every row of optimizer/serving/scheduler.csv passes SchedulerRow; vLLM V0 (<0.8) ran prefill first
    # without chunking (vllm/core/scheduler.py, cited in the table): max_batched_tokens 0 = the context
    v0 = [r for r in _scheduler_rows() if r.engine == "vllm" and r.versions == "<0.8"]
    assert len(v0) == 1 and v0[0].prefill_first and v0[0].max_batched_tokens == 0
    bad = _with_cell(SCHEDULER_CSV, "versions", "0.8+", tmp_path / "scheduler.csv")
    with pytest.raises(Exception, match=r"scheduler.csv, row 2, column 'versions'"):
        _scheduler_rows.__wrapped__(bad)
