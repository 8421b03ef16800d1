"""The marketing domain's marts."""
