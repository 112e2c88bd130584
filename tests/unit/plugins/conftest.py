# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures shared by the module_utils and module unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def moto_endpoint():
    """``http://127.0.0.1:<port>`` of a real moto server (AWS APIs, ECR included) in a thread
    of the test process, so it cannot outlive it."""
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield "http://%s:%d" % (host, port)
    server.stop()
