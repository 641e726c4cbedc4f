"""Benchmark the activity-log pages (search and filters included) and the retention prune on a large log.

The benchmark lives in the package bench/logpages/ (see its docstring for what it measures); this script runs it:

    python bench/log_pages.py                         # both databases, 1,000,000 messages
    python bench/log_pages.py --database sqlite --messages 100000 --no-prune
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.logpages.main import main  # noqa: E402

if __name__ == "__main__":
    main()
