"""The audits a write runs before it publishes, each derived from a contract."""
