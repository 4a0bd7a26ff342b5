"""The kiosk: reads its devices (drivers/), saves every reading in a durable SQLite outbox
before it says "saved" (store/: the outbox and every other table the kiosk keeps, in one
file), sends it over MQTT and forgets it only when the bridge confirms it (uplink.py), acts
on technicians' commands (remote.py, kiosk_commands.py), and serves the kiosk's touch screen
(screen/). bridge_workers.py follows which bridge workers are online, and so how readings are
sealed. agent.py wires the parts and runs them.

It builds its messages with contract/, connects with runtime/ and checks the
broker with broker_admin/; it never imports cloud_bridge nor the apps in doorstep/
(tests/test_layers.py).
"""
