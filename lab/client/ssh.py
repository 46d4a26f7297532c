"""Lab's SSH part: commands and testinfra hosts over the inventory's user, key and known hosts."""

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

# One SSH connection per host, reused by every command of the session (a handshake costs more
# than most commands the tests run). A master whose host died or was cut off goes within
# ALIVE_INTERVAL x ALIVE_COUNT s; a host that boots again resets it at once.
CONTROL_DIR = Path(tempfile.gettempdir()) / f"airflow-lab-ssh-{os.getuid()}"
CONTROL_PERSIST = 60
ALIVE_INTERVAL, ALIVE_COUNT = 5, 3


class SshAccess:
    """Mixed into Lab, which provides data(name) and the host cache (_hosts, _lock)."""

    def ssh_argv(self, name, *options) -> list[str]:
        """The ssh command line for host `name` with the inventory's user, key and known
        hosts (strict checking), as pyinfra connects; `options` come first, so they win
        (ssh takes the first value of an option), e.g. "-o", "ControlPath=none"."""
        return ["ssh", *options, *self._ssh_options(name), self._destination(name)]

    def run(self, name, command, timeout=120, input=None) -> subprocess.CompletedProcess:
        """`command` (a shell string) on host `name` over SSH: its exit code and text output.
        `input`: text for its standard input (how a secret reaches a host off every command
        line)."""
        stdin = {"stdin": subprocess.DEVNULL} if input is None else {"input": input}
        return subprocess.run(
            [*self.ssh_argv(name), command],
            capture_output=True, text=True, timeout=timeout, **stdin,
        )

    def forget(self, *names):
        """Close the shared connections to `names` (their hosts lost power or network): the
        next command connects afresh instead of waiting on a dead connection."""
        for name in names:
            subprocess.run(["ssh", "-O", "exit", *self._ssh_options(name), self._destination(name)],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)

    def host(self, name):
        """A testinfra host for `name`, over the same SSH (cached)."""
        import testinfra

        with self._lock:
            if name not in self._hosts:
                self._hosts[name] = testinfra.get_host(
                    f"ssh://{self._destination(name)}",
                    ssh_extra_args=shlex.join(self._ssh_options(name)),
                )
            return self._hosts[name]

    def _ssh_options(self, name) -> list[str]:
        data = self.data(name)
        CONTROL_DIR.mkdir(mode=0o700, exist_ok=True)
        return [
            "-i", data.get("ssh_key"),
            "-o", f"UserKnownHostsFile={data.get('ssh_known_hosts_file')}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={CONTROL_DIR}/%C",
            "-o", f"ControlPersist={CONTROL_PERSIST}s",
            "-o", f"ServerAliveInterval={ALIVE_INTERVAL}", "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
        ]

    def _destination(self, name) -> str:
        data = self.data(name)
        return f"{data.get('ssh_user') or 'root'}@{data.get('ssh_hostname')}"
