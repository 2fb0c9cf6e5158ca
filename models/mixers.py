"""Sequence mixers that are not softmax attention: Mamba-1, Mamba-2 and gated-DeltaNet linear attention.

Each keeps a constant state per sequence, whatever the context:
  Mamba-1:  conv (d_conv − 1) × d_inner + SSM d_inner × d_state
  Mamba-2:  conv (d_conv − 1) × (d_inner + 2·groups·d_state) + SSM heads × head_dim × d_state
  DeltaNet: conv (kernel − 1) × (2·key_dim + value_dim) + recurrent v_heads × k_head_dim × v_head_dim
The conv state is held at the model's 16-bit width, the SSM/recurrent state at the width the config
names (``mamba_ssm_cache_dtype`` / ``mamba_ssm_dtype``: float32 → 4 bytes), else 16 bits.
"""

from __future__ import annotations

from gpuplan.models.tensors import Kind, TensorGroup, group
from pydantic import BaseModel, ConfigDict

CONV_STATE_BYTES = 2


class Mamba(BaseModel):
    """A Mamba-1 (Jamba, state-spaces/mamba) or Mamba-2 (Nemotron-H, Falcon-H1, mamba2) mixer."""

    model_config = ConfigDict(frozen=True)

    version: int  # 1 or 2
    d_inner: int
    d_state: int
    d_conv: int
    heads: int = 0  # Mamba-2 heads (d_inner = heads × head_dim)
    groups: int = 1  # Mamba-2 B/C groups
    dt_rank: int = 0  # Mamba-1 Δ projection rank
    conv_bias: bool = True
    proj_bias: bool = False
    inner_norms: bool = False  # Jamba: RMSNorm on Δ, B, C
    gated_norm: bool = True  # Mamba-2: gated RMSNorm of width d_inner before out_proj
    state_bytes: int = 2  # bytes per SSM state element


class LinearAttention(BaseModel):
    """Gated DeltaNet (Qwen3-Next, Qwen3.5): q/k/v/z projections, short conv, a per-head delta-rule state."""

    model_config = ConfigDict(frozen=True)

    k_heads: int
    v_heads: int
    k_head_dim: int
    v_head_dim: int
    conv_kernel: int
    state_bytes: int = 4


def mamba_conv_channels(m: Mamba) -> int:
    return m.d_inner if m.version == 1 else m.d_inner + 2 * m.groups * m.d_state


def mamba_state_bytes(m: Mamba) -> int:
    """Per sequence per layer: conv (d_conv − 1) × channels × 2 B + d_inner × d_state × state bytes."""
    return (m.d_conv - 1) * mamba_conv_channels(m) * CONV_STATE_BYTES + m.d_inner * m.d_state * m.state_bytes


def linear_state_bytes(la: LinearAttention) -> int:
    """Per sequence per layer: conv (kernel − 1) × (2·key_dim + value_dim) × 2 B
    + v_heads × k_head_dim × v_head_dim × state bytes."""
    conv = (la.conv_kernel - 1) * (2 * la.k_heads * la.k_head_dim + la.v_heads * la.v_head_dim)
    return conv * CONV_STATE_BYTES + la.v_heads * la.k_head_dim * la.v_head_dim * la.state_bytes


def mamba_groups(m: Mamba, hidden: int, n: int) -> list[TensorGroup]:
    """Weights of ``n`` Mamba layers (HF MambaMixer / NemotronHMamba2Mixer shapes)."""
    conv = mamba_conv_channels(m)
    out: list[TensorGroup] = []
    if m.version == 1:
        out += [group("mamba.in_proj", Kind.LINEAR, 2 * m.d_inner, hidden, n),
                group("mamba.x_proj", Kind.LINEAR, m.dt_rank + 2 * m.d_state, m.d_inner, n),
                group("mamba.dt_proj", Kind.LINEAR, m.d_inner, m.dt_rank, n),
                group("mamba.A_log", Kind.VECTOR, m.d_inner * m.d_state, 1, n),
                group("mamba.dt_bias_D", Kind.VECTOR, 2 * m.d_inner, 1, n)]
        if m.inner_norms:
            out.append(group("mamba.inner_norms", Kind.VECTOR, m.dt_rank + 2 * m.d_state, 1, n))
    else:
        proj = 2 * m.d_inner + 2 * m.groups * m.d_state + m.heads
        out += [group("mamba.in_proj", Kind.LINEAR, proj, hidden, n),
                group("mamba.A_D_dt", Kind.VECTOR, 3 * m.heads, 1, n)]
        if m.gated_norm:
            out.append(group("mamba.norm", Kind.VECTOR, m.d_inner, 1, n))
    out += [group("mamba.conv1d", Kind.VECTOR, conv * m.d_conv, 1, n),
            group("mamba.out_proj", Kind.LINEAR, hidden, m.d_inner, n)]
    if m.conv_bias:
        out.append(group("mamba.conv_bias", Kind.VECTOR, conv, 1, n))
    if m.proj_bias:
        in_rows = out[0].rows
        out.append(group("mamba.proj_bias", Kind.VECTOR, in_rows + hidden, 1, n))
    return out


def linear_attention_groups(la: LinearAttention, hidden: int, n: int) -> list[TensorGroup]:
    """Weights of ``n`` gated-DeltaNet layers: in_proj qkvz + ba, conv1d, A_log and dt_bias, norm, out_proj."""
    key_dim, value_dim = la.k_heads * la.k_head_dim, la.v_heads * la.v_head_dim
    conv = 2 * key_dim + value_dim
    return [group("linear.in_proj_qkvz", Kind.LINEAR, 2 * key_dim + 2 * value_dim, hidden, n),
            group("linear.in_proj_ba", Kind.LINEAR, 2 * la.v_heads, hidden, n),
            group("linear.conv1d", Kind.VECTOR, conv * la.conv_kernel, 1, n),
            group("linear.A_dt", Kind.VECTOR, 2 * la.v_heads, 1, n),
            group("linear.norm", Kind.VECTOR, la.v_head_dim, 1, n),
            group("linear.out_proj", Kind.LINEAR, hidden, value_dim, n)]
