"""The test suite. Its days are fixed (2026, some a few years back), so the first partition is
pinned before any module defines the partitions: a test day stays a partition whatever today is
(the default first partition follows the calendar)."""

import os

os.environ.setdefault("MARTS_PARTITIONS_START", "2024-01-01")
