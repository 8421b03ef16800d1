"""Benchmarks (`python -m bench.run` and the modules beside it).

Their lakes hold history back to a year before `common.END`, and a lake with history sets its
first partition once (`MARTS_PARTITIONS_START`): the default follows the calendar (three months
back), so a history figure reaching further would be refused as days that are not partitions.
Set here, before anything imports `marts_project`, for this process and every `marts` it runs.
"""

import os

os.environ.setdefault("MARTS_PARTITIONS_START", "2025-10-27")  # a Monday, 369 days before END

from marts_project import process  # noqa: E402  (after the setting above, before pyarrow)

process.set_up()
