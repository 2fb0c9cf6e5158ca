"""Planning: workload files, candidate generation, the CP-SAT model, daily plans, sweeps, procurement."""
