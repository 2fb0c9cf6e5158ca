"""Launch artefacts for a plan: engine command lines, SkyPilot tasks, Kubernetes manifests."""
