"""Lab's power part: the lab hosts' plugs, power switches, network cables and consoles
(`python -m lab kill|stop|start|isolate|heal|console`), for the fault drills."""

import os
import subprocess
import time

from lab.client.runs import run_lab


class PowerAccess:
    """Mixed into Lab, which provides inventory_path and cluster."""

    def _lab(self, *args, timeout=900, env=None) -> subprocess.CompletedProcess:
        done = run_lab(*args, "--inventory", self.inventory_path, timeout=timeout, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"python -m lab {' '.join(args)}: {done.stdout}{done.stderr}")
        return done

    def kill_host(self, *names) -> float:
        """Pull the plugs of `names` at the same moment; time.time() just before."""
        at = time.time()
        self._lab("kill", *names)
        return at

    def stop_host(self, name):
        self._lab("stop", name)

    def start_host(self, name):
        """Boot `name` on its disk and wait until it answers SSH."""
        self._lab("start", name)

    def up(self):
        """`python -m lab up`: boots every stopped or killed host on its disk."""
        self._lab("up")

    def isolate_host(self, name) -> float:
        at = time.time()
        self._lab("isolate", name)
        return at

    def heal_host(self, name):
        self._lab("heal", name)

    def console(self, name, *argv, env=None) -> subprocess.CompletedProcess:
        """`argv` run inside host `name` through its namespaces, not the network (reaches an
        isolated host); `env` is added to the environment it inherits."""
        return run_lab("console", "--inventory", self.inventory_path, name, *argv,
                       timeout=60, env={**os.environ, **(env or {})})
