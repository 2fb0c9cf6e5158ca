"""Continuous-batching scheduler, simulated from event to event.

The scheduler is the one vLLM (V1) and SGLang run, reduced to what sets latency:

- mixed steps (vLLM V1, TensorRT-LLM; ``steps.prefill_first`` false): every step, each running sequence
  that has finished its prefill decodes one token, and the rest of the step's token budget
  (``max_batched_tokens`` minus the decodes) goes to prefill chunks, first of admitted requests still
  prefilling, then of waiting requests in arrival order (a waiting request is admitted at the first step
  with a free sequence slot, KV room for its whole prompt and budget left, without waiting for decodes
  to drain);
- prefill first (SGLang, vLLM V0; ``steps.prefill_first`` true): whenever a prompt is still prefilling or
  a waiting request can be admitted, the step is a prefill batch of the whole budget and the decodes
  wait (their next token is late by the prefill step: ITL and TPOT rise, TTFT falls); otherwise the
  running sequences decode;
- at most ``max_num_seqs`` sequences are admitted at once, and a waiting request is admitted only when
  the KV cache holds its prompt plus what the engine reserves for outputs still to come
  (``steps.reservation``, admission.py: TensorRT-LLM reserves every request's whole output, SGLang the new
  request's output and a decaying share of the running ones', vLLM nothing);
- when the KV cache cannot hold the next token of every decoding sequence, the most recently
  admitted sequence is preempted (recompute: its KV is freed, it returns to the head of the queue and
  later re-prefills its prompt plus the tokens it had generated);
- data-parallel attention (``steps.rank_chunk_tokens`` C_r): a request's prompt advances by at most one
  rank's chunk per step, the step budget being every rank's (dp_attention);
- a request reaches the scheduler ``request_s`` after it arrives (host time: tokenisation, API
  server), when the step model has such a term;
- an engine with an overlap scheduler (``steps.overlap``: SGLang, TensorRT-LLM's PyTorch executor) plans
  step k + 1 on the CPU while step k runs on the GPU, so a request that reaches it during step k is first
  seen when step k ends and runs in step k + 2: while sequences are running it waits one step longer than
  with a synchronous loop; an idle engine schedules it at once;
- SGLang's ``--scheduler-recv-interval`` N (``cfg.recv_interval``; SchedulerRecvSkipper): while the engine only
  decodes, it polls for new requests every N decode steps; after a step with prompt tokens, and when idle, it
  polls at once (a prefill step weighs 1000 in its counter, a decode step 1). A request reaching the scheduler
  between polls waits for the next one, up to N decode steps;
- a request's first token is sampled by the step that completes its prefill;
- prefix caching (on by default in vLLM V1, SGLang's radix cache and TensorRT-LLM's KV block reuse): when
  the client draws its prompts from a pool (``prompt_ids``), a request whose prompt an earlier request has
  finished prefilling finds every prompt token but the last in the cache and prefills that one token (the
  engines recompute the last prompt token to sample the first output token); the cached blocks are assumed
  to stay resident (the pool's prompts fit in the KV cache, else no request hits) and their KV is counted
  per request, as if not shared (an upper bound on KV use).

Between events (an arrival that can be admitted, a completion, a prefill chunk, KV exhaustion) the
batch is constant, so n identical decode steps are advanced at once: the mean context grows by one
token per step, and n steps take n · t_decode(b, s̄ + (n − 1)/2), exact when the step time is affine
in the context. Completions are found through a heap keyed by the global step count at which each
sequence finishes, so an event costs O(log b), not O(b).
"""

from __future__ import annotations

import heapq
import math
import operator
from collections import deque
from dataclasses import dataclass, field

from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.admission import admits, running_ratio
from gpuplan.optimizer.serving.steps import StepModel

RESERVATION_RECHECK_STEPS = 8  # decode steps between admission checks while a decaying reservation blocks


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int
    max_batched_tokens: int
    recv_interval: int = 1  # SGLang --scheduler-recv-interval: decode steps between polls for new requests


@dataclass
class Trace:
    """What happened, per request and over time (seconds, tokens)."""

    arrive: list[float]
    first: list[float]
    finish: list[float]
    input_tokens: list[int]
    output_tokens: list[int]
    itl_s: list[float] = field(default_factory=list)  # inter-token gap …
    itl_weight: list[int] = field(default_factory=list)  # … and how many tokens saw it
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)  # (t, KV tokens, running, waiting)
    preemptions: int = 0
    prompt_cache_hits: int = 0  # requests whose prompt a pooled earlier request had prefilled (prompt_ids)
    steps: int = 0
    occupancy_integral: float = 0.0  # ∫ (waiting + running) dt, for Little's law
    running_integral: float = 0.0  # ∫ admitted sequences dt
    kv_integral: float = 0.0  # ∫ KV tokens in use dt
    kv_peak_tokens: int = 0  # most KV tokens in use at any step boundary
    kv_capacity_tokens: int = 0


def pool_fits(prompt_ids: list[int], inp: list[int], cap_tokens: int) -> bool:
    """Whether the distinct prompts of a pool fit in the KV cache together (Σ over distinct prompts of their
    tokens ≤ capacity): the condition under which the simulator lets repeats hit the prefix cache."""
    lengths = dict(zip(prompt_ids, inp, strict=True))
    return sum(lengths.values()) <= cap_tokens


def next_poll(since_poll: int, every: int, steps: int) -> int:
    """Decode steps from now to the first poll at least ``steps`` steps away, the scheduler polling every
    ``every`` decode steps and ``since_poll`` steps having passed since its last poll (every = 1: ``steps``)."""
    first = every - since_poll % every
    return first + max(0, -(-(steps - first) // every)) * every


def simulate_trace(steps: StepModel, inp: list[int], out: list[int], cfg: SchedulerConfig,
                   arrivals: list[float] | None = None, concurrency: int | None = None,
                   prompt_ids: list[int] | None = None) -> Trace:
    """Run the scheduler over requests with lengths ``inp``/``out``: open loop at the sorted ``arrivals``
    times, or closed loop with ``concurrency`` clients (each sends its next request when its last ends).
    ``prompt_ids``: the pool entry each request's prompt is (repeats hit the prefix cache)."""
    n = len(inp)
    cap = steps.kv_capacity_tokens
    if cfg.max_batched_tokens < cfg.max_num_seqs and not steps.prefill_first:
        raise InputError(f"max batched tokens ({cfg.max_batched_tokens}) must be ≥ max sequences "
                         f"({cfg.max_num_seqs}) on an engine whose decodes share the step's token budget")
    if cfg.max_num_seqs > steps.max_batch:
        raise InputError(f"max sequences {cfg.max_num_seqs} exceeds the step table ({steps.max_batch})")
    biggest = max(map(operator.add, inp, out))
    if biggest > cap:
        room = (f"{cap:,} tokens on this deployment" if cap > 0 else
                "the weights and runtime leave no memory for it: a smaller --weights format, more GPUs (--tp) or a "
                "larger --mem-fraction")
        raise InputError(f"a request of {biggest:,} tokens does not fit in the KV cache ({room})")
    closed = arrivals is None
    cached: set[int] = set()  # pool prompts whose prefill has completed (resident in the prefix cache)
    pool = prompt_ids if prompt_ids is not None and pool_fits(prompt_ids, inp, cap) else None
    arrive = [0.0] * n if closed else list(arrivals)
    first = [math.nan] * n
    finish = [math.nan] * n
    target = list(inp)  # tokens to prefill: the prompt, or prompt + generated after a preemption
    prefilled = [0] * n
    gen = [0] * n  # tokens emitted before the current decode stint
    n0 = [0] * n  # global step count when the current decode stint began
    version = [0] * n  # invalidates heap entries of preempted sequences
    preempted_at = [math.nan] * n
    tr = Trace(arrive=arrive, first=first, finish=finish, input_tokens=list(inp), output_tokens=list(out),
               kv_capacity_tokens=cap)
    itl_s, itl_w = tr.itl_s, tr.itl_weight
    timeline = tr.timeline

    waiting: deque[int] = deque()
    host_s = steps.request_s  # host time before a request reaches the scheduler (tokenisation, queueing)
    pending: deque[tuple[float, int]] = deque()  # (time it reaches the scheduler, id), in time order
    running: dict[int, bool] = {}  # admission order; True once decoding
    prefilling: list[int] = []
    heap: list[tuple[int, int, int]] = []  # (finish step, id, version)
    big_n = 0  # global decode-step count
    nd = 0  # decoding sequences
    s_dec = 0  # Σ (KV at decode start − n0) over decoding sequences: their KV is s_dec + nd · big_n
    kv_pref = 0  # KV reserved by prefilling sequences (whole prompt at admission)
    resv = steps.reservation
    reserving = resv.active
    r_dec = 0  # Σ (out − gen + n0) over decoding sequences: their remaining outputs are r_dec − nd · big_n
    r_pref = 0  # Σ (out − gen) over prefilling sequences
    reset_n = 0  # decode step at which the reservation ratio was last reset (start, preemption)
    now = 0.0
    occ = run_int = kv_int = 0.0
    kv_peak = 0
    n_steps = 0
    if closed:
        nxt = min(concurrency or 1, n)  # next request a client issues
        pending.extend((host_s, i) for i in range(nxt))
    else:
        nxt = n
        pending.extend(zip([t + host_s for t in arrive], range(n), strict=True))
    done = 0
    max_seqs, max_tokens = cfg.max_num_seqs, cfg.max_batched_tokens
    decode_s, mixed_s = steps.decode_s, steps.mixed_s
    prefill_first = steps.prefill_first
    rank_cap = steps.rank_chunk_tokens or max_tokens  # DP attention: a request's prompt gets one rank's chunk
    stall, stall_w = 0.0, 0  # prefill-only time the decoding sequences have waited, and how many waited
    heappush, heappop = heapq.heappush, heapq.heappop
    finished: list[int] = []  # requests that ended in the current step

    overlap = steps.overlap
    lag = 1 if overlap else 0  # with overlap, a request is admitted one step after the step it arrived in
    last_start = 0.0  # when the step that ended at ``now`` started
    every = cfg.recv_interval
    since_poll = every  # decode steps since the scheduler last polled for requests (polls at every-th)

    while done < n:
        if since_poll >= every:  # a poll is due (or fell inside the last run of decode steps): receive
            since_poll %= every
            if pending and pending[0][0] <= now:  # something reached the scheduler (seen ≤ now)
                seen = last_start if overlap and (nd or prefilling) else now
                while pending and pending[0][0] <= seen:
                    i = pending.popleft()[1]
                    waiting.append(i)
                    occ += now - arrive[i]
        used = s_dec + nd * big_n + kv_pref
        while nd and used + nd > cap:  # the next decode token does not fit: preempt the newest sequence
            v = next(reversed(running))
            decoding = running.pop(v)
            tr.preemptions += 1
            preempted_at[v] = now
            reset_n = big_n
            if not decoding:
                prefilling.remove(v)
                kv_pref -= target[v]
                r_pref -= out[v] - gen[v]
            else:
                nd -= 1
                s_dec -= target[v] - n0[v]
                r_dec -= out[v] - gen[v] + n0[v]
                gen[v] += big_n - n0[v]
                target[v] = inp[v] + gen[v]
                version[v] += 1
            prefilled[v] = 0
            waiting.appendleft(v)
            used = s_dec + nd * big_n + kv_pref
        blocked = False  # the head of the queue waits for reserved KV (not for a slot or budget)
        n_run = len(running)
        ids: list[int] | tuple[()] = ()  # the requests with a prefill chunk in this step …
        chunks: list[tuple[int, int]] | tuple[()] = ()  # … and their chunks: (cached tokens, new tokens)
        if prefilling or waiting:
            budget = max_tokens if prefill_first else max_tokens - nd
            ids, chunks = [], []
            for p in prefilling:
                if budget <= 0:
                    break
                c = prefilled[p]
                k = target[p] - c
                if k > budget:
                    k = budget
                if k > rank_cap:
                    k = rank_cap
                ids.append(p)
                chunks.append((c, k))
                budget -= k
            while waiting and budget > 0 and n_run < max_seqs and used + nd + target[waiting[0]] <= cap:
                w = waiting[0]
                if reserving and not admits(resv, cap - used - nd, target[w], out[w] - gen[w],
                                            r_dec - nd * big_n + r_pref, big_n - reset_n):
                    blocked = True
                    break
                waiting.popleft()
                running[w] = False
                n_run += 1
                prefilling.append(w)
                kv_pref += target[w]
                r_pref += out[w] - gen[w]
                used += target[w]
                if pool is not None and pool[w] in cached:
                    prefilled[w] = inp[w] - 1  # a prefix-cache hit: only the last prompt token is computed
                    tr.prompt_cache_hits += 1
                c = prefilled[w]
                k = target[w] - c
                if k > budget:
                    k = budget
                if k > rank_cap:
                    k = rank_cap
                ids.append(w)
                chunks.append((c, k))
                budget -= k
        occupancy = len(waiting) + n_run
        if chunks:  # one step with prefill chunks: with the decodes (mixed) or alone (prefill first)
            dec = 0 if prefill_first else nd
            ctx = (s_dec + nd * big_n) / nd if dec else 0.0
            dt = mixed_s(dec, ctx, chunks)
            since_poll = every  # a step with prompt tokens is followed by a poll
            last_start = now
            now += dt
            occ += occupancy * dt
            run_int += n_run * dt
            kv_int += used * dt
            if used + dec > kv_peak:
                kv_peak = used + dec
            n_steps += 1
            if dec:
                big_n += 1
                itl_s.append(dt)
                itl_w.append(nd)
            elif nd:
                stall += dt
                stall_w = nd
            for p, (c, k) in zip(ids, chunks, strict=True):
                c += k
                prefilled[p] = c
                if c < target[p]:
                    continue
                prefilling.remove(p)
                kv_pref -= target[p]
                r_pref -= out[p] - gen[p]
                if pool is not None:
                    cached.add(pool[p])
                g = gen[p] = gen[p] + 1
                if first[p] != first[p]:  # NaN: the first token
                    first[p] = now
                else:
                    itl_s.append(now - preempted_at[p])
                    itl_w.append(1)
                if g >= out[p]:  # done at its first token
                    finished.append(p)
                    continue
                running[p] = True
                n0[p] = big_n
                s_dec += target[p] - big_n
                r_dec += out[p] - g + big_n
                nd += 1
                heappush(heap, (big_n + out[p] - g, p, version[p]))
        elif nd:  # a run of identical decode steps up to the next event
            while heap[0][2] != version[heap[0][1]]:
                heappop(heap)
            steps_n = heap[0][0] - big_n
            room = (cap - used) // nd
            if room < steps_n:
                steps_n = room
            ctx = (s_dec + nd * big_n) / nd
            t0 = 0.0
            if pending and n_run < max_seqs:
                t0 = decode_s(nd, ctx)
                ahead = math.ceil((pending[0][0] - now) / t0) + lag
                if ahead < 1:
                    ahead = 1
                if every > 1:
                    ahead = next_poll(since_poll, every, ahead)
                if ahead < steps_n:
                    steps_n = ahead
            if (blocked and steps_n > RESERVATION_RECHECK_STEPS
                    and running_ratio(resv, big_n - reset_n) > resv.running_min):
                steps_n = RESERVATION_RECHECK_STEPS  # the held-back share decays: look again
            dt = t0 if steps_n == 1 and t0 else steps_n * decode_s(nd, ctx + (steps_n - 1) / 2)
            step_dt = dt / steps_n
            last_start = now + dt - step_dt
            now += dt
            occ += occupancy * dt
            run_int += n_run * dt
            kv_int += (used + nd * steps_n / 2) * dt
            if used + nd * steps_n > kv_peak:
                kv_peak = used + nd * steps_n
            n_steps += steps_n
            big_n += steps_n
            since_poll += steps_n
            waited = stall_w if stall_w < nd else nd
            if waited:  # the first token after a prefill batch came late for the sequences that waited
                itl_s.append(stall + step_dt)
                itl_w.append(waited)
            stall, stall_w = 0.0, 0
            itl_s.append(step_dt)
            itl_w.append(nd * steps_n - waited)
        else:  # idle until the next request reaches the scheduler
            if not pending:
                raise RuntimeError("simulator stalled with requests left")  # unreachable: all requests fit
            occ += occupancy * (pending[0][0] - now)
            now = pending[0][0]
            since_poll = every  # an idle scheduler polls at once
            continue
        while heap and heap[0][0] <= big_n:
            _, v, ver = heappop(heap)
            if ver != version[v]:
                continue
            nd -= 1
            s_dec -= target[v] - n0[v]
            r_dec -= out[v] - gen[v] + n0[v]
            finished.append(v)
        if finished:  # completions: the closed loop's clients send their next requests
            for v in finished:
                finish[v] = now
                del running[v]
                if closed and nxt < n:
                    arrive[nxt] = now
                    pending.append((now + host_s, nxt))
                    nxt += 1
            done += len(finished)
            finished.clear()
        timeline.append((now, s_dec + nd * big_n + kv_pref, len(running), len(waiting)))
    tr.occupancy_integral, tr.running_integral, tr.kv_integral = occ, run_int, kv_int
    tr.kv_peak_tokens = kv_peak
    tr.steps = n_steps
    return tr
