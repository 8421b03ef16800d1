"""What is out of date and why, from the lake's build records, and what a --select names."""
