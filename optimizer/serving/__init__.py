"""The serving model: memory and step-time physics for one deployment, its calibration and validation."""
