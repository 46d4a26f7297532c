"""The worker hosts' autoscaler (installed by tasks/worker.py, run with the Airflow venv's
Python, whose Kombu and Celery it uses): decision.py decides, broker.py reads the load,
units.py drives systemd, daemon.py is the service, control.py the operator's commands."""
