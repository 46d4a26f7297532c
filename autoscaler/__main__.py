"""airflow-cluster-autoscaler: the worker host's autoscaler service and its controls.

    airflow-cluster-autoscaler run                    the service (airflow-cluster-autoscaler.service)
    airflow-cluster-autoscaler status [--celery]      mode, instances, the last decision (JSON);
                                                      --celery: each instance's Celery worker
    airflow-cluster-autoscaler load                   the broker's load now, the live hosts (JSON)
    airflow-cluster-autoscaler scale N                autoscaling off, N instances
    airflow-cluster-autoscaler autoscale on|off       off: fixed at the current count
    airflow-cluster-autoscaler drain [--timeout S]    stop consuming, wait for the tasks, stop
    airflow-cluster-autoscaler undrain                back to the mode before the drain

Exit status: 0 done, 1 refused or failed (one line on stderr), 3 drain timed out (the instances
were still stopped warmly).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from . import config as config_file
from . import broker, control, daemon, paths, state, units


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-cluster-autoscaler")
    parser.add_argument("--config", type=Path, default=paths.CONFIG)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run")
    status_command = commands.add_parser("status")
    status_command.add_argument("--celery", action="store_true")
    commands.add_parser("load")
    scale = commands.add_parser("scale")
    scale.add_argument("instances", type=int)
    scale.add_argument("--timeout", type=float, default=120)
    switch = commands.add_parser("autoscale")
    switch.add_argument("switch", choices=["on", "off"])
    drain = commands.add_parser("drain")
    drain.add_argument("--timeout", type=float)
    undrain = commands.add_parser("undrain")
    undrain.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)

    config = config_file.load(args.config)
    say = _printer()
    try:
        if args.command == "run":
            logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
            daemon.run(config)
        elif args.command == "status":
            report = status(config)
            if args.celery:
                report["celery"] = control.celery_workers(config)
            print(json.dumps(report, indent=2))
        elif args.command == "load":
            reading = daemon.read_broker(config, live=None)
            print(json.dumps({"load": reading.load, "live_hosts": sorted(reading.live_hosts)}))
        elif args.command == "scale":
            control.scale(config, args.instances, args.timeout, say)
        elif args.command == "autoscale":
            control.autoscale(config, args.switch == "on", say)
        elif args.command == "drain":
            timeout = config.stop_timeout if args.timeout is None else args.timeout
            if not control.drain(config, timeout, say):
                return 3
        elif args.command == "undrain":
            control.undrain(config, args.timeout, say)
    except (control.ControlError, state.StateError, broker.BrokerUnreadable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def status(config) -> dict:
    mode, before = state.load(config.state_file)
    present = units.instances()
    try:
        last = json.loads(config.status_file.read_text())
    except (FileNotFoundError, ValueError):
        last = None
    return {
        "host": config.policy.host,
        "mode": mode.kind,
        "fixed_instances": mode.instances,
        "before_drain": before and before.kind,
        "min_instances": config.policy.min_instances,
        "max_instances": config.policy.max_instances,
        "running": sorted(present.running),
        "stopping": sorted(present.stopping),
        "last_round": last,
    }


def _printer():
    """Progress lines for the operator; if the operator's session is gone, the command goes on
    (a drain must still stop its instances)."""
    def say(line):
        try:
            print(line, flush=True)
        except OSError:
            pass

    return say


if __name__ == "__main__":
    sys.exit(main())
