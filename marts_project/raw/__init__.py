"""The raw layer: landing files validated against their source contracts, bad rows quarantined."""
