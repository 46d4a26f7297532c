"""The host's autoscaler settings: one JSON file the worker role renders from the model
(templates/etc/airflow-cluster/autoscaler.json.j2; 0600 root, it holds the broker password)."""

import json
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .decision import Policy


@dataclass(frozen=True)
class Config:
    policy: Policy
    queues: list[str]  # the queues this host's workers consume
    interval: float  # seconds between two rounds
    broker_url: str  # the workers' own: sentinel://...
    transport_options: dict  # master_name, sentinel_kwargs (password)
    state_file: Path
    status_file: Path
    stop_timeout: int  # worker_stop_timeout: how long a warm stop may last


def load(path: Path = paths.CONFIG) -> Config:
    raw = json.loads(Path(path).read_text())
    return Config(
        policy=Policy(
            host=raw["host"],
            hosts=tuple(raw["hosts"]),
            concurrency=raw["concurrency"],
            min_instances=raw["min_instances"],
            max_instances=raw["max_instances"],
            cooldown=raw["cooldown"],
        ),
        queues=list(raw["queues"]),
        interval=raw["interval"],
        broker_url=raw["broker_url"],
        transport_options=raw["transport_options"],
        state_file=paths.STATE_FILE,
        status_file=paths.STATUS_FILE,
        stop_timeout=raw["stop_timeout"],
    )
