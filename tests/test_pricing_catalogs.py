"""SkyPilot catalogs read as they are: real excerpts (tests/data/skypilot, sources in its README)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from gpuplan.pricing.errors import InputError
from gpuplan.pricing.offers import read_table
from gpuplan.pricing.regions import load_regions

CATALOGS = Path(__file__).parent / "data" / "skypilot" / "catalogs" / "v8"
BENCH = Path(__file__).parents[1] / "bench" / "catalog_bench.py"
V6 = CATALOGS.parent / "v6"  # clouds whose newest catalog SkyPilot publishes under v6


def _path(cloud: str) -> Path:
    return (V6 if cloud in ("fluidstack", "paperspace", "do") else CATALOGS) / cloud / "vms.csv"


def _offers(cloud: str) -> dict[tuple[str, str | None], object]:
    return {(o.instance, o.region): o for o in read_table(_path(cloud)).offers}


def test_gcp_host_and_accelerator_rows_are_summed_per_zone() -> None:
    # a3-highgpu-8g us-central1: host 9.46006 + H100×8 row 33.60609 = 43.06615; spot 3.86318 + 32.0104.
    # (The catalog's H100×8 row is a fallback far below Google's list price of 88.49 — read as it is.)
    offers = _offers("gcp")
    a3 = offers["a3-highgpu-8g", "us-central1"]
    assert (a3.gpu, a3.gpus_per_instance) == ("h100-sxm", 8)
    assert (a3.on_demand_usd_per_hour, a3.spot_usd_per_hour) == (43.06615, 35.87358)
    g2 = offers["g2-standard-24", "us-east4"]  # 0.87787 + L4×2 1.11641; Google: g2-standard-24 has 2 L4
    assert (g2.gpu, g2.gpus_per_instance, g2.on_demand_usd_per_hour) == ("l4", 2, 1.99428)
    assert offers["a2-highgpu-1g", "europe-west4"].on_demand_usd_per_hour == 2.42771  # 0.81406 + 1.61365
    summary = read_table(CATALOGS / "gcp" / "vms.csv").summary
    for reason in ("1 TPU (not a GPU)", "1 no accelerator (CPU-only VM)",
                   "1 GCP accelerator row with no accelerator-optimized host"):
        assert reason in summary


@pytest.mark.parametrize(("cloud", "instance", "gpu"), [
    ("lambda", "gpu_1x_h100_pcie", "h100-pcie"),        # Lambda's PCIe H100, not SXM
    ("lambda", "gpu_1x_h100_sxm5", "h100-sxm"),
    ("lambda", "gpu_1x_a100", "a100-40gb-pcie"),        # Lambda: 1x/2x/4x A100 are 40 GB PCIe
    ("lambda", "gpu_1x_a100_sxm4", "a100-40gb"),
    ("lambda", "gpu_8x_a100_80gb_sxm4", "a100-80gb"),
    ("lambda", "gpu_1x_a6000", "rtx-a6000"),
    ("lambda", "gpu_1x_gh200", "gh200-96gb"),
    ("runpod", "1x_A100-80GB_SECURE", "a100-80gb-pcie"),  # GpuInfo name 'A100 PCIe'
    ("azure", "Standard_NC40ads_H100_v5", "h100-nvl"),
    ("azure", "Standard_ND96isr_H100_v5", "h100-sxm"),
    ("azure", "Standard_NC24ads_A100_v4", "a100-80gb-pcie"),
    ("azure", "Standard_ND96amsr_A100_v4", "a100-80gb"),
    ("oci", "BM.GPU4.8", "a100-40gb"),                  # GpuInfo 40960 MiB
    ("oci", "BM.GPU.GB200.4", "gb200"),
    ("nebius", "gpu-h200-sxm_8gpu-128vcpu-1600gb", "h200"),
    ("aws", "g5.12xlarge", "a10g"),
    ("cudo", "epyc-genoa-a100-pcie_1x2v4gb", "a100-80gb-pcie"),  # 'A100' + pcie + 81920 MiB
    ("cudo", "intel-ice-lake-a100-pci_1x2v4gb", "a100-80gb-pcie"),
    ("cudo", "sapphire-rapids-h100_1x2v4gb", "h100-sxm"),
    ("hyperbolic", "1x-H100-75-722", "h100-sxm"),            # GpuInfo 'NVIDIA-H100-80GB-HBM3'
    ("fluidstack", "H100_PCIE_80GB::1", "h100-pcie"),
    ("fluidstack", "H100_NVLINK_80GB::8", "h100-sxm"),        # NVLINK is not NVL
    ("fluidstack", "A100_PCIE_80GB::1", "a100-80gb-pcie"),
    ("paperspace", "A100-80G", "a100-80gb"),
    ("do", "gpu-h100x8-640gb", "h100-sxm"),                   # GpuInfo with lower-case keys
    ("verda", "1RTX6000ADA.10V", "rtx-6000-ada"),             # 'RTX-6000-Ada'; GpuInfo written as JSON
    ("verda", "1RTXPRO6000.30V", "rtx-pro-6000"),             # 'RTX-PRO-6000' (Server Edition assumed)
    ("oci", "BM.GPU.RTXPRO.8", "rtx-pro-6000"),               # 'RTXPRO6000', 8 per bare-metal host
    ("hyperstack", "n3-H100x8-NVLink", "h100-pcie"),          # PCIe cards with NVLink bridges
    ("hyperstack", "n3-A100x1", "a100-80gb-pcie"),
    ("hyperstack", "n3-H100-SXM5x8", "h100-sxm"),
    ("primeintellect", "oblivus__1xA100_80GB__28__120", "a100-80gb-pcie"),  # UpstreamCloudId A100_PCIE_80GB
    ("seeweb", "ECS1GPU3", "a100-80gb"),                      # 'A100' with 81920 MiB
])
def test_accelerator_names_map_through_the_table(cloud: str, instance: str, gpu: str) -> None:
    assert {o.gpu for (inst, _), o in _offers(cloud).items() if inst == instance} == {gpu}


def test_every_region_keeps_its_prices_and_skips_are_counted() -> None:
    lam = read_table(CATALOGS / "lambda" / "vms.csv")
    assert {o.region for o in lam.offers if o.instance == "gpu_8x_h100_sxm5"} == {"us-east-1", "europe-central-1"}
    # Quadro RTX 6000 (Turing) is not our rtx-6000-ada: counted, not guessed
    assert "2 accelerator 'RTX6000' not in the mapping table" in lam.summary
    assert all(reason for _, reason in lam.skipped_rows) and len(lam.skipped_rows) == 6
    run = read_table(CATALOGS / "runpod" / "vms.csv")
    assert {o.region for o in run.offers if o.gpus_per_instance == 1} == {"CA", "CZ", "RO", "IS", "US"}
    assert all(o.spot_usd_per_hour is None for o in run.offers)  # SpotPrice = Price: no spot market
    assert "3 more zones merged" in run.summary


def test_marketplace_regions_are_countries_and_spot_only_rows_are_kept() -> None:
    prime = _offers("primeintellect")
    places = {r: load_regions().place("primeintellect", r).jurisdiction for (_, r) in prime}
    assert places == {"US": "US", "AU": "AU", "CA": "CA", "FI": "EU", "DE": "EU", "IS": "EEA", "FR": "EU"}
    verda = _offers("verda")
    b300 = verda["2B300.60V", "FIN-03"]  # no on-demand price, a spot price: kept as a spot-only offer
    assert (b300.on_demand_usd_per_hour, b300.spot_usd_per_hour) == (None, 4.893)
    seeweb = read_table(_path("seeweb"))
    assert {o.region for o in seeweb.offers} == {"it-fr2", None}  # rows without a region stay, unplaced


def test_aws_spot_is_the_cheapest_zone_of_each_region() -> None:
    # g5.12xlarge eu-central-1: on-demand 7.09282 in all three zones, spot 2.8852 / 2.3129 / 2.4566
    offers = _offers("aws")
    assert (offers["g5.12xlarge", "eu-central-1"].on_demand_usd_per_hour,
            offers["g5.12xlarge", "eu-central-1"].spot_usd_per_hour) == (7.09282, 2.3129)
    assert offers["g5.12xlarge", "ap-northeast-1"].spot_usd_per_hour == 2.4678  # not apne1-az4's 8.2261
    assert len(offers) == 4  # four regions, each its own offer


def test_spot_is_the_cheapest_spot_row_not_the_cheapest_on_demand_row(tmp_path: Path) -> None:
    vms = tmp_path / "catalogs" / "v8" / "aws" / "vms.csv"
    vms.parent.mkdir(parents=True)
    vms.write_text("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
                   "AvailabilityZone\n"
                   "p5.48xlarge,H100,8.0,192.0,2048.0,,55.04,20.0,us-east-1,use1-az1\n"
                   "p5.48xlarge,H100,8.0,192.0,2048.0,,56.00,14.25,us-east-1,use1-az2\n")
    (o,) = read_table(vms).offers
    assert (o.provider, o.on_demand_usd_per_hour, o.spot_usd_per_hour) == ("aws", 55.04, 14.25)


def test_provider_comes_from_the_layout_or_is_required(tmp_path: Path, gpuplan) -> None:
    loose = tmp_path / "tmp" / "vms.csv"
    loose.parent.mkdir()
    shutil.copy(CATALOGS / "lambda" / "vms.csv", loose)
    r = gpuplan("--pricing", str(loose), "prices")
    assert r.code == 2 and "outside SkyPilot's layout" in r.err and "Traceback" not in r.err
    r = gpuplan("--pricing", f"lambda={loose}", "prices", "--gpu", "h100-pcie", "--format", "json")
    assert r.code == 0 and {o["provider"] for o in r.json()} - {"owned"} == {"lambda"}
    assert "lambda/vms.csv" not in r.err and "2 accelerator 'RTX6000'" in r.err


def test_pricing_skypilot_reads_the_users_catalogs(tmp_path: Path, gpuplan, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    r = gpuplan("prices", "--pricing", "skypilot")
    assert r.code == 2 and ".sky/catalogs" in r.err
    for version, cloud in (("v7", "nebius"), ("v8", "nebius"), ("v8", "runpod")):
        dest = tmp_path / ".sky" / "catalogs" / version / cloud / "vms.csv"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CATALOGS / cloud / "vms.csv", dest)
    r = gpuplan("prices", "--pricing", "skypilot", "--verbose", "--format", "json")
    assert r.code == 0, r.err
    assert {o["provider"] for o in r.json()} - {"owned"} == {"nebius", "runpod"}
    assert "v8/nebius" in r.err and "v7/nebius" not in r.err  # newest version per cloud
    assert "row 2: skipped, no accelerator (CPU-only VM)" in r.err


@pytest.mark.parametrize(("price", "msg"), [("nan", "finite"), ("inf", "finite"), ("-1", "finite"),
                                            ("abc", "not a number")])
def test_bad_catalog_prices_name_file_row_and_column(tmp_path: Path, price: str, msg: str) -> None:
    vms = tmp_path / "catalogs" / "v8" / "nebius" / "vms.csv"
    vms.parent.mkdir(parents=True)
    lines = (CATALOGS / "nebius" / "vms.csv").read_text().splitlines()
    lines[4] = lines[4].replace(",2.95,", f",{price},")
    vms.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"row 5, column 'Price'.*{msg}"):
        read_table(vms)


def test_a_header_that_is_not_a_catalog_is_refused(tmp_path: Path) -> None:
    vms = tmp_path / "catalogs" / "v8" / "aws" / "vms.csv"
    vms.parent.mkdir(parents=True)
    vms.write_text("InstanceType,Cost\np5.48xlarge,55\n")
    with pytest.raises(InputError, match=r"not a SkyPilot catalog \(missing column 'AcceleratorName'"):
        read_table(vms)


def test_a_100k_row_catalog_loads() -> None:
    # Its speed is make bench's to report (SkyPilot catalog: 100,000 rows → offers in s); here, that it loads.
    spec = importlib.util.spec_from_file_location("catalog_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(100_000)  # built from the real Azure excerpt, 500 renamed regions
    assert result["rows"] == 100_000
    assert result["offers"] > 1000


def test_an_edited_table_is_read_again(tmp_path: Path) -> None:
    offers = tmp_path / "offers.csv"
    head = "provider,instance,region,gpu,gpus_per_instance,on_demand_usd_per_hour,as_of,source\n"
    offers.write_text(head + "x,h1,us-east-1,h100-sxm,8,20,2026-01-01,test\n")
    assert read_table(offers).offers[0].on_demand_usd_per_hour == 20
    offers.write_text(head + "x,h1,us-east-1,h100-sxm,8,21.5,2026-01-02,test\n")  # another size: not cached
    assert read_table(offers).offers[0].on_demand_usd_per_hour == 21.5


def test_the_workstation_rtx_pro_6000_is_not_the_server_edition() -> None:
    # Vast lists 'RTXPRO6000WS': the Workstation Edition's 1792 GB/s and higher clocks are not the rtx-pro-6000
    # row (Server Edition, 1597 GB/s), so its offers are counted as unmapped, not priced as the wrong card.
    table = read_table(CATALOGS / "vast" / "vms.csv")
    assert "3 accelerator 'RTXPRO6000WS' not in the mapping table" in table.summary
    assert not any(o.gpu == "rtx-pro-6000" for o in table.offers)
