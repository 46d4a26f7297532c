"""Where the autoscaler lives on a worker host (the deploy installs it there, the service and
the commands find their files there)."""

from pathlib import Path

# The package itself, one zip archive (PYTHONPATH of the launcher; Python imports from it).
LIB_DIR = Path("/usr/local/lib/airflow-cluster")
ARCHIVE = LIB_DIR / "autoscaler.zip"
# The launcher: `airflow-cluster-autoscaler run|status|scale|autoscale|drain|undrain`.
COMMAND = Path("/usr/local/sbin/airflow-cluster-autoscaler")
CONFIG = Path("/etc/airflow-cluster/autoscaler.json")
# systemd's StateDirectory= and RuntimeDirectory= of the service.
DIR_NAME = "airflow-cluster-autoscaler"
# The operator's mode (state.py): kept across reboots, never written by the deploy.
STATE_FILE = Path("/var/lib") / DIR_NAME / "state.json"
# The last round (daemon.py), for `status`.
STATUS_FILE = Path("/run") / DIR_NAME / "status.json"
