# The two set-up commands of the README: `make cluster` and `make test`. Both start from a
# fresh Debian/Ubuntu machine (root) and install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# A venv with exactly the Airflow lock: the unit tests read the rendered airflow.cfg with
# Airflow's own config parser and check the hashes FAB uses (tests/unit/test_airflow_*.py).
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_LOCK := files/airflow/requirements-$(shell sed -n 's/^airflow_version = "\(.*\)"/\1/p' group_data/all.py).lock
export AIRFLOW_VENV
# Debian packages the control machine needs: the lab (nspawn, debootstrap) and the config
# validators the unit tests run (haproxy -c and its runtime socket through netcat,
# systemd-analyze, redis, nft -c).
SYSTEM_PACKAGES := systemd-container debootstrap iproute2 openssh-client python3-venv haproxy keepalived openssl tinyproxy-bin netcat-openbsd nftables

.PHONY: cluster test test-unit test-lab lab lab-down check system-deps venv airflow-venv bench clean lock-hashes

cluster: system-deps venv lab check
	$(VENV)/bin/pyinfra -y inventory.py deploy.py

test: system-deps venv airflow-venv
	$(PY) -m pytest tests/unit
	$(PY) -m pytest tests/lab --durations=30

test-unit: venv airflow-venv
	$(PY) -m pytest tests/unit

test-lab: system-deps venv
	$(PY) -m pytest tests/lab --durations=30

check: venv
	$(PY) -m ops check inventory.py

lab: system-deps venv
	$(PY) -m lab up

lab-down: venv
	$(PY) -m lab down

bench: system-deps venv
	$(PY) -m bench.lab

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

airflow-venv: $(AIRFLOW_VENV)/.installed

$(AIRFLOW_VENV)/.installed: $(AIRFLOW_LOCK) $(VENV)/.installed
	python3 -m venv $(AIRFLOW_VENV)
	$(VENV)/bin/uv pip install --python $(AIRFLOW_VENV)/bin/python --quiet --no-deps -r $(AIRFLOW_LOCK)
	touch $@

# Adds to each shipped lock the sha256 of every file of each pin on the package index (hosts
# install with --require-hashes): the pins themselves stay as they are (--no-deps), markers too.
lock-hashes: venv
	for lock in files/airflow/requirements-*.lock; do \
		$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --no-deps \
			--generate-hashes --no-annotate --custom-compile-command "make lock-hashes" \
			$$lock -o $$lock || exit 1; \
	done

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV)
