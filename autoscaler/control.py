"""The operator's commands on this host (run here by `python -m ops scale|autoscale|drain|
undrain` over SSH). They change the state file the daemon follows, then wait, printing one
progress line at a time, until the host shows the result.

drain: the host's instances stop consuming (Celery's cancel_consumer, by remote control),
their running tasks finish (progress from Celery's inspect), then the instances are stopped,
warmly. On timeout they are stopped all the same, still warmly: systemd lets each finish its
tasks for worker_stop_timeout. The daemon starts nothing on a drained host until `undrain`.
"""

import socket
import time

from . import state, units
from .config import Config
from .decision import AUTO, DRAINED, FIXED, Mode

POLL = 2.0


class ControlError(Exception):
    pass


def scale(config: Config, instances: int, timeout: float, say=print) -> None:
    policy = config.policy
    if not policy.min_instances <= instances <= policy.max_instances:
        raise ControlError(f"{instances} instances is outside {policy.min_instances}.."
                           f"{policy.max_instances} (autoscale_min/max_instances)")
    with state.locked(config.state_file):
        _refuse_if_drained(config)
        state.save(config.state_file, Mode(FIXED, instances))
    say(f"{policy.host}: autoscaling off, fixed at {instances} instance(s)")
    _wait_running(config, instances, timeout, say)


def autoscale(config: Config, on: bool, say=print) -> None:
    with state.locked(config.state_file):
        _refuse_if_drained(config)
        if on:
            state.save(config.state_file, Mode(AUTO))
        else:
            pinned = config.policy.clamp(len(units.instances().running))
            state.save(config.state_file, Mode(FIXED, pinned))
    if on:
        say(f"{config.policy.host}: autoscaling on "
            f"({config.policy.min_instances}..{config.policy.max_instances} instances)")
    else:
        say(f"{config.policy.host}: autoscaling off, fixed at {pinned} instance(s)")


def drain(config: Config, timeout: float, say=print) -> bool:
    """True when every task finished before the timeout."""
    # Locked: a daemon round cannot start an instance between the mode change and the look.
    with state.locked(config.state_file):
        mode, before = state.load(config.state_file)
        if mode.kind != DRAINED:
            state.save(config.state_file, Mode(DRAINED), before=mode)
        present = units.instances()
    numbers = sorted(present.running | present.stopping)
    say(f"{config.policy.host}: drained (the autoscaler starts nothing here); "
        f"instances {numbers or 'none'}")
    finished = True
    if present.running:
        names = [_celery_name(n) for n in sorted(present.running)]
        app = _celery_app(config)
        try:
            finished = _stop_consuming_and_wait(app, names, config.queues, timeout, say)
        except Exception as e:  # noqa: BLE001 - the warm stop below is safe without it
            say(f"remote control failed ({type(e).__name__}: {e}); stopping the instances "
                "warmly (their running tasks finish first)")
        finally:
            app.close()
            # Whatever happened above (even the operator's session gone), the instances stop.
            units.stop(sorted(present.running))
    _wait_stopped(config, say)
    say(f"{config.policy.host}: no instance running")
    return finished


def undrain(config: Config, timeout: float, say=print) -> None:
    with state.locked(config.state_file):
        mode, before = state.load(config.state_file)
        if mode.kind != DRAINED:
            say(f"{config.policy.host}: not drained (mode {mode.kind})")
            return
        back = before or Mode(AUTO)
        state.save(config.state_file, back)
        # Left running by an interrupted drain, they consume nothing: a (warm) restart does.
        leftover = sorted(units.instances().running)
        if leftover:
            units.restart(leftover)
    wanted = back.instances if back.kind == FIXED else config.policy.min_instances
    say(f"{config.policy.host}: undrained, mode {back.kind}")
    _wait_running(config, wanted, timeout, say, at_least=True)


def _stop_consuming_and_wait(app, names, queues, timeout, say) -> bool:
    for queue in queues:
        replies = app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
        answered = {name for reply in replies or [] for name in reply}
        say(f"stopped consuming {queue}: {', '.join(sorted(answered)) or 'no answer'}")
    deadline = time.monotonic() + timeout
    while True:
        active = app.control.inspect(destination=names, timeout=3).active()
        if active is None:
            say("the instances did not answer; stopping them warmly "
                "(their running tasks finish first)")
            return True
        running = {name: len(tasks) for name, tasks in active.items()}
        total = sum(running.values())
        say(f"running tasks: {total} "
            f"({', '.join(f'{n}: {c}' for n, c in sorted(running.items()))})")
        if total == 0:
            return True
        if time.monotonic() > deadline:
            say(f"timeout after {timeout:.0f} s: stopping them warmly all the same (systemd "
                "gives their tasks worker_stop_timeout to finish)")
            return False
        time.sleep(POLL)


def _wait_stopped(config: Config, say) -> None:
    deadline = time.monotonic() + config.stop_timeout + 60
    while True:
        present = units.instances()
        left = sorted(present.running | present.stopping)
        if not left:
            return
        if present.running:  # started by someone else meanwhile: stop those too
            units.stop(sorted(present.running))
        if time.monotonic() > deadline:
            raise ControlError(f"instances {left} still not stopped")
        say(f"stopping: {', '.join(units.unit(n) for n in left)}")
        time.sleep(POLL)


def _wait_running(config: Config, wanted: int, timeout: float, say, at_least=False) -> None:
    deadline = time.monotonic() + timeout
    while True:
        running = len(units.instances().running)
        if running == wanted or (at_least and running >= wanted):
            say(f"{config.policy.host}: {running} instance(s) running")
            return
        if time.monotonic() > deadline:
            raise ControlError(f"{running} instance(s) running after {timeout:.0f} s, "
                               f"{wanted} wanted (see journalctl -u airflow-cluster-autoscaler)")
        time.sleep(POLL)


def _refuse_if_drained(config: Config) -> None:
    mode, _ = state.load(config.state_file)
    if mode.kind == DRAINED:
        raise ControlError(f"{config.policy.host} is drained: undrain it first")


def _celery_name(number: int) -> str:
    """The Celery hostname of instance N (its unit: --celery-hostname worker%i@%H)."""
    return f"worker{number}@{socket.gethostname()}"


def _celery_app(config: Config):
    from celery import Celery  # the workers' own Celery, from the Airflow venv

    app = Celery("airflow-cluster-autoscaler", set_as_current=False)
    app.conf.broker_url = config.broker_url
    app.conf.broker_transport_options = config.transport_options
    return app


def celery_workers(config: Config) -> dict:
    """{Celery worker name: {"online": bool, "active": [task names]}} of the running
    instances, as they answer Celery's inspect (3 s); "error" when the broker cannot be asked."""
    names = [_celery_name(n) for n in sorted(units.instances().running)]
    if not names:
        return {}
    app = _celery_app(config)
    try:
        active = app.control.inspect(destination=names, timeout=3).active() or {}
    except Exception as e:  # noqa: BLE001 - the broker unreachable is the answer
        # Kombu's message goes on with the connections' reprs, the password in them: cut.
        return {"error": f"{type(e).__name__}: {str(e).split(' : ')[0][:200]}"}
    finally:
        app.close()
    return {
        name: {"online": name in active,
               "active": [task.get("name", "?") for task in active.get(name, [])]}
        for name in names
    }
