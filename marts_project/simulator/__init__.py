"""Deterministic, seeded source systems that write realistic landing files."""

from marts_project.simulator.core import FAR_FUTURE, LandedFile, SimConfig, revision_at
from marts_project.simulator.landing import land, renderers, restate

__all__ = ["FAR_FUTURE", "renderers", "LandedFile", "SimConfig", "land", "restate", "revision_at"]
