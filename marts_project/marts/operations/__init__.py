"""The operations domain's marts."""
