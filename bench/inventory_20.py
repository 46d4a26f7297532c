"""The lab's inventory with ten more workers: 20 hosts (python -m bench.deploy --hosts 20).
Everything else, group_data included, is the lab's (inventory.py)."""

import runpy
from pathlib import Path

_LAB = runpy.run_path(str(Path("inventory.py").resolve()))

lb, redis, postgres, web, scheduler = (_LAB[g] for g in ("lb", "redis", "postgres", "web",
                                                         "scheduler"))
worker = _LAB["worker"] + [
    (f"worker{n}", {**_LAB["worker"][0][1], "ssh_hostname": f"172.29.213.{50 + n}"})
    for n in range(3, 13)
]
