"""The system Python of a host, as the wheelhouse needs it (cluster/wheelhouse.py): which
wheels run there, and which of the lock's environment markers apply."""

import json

from pyinfra.api import FactBase

# The PEP 508 marker variables (as packaging.markers.default_environment computes them) and
# the C library, printed by the host's python3 with the standard library only.
_SCRIPT = """
import json, os, platform, sys
v = sys.implementation.version
print(json.dumps({"markers": {
    "implementation_name": sys.implementation.name,
    "implementation_version": f"{v.major}.{v.minor}.{v.micro}",
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}, "libc": platform.libc_ver()}))
"""


class SystemPython(FactBase):
    """{"markers": {...PEP 508 variables...}, "libc": ["glibc", "2.36"]} of the interpreter
    `python` (the release's, cluster/systems.py), or None when the host has none."""

    def command(self, python="python3"):
        return f"command -v {python} >/dev/null && {python} -c '{_SCRIPT}' || true"

    def process(self, output):
        text = "\n".join(output).strip()
        return json.loads(text) if text else None
