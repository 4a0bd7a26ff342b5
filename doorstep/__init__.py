"""The apps: the ``doorstep`` command and what it runs, on top of everything else.

    cli              the ``doorstep`` command (``python -m doorstep`` is the same)
    broker_cli       its ``doorstep broker`` sub-command
    enrol            ``doorstep enrol``: a fresh kiosk gets its broker account with a one-time code
    config_validate  ``doorstep config validate``
    demo             a broker, a bridge and an agent with simulated devices, in one command
    simulate         a fleet of simulated kiosks, for load

They may import every package below them: edge_agent and cloud_bridge, which stand on
kiosk_config/ (the settings an operator may change), broker_admin/ (operating the broker),
runtime/ (what every process runs on) and contract/ (the wire contract, importing nothing of
ours). Nothing imports the apps (tests/test_layers.py).
"""
