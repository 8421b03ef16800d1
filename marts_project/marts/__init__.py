"""Marts per domain: one asset, one `.sql` and one contract `.yml` per mart table."""
