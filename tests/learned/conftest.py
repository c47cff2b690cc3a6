"""Learned-mode tests run tiny networks: one intra-op thread is faster than two on a
shared machine (no spin-waiting), and the setting is restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
