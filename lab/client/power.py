"""Lab's power part: the lab hosts' plugs, power switches, network cables and consoles
(`python -m lab kill|stop|start|isolate|heal|console`), for the fault drills."""

import os
import re
import subprocess

from lab.client.runs import run_lab

# `python -m lab kill|isolate` logs the moment it acted: "...: plug pulled at 1795581154.166".
_AT = re.compile(r" at (\d+\.\d+)\s*$")


class PowerAccess:
    """Mixed into Lab, which provides inventory_path, cluster and forget(*names)."""

    def _lab(self, *args, timeout=900, env=None) -> subprocess.CompletedProcess:
        done = run_lab(*args, "--inventory", self.inventory_path, timeout=timeout, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"python -m lab {' '.join(args)}: {done.stdout}{done.stderr}")
        return done

    def kill_host(self, *names) -> float:
        """Pull the plugs of `names` at the same moment; the time.time() of the SIGKILL."""
        at = self._at(self._lab("kill", *names))
        self.forget(*names)
        return at

    def stop_host(self, name):
        self._lab("stop", name)
        self.forget(name)

    def start_host(self, name):
        """Boot `name` on its disk and wait until it answers SSH."""
        self._lab("start", name)

    def up(self):
        """`python -m lab up`: boots every stopped or killed host on its disk."""
        self._lab("up")

    def isolate_host(self, name) -> float:
        """Cut `name` off the network; the time.time() it was cut off."""
        at = self._at(self._lab("isolate", name))
        self.forget(name)
        return at

    def heal_host(self, name):
        self._lab("heal", name)

    @staticmethod
    def _at(done) -> float:
        found = _AT.search(done.stdout)
        if not found:
            raise RuntimeError(f"no time in python -m lab's answer: {done.stdout!r}")
        return float(found.group(1))

    def console(self, name, *argv, env=None) -> subprocess.CompletedProcess:
        """`argv` run inside host `name` through its namespaces, not the network (reaches an
        isolated host); `env` is added to the environment it inherits."""
        return run_lab("console", "--inventory", self.inventory_path, name, *argv,
                       timeout=60, env={**os.environ, **(env or {})})
