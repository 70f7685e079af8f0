"""Load sigwarden into your own mitmproxy:

    mitmdump -s addon/sigwarden_addon.py --set sigwarden_config=config/example.yaml \
        --mode reverse:http://127.0.0.1:8000@8080 \
        --set connection_strategy=lazy --set keep_host_header=true

`sigwarden run` is the recommended way: a lean master with only the addons a sidecar needs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sigwarden.addon import Sigwarden  # noqa: E402
from sigwarden.layers import ConnectionCap  # noqa: E402

sigwarden = Sigwarden()
addons = [sigwarden, ConnectionCap(sigwarden)]
