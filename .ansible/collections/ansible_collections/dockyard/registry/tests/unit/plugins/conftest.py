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


@pytest.fixture(autouse=True)
def command_module():
    """module_utils code starts programs through the running module's ``run_command``
    (``_command``; ``run_backend`` binds the module in a real run). Tests that call module_utils
    directly get a real AnsibleModule bound, so they exercise the same path."""
    from ansible.module_utils.basic import AnsibleModule

    from ansible_collections.dockyard.registry.plugins.module_utils import _command
    from ansible_collections.dockyard.registry.tests.unit.plugins.modules.utils import patch_module_args

    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
    _command.bind(module)
    yield module
    _command.bind(None)
