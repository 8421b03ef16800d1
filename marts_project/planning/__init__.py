"""What is out of date and why (from the lake's build records), and which tables a `--select`
names: what `marts plan`, the landing sensor, freshness and the backfill commands share."""
