"""The local lab: Linux hosts on this machine that the deploy reaches over SSH like production.

`python -m lab up|down|status|ssh HOST [CMD...]` (see `lab.cli`), or the same from Python
through `lab.api` (`up()`, `down()`, `status()`, `run(host, cmd)`).

Every host of the inventory becomes a systemd-nspawn container booted with real systemd and
sshd, on a bridge (`alab0`, the .1 of the inventory's /24) with the host's static
`ssh_hostname` address. Containers run on a shared Debian 12 base image plus a fresh overlay
upper directory per boot, so every `up` from stopped starts clean. The hosts have no route
out: they reach apt and PyPI only through the lab's allow-listing proxy (tinyproxy) on the
bridge address, port 3128 (`lab.tinyproxy`).

State lives in /var/lib/airflow-lab (env LAB_DIR overrides): the base image, the lab SSH key,
known_hosts, per-host upper dirs, console logs and pid files.

Host-wide side effect: `up` sets vm.overcommit_memory=1 on this machine. vm.* sysctls are not
namespaced and /proc/sys is read-only inside nspawn, so Redis (which wants overcommit) can only
get it from the machine itself; the deploy finds it already set inside the containers.
`down` leaves it set.

One lab per machine: containers are named `lab-NAME` and the bridge name is fixed.
"""
