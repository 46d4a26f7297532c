"""Lab's SSH part: commands and testinfra hosts over the inventory's user, key and known hosts."""

import shlex
import subprocess


class SshAccess:
    """Mixed into Lab, which provides data(name) and the host cache (_hosts, _lock)."""

    def ssh_argv(self, name, *options) -> list[str]:
        """The ssh command line for host `name` with the inventory's user, key and known
        hosts (strict checking), as pyinfra connects; `options` go before the destination."""
        return ["ssh", *self._ssh_options(name), *options, self._destination(name)]

    def run(self, name, command, timeout=120) -> subprocess.CompletedProcess:
        """`command` (a shell string) on host `name` over SSH: its exit code and text output."""
        return subprocess.run(
            [*self.ssh_argv(name), command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

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
        return [
            "-i", data.get("ssh_key"),
            "-o", f"UserKnownHostsFile={data.get('ssh_known_hosts_file')}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
        ]

    def _destination(self, name) -> str:
        data = self.data(name)
        return f"{data.get('ssh_user') or 'root'}@{data.get('ssh_hostname')}"
