"""Fixtures of the notification tests."""

import pytest
from conftest import DeliveryProcesses


@pytest.fixture
def processes_holder():
    """Stops whatever DeliveryProcesses a test started."""
    started: list[DeliveryProcesses] = []
    yield started
    for processes in started:
        processes.stop()
