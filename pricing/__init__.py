"""Offer tables (our CSV and SkyPilot catalogs) and owned-hardware cost inputs."""
