"""The fleet model: one MIP over integer replicas per candidate and whole instances per offer.

  min  Σ_o price_o · n_o                                              (min-cost; = min $/Mtok for the demand)
  s.t. demand       Σ_{c ∈ w} cap_c · r_c ≥ demand_w                   every workload w        ``constraints``
       packing      n_o = Σ_p x_{o,p}; (L) and (S) rows of ``packing``  every offer o          ``constraints``
                    (exact bin packing: a replica sits inside one instance)
       lower bound  Σ_{c ∈ w} share_c · r_c ≥ LB_w                      every workload (a valid cut, ``bounds``)
       one GPU type y_{w,g} ∈ {0,1}, Σ_g y_{w,g} ≤ 1, r_c ≤ ub_c · y_{w,gpu(c)}   optional     ``constraints``
       GPU types    z_g ∈ {0,1}, n_o ≤ ub_o · z_{gpu(o)}, Σ_g z_g ≤ K   (alternatives)         ``constraints``
       GPU caps     Σ_{o of g} g_o · n_o ≤ cap_g                        every capped GPU type   ``global_constraints``
       availability n_o ≤ max_instances_o                               every offer            ``global_constraints``
       budget       Σ_o price_o · n_o ≤ B                                                      ``global_constraints``
       placement    providers, GPU allow-list, regions and jurisdictions: candidates exist only on offers that
                    satisfy them (candidate generation)
  max-throughput within the budget: demand is a ceiling; served_w ≤ min(demand_w, Σ cap_c r_c) and
       weight-scaled fair shares served_w ≥ φ · ω_w · demand_w; maximise φ, then Σ_w out_tok_w · served_w,
       then minimise cost                                                                      ``objective``
  tie-break: the last stage's objective fixed, min Σ_c rank(c) · r_c                           ``objective``

Modules: ``problem`` (inputs, result, integer units), ``variables``, ``constraints``, ``global_constraints``,
``objective``, ``build`` (assembles them in a fixed order), ``start`` (starting plans, whole instances for given
replicas), ``reduce`` (incumbent from a reduced model, bound-based elimination), ``residues`` (the exact search
over each workload's near-cheapest covers, coupled by the idle GPUs of shared instances). The staged search that solves
it is ``gpuplan.optimizer.planning.solver``; the daily model reuses these rows per hour (``planning.day``).
"""
