"""Asset checks derived from mart contracts."""
