"""KV reservation at admission: how much of the requests' future output an engine keeps free before it
admits a waiting request (scheduler.csv, columns ``reserve_*``).

A request that would fit its prompt in the KV cache can still wait: engines that avoid preempting running
sequences hold back KV for the tokens those sequences have yet to generate. With F free KV tokens, a
waiting request of I prompt tokens and max output O is admitted when

  I + ρ_new · min(O, C) ≤ F − ρ(n) · Σ_running R_j,        ρ(n) = max(ρ₀ − (ρ₀ − ρ_min) · n / N, ρ_min)

R_j the running sequences' remaining outputs, C a clip on the new request's reserved output, n the decode
steps since the ratio was last reset (start, or a preemption). Per engine (sources in scheduler.csv):

- TensorRT-LLM, capacity scheduler GUARANTEED_NO_EVICT (the default SchedulerConfig policy): every
  request's whole remaining output is reserved, ρ_new = ρ₀ = ρ_min = 1, so nothing is ever preempted and a
  request waits until a completion frees enough blocks;
- SGLang, PrefillAdder: the new request's max_new_tokens (clipped at 4,096) in full, running requests'
  remaining max_new_tokens × new_token_ratio, which starts at 0.7 (× schedule_conservativeness 1), decays
  linearly to 0.7 × 0.14 = 0.098 over 600 decode steps and is reset when decode runs out of KV and
  retracts requests;
- vLLM V1: nothing reserved (ρ = 0): a request is admitted when its prompt's blocks fit, and a running
  sequence is preempted when the next token's block does not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reservation:
    """An engine's admission reservation (module docstring); the default reserves nothing."""

    new: float = 0.0  # ρ_new: share of a new request's (clipped) max output reserved at admission
    running_init: float = 0.0  # ρ₀
    running_min: float = 0.0  # ρ_min
    decay_steps: float = 0.0  # N (0: ρ stays ρ₀)
    clip_tokens: int = 0  # C (0: no clip)

    @property
    def active(self) -> bool:
        return self.new > 0 or self.running_init > 0


NO_RESERVATION = Reservation()


def running_ratio(r: Reservation, steps_since_reset: float) -> float:
    """ρ(n) = max(ρ₀ − (ρ₀ − ρ_min) · n / N, ρ_min): the share of running sequences' remaining output held
    back n decode steps after the last reset (ρ₀ throughout when N = 0)."""
    if r.decay_steps <= 0:
        return r.running_init
    return max(r.running_init - (r.running_init - r.running_min) * steps_since_reset / r.decay_steps,
               r.running_min)


def new_request_tokens(r: Reservation, prompt_tokens: int, output_tokens: int) -> float:
    """KV tokens a waiting request needs free to be admitted: I + ρ_new · min(O, C) (C = 0: no clip)."""
    out = min(output_tokens, r.clip_tokens) if r.clip_tokens > 0 else output_tokens
    return prompt_tokens + r.new * out


def admits(r: Reservation, free_tokens: float, prompt_tokens: int, output_tokens: int,
           running_remaining_tokens: float, steps_since_reset: float) -> bool:
    """I + ρ_new · min(O, C) ≤ F − ρ(n) · Σ R_j (module docstring)."""
    held = running_ratio(r, steps_since_reset) * running_remaining_tokens
    return new_request_tokens(r, prompt_tokens, output_tokens) <= free_tokens - held
