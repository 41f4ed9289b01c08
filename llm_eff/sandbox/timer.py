"""Trusted timing driver inside the jail: `python -I timer.py CALLS WARMUP`.

Imports the task's workload module (which imports the program), calls `workload()` `WARMUP`
times and then `CALLS` times, and exits. It measures nothing itself: the supervisor reads
the CPU time of the whole run from the kernel and subtracts a run with no timed calls
(`timing.py`), so a program that patches clocks or statistics in this process changes
nothing that is measured.
"""

import os
import sys


def main() -> None:
    """Run the workload WARMUP + CALLS times."""
    calls, warmup = int(sys.argv[1]), int(sys.argv[2])
    sys.path.append(os.getcwd())
    from timed_workload import workload

    for _ in range(warmup + calls):
        workload()


if __name__ == "__main__":
    main()
