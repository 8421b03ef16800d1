"""Deterministic, seeded source systems that write realistic landing files."""

from marts_project.simulator.core import LandedFile, SimConfig, land, restate, revision_at

__all__ = ["LandedFile", "SimConfig", "land", "restate", "revision_at"]
