"""The vocabulary every floor shares: days and partitions, contracts, SQL lineage, code versions."""
