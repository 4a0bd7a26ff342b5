"""The bridge's gulp (the messages a worker stores in one transaction) is set by gulp_max and
gulp_wait_s; a configuration written before issue 17 named them batch_max and batch_wait_s,
which a kiosk's batch (docs/protocol.md) now names alone. The old names are still read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_bridge.settings import BridgeSettings


def test_the_old_names_set_the_gulp() -> None:
    settings = BridgeSettings(environment="development", batch_max=200, batch_wait_s=0.02)
    assert (settings.gulp_max, settings.gulp_wait_s) == (200, 0.02)
    assert (settings.batch_max, settings.batch_wait_s) == (None, None)  # nothing reads a second copy
    assert BridgeSettings(environment="development", gulp_max=300).gulp_max == 300


def test_an_old_name_and_its_new_one_both_set_are_refused() -> None:
    with pytest.raises(ValidationError, match="batch_max .deprecated. and gulp_max both set"):
        BridgeSettings(environment="development", batch_max=200, gulp_max=300)
