"""The Dagster instance of every deployment: the one home of Dagster's private names."""
