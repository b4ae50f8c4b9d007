"""Every Hugging Face test runs offline, on one torch thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def offline_and_one_thread(monkeypatch):
    """No hub access; one intra-op thread (two on a busy 2-core machine run far slower)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
