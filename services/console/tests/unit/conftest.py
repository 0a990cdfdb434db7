"""The unit tests' fixtures: the console's pages in-process (``console_pages``)."""

from __future__ import annotations

import pytest
from console_pages import PageClient
from console_pages import page_client as make_page_client


@pytest.fixture
def page_client() -> PageClient:
    return make_page_client()
