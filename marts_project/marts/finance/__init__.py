"""The finance domain's marts."""
