"""Doorstep's shared layers and the apps on top of them.

- ``contract/``: the wire contract both sides import, itself importing nothing of ours.
- ``runtime/``: what every process runs on (the MQTT client, settings, database engines).
- ``broker/``: operating the Mosquitto broker (accounts, roles, certificates, its check).
- The apps, at this level: ``cli`` (the ``doorstep`` command), ``demo``, ``simulate`` (a fleet
  of kiosks for load) and ``config_validate``. They may import the edge agent and the cloud
  bridge; nothing below them may (tests/test_layers.py).
"""
