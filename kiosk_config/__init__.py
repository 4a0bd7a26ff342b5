"""A kiosk's operator-changeable configuration: one definition, loaded by the agent, validated by
the bridge. Imports the contract and firmware_configs only (tests/test_layers.py)."""
