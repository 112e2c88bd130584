# Stand-in for the get-pip bootstrap script that ansible-test downloads from a host
# these machines cannot reach. ansible-test runs it with the pip arguments it wants;
# we bootstrap pip from the interpreter's own ensurepip and then let pip install them.
from __future__ import annotations

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
