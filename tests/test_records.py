"""Plan and daily-plan deployments share one record (placement + launch fields) and keep the JSON key order."""

from __future__ import annotations

from gpuplan.optimizer.launch.daily import DayDeployment
from gpuplan.optimizer.planning.planner import Deployment
from gpuplan.optimizer.planning.records import LaunchSpec, Placement

PLACEMENT = ["candidate", "gpu", "provider", "offer", "region", "weights", "kv", "tp"]
LAUNCH = ["launch", "checkpoint", "engine_version", "max_model_len", "memory_fraction", "gpus_per_instance", "ep"]


def test_plan_deployment_key_order_is_the_contracts() -> None:
    # DESIGN.md's plan contract: candidate … tp, replicas, gpus, batch, tpot_ms, ttft_ms, output_tok_s,
    # usd_per_hour, launch (capacity_req_s and engine sit where the first release put them)
    assert list(Deployment.model_fields) == [*PLACEMENT, "replicas", "gpus", "batch", "tpot_ms", "ttft_ms",
                                             "output_tok_s", "capacity_req_s", "usd_per_hour", "engine", *LAUNCH,
                                             "latency"]


def test_day_deployment_key_order() -> None:
    assert list(DayDeployment.model_fields) == ["block", "workload", *PLACEMENT, "batch", "engine", "capacity_req_s",
                                                "replicas", "replicas_by_hour", *LAUNCH]


def test_both_records_are_one_placement_and_one_launch_spec() -> None:
    for record in (Deployment, DayDeployment):
        assert issubclass(record, Placement) and issubclass(record, LaunchSpec)
