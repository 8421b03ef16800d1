"""The staging layer: typed, deduplicated, conformed tables, PII tokenized."""
