"""Operating the Mosquitto broker: who may connect and what each may do, and the tools that set
it up and check it. The `doorstep broker` commands (doorstep/broker_cli.py) are built on it;
the edge agent uses `check` to say why it cannot reach the broker.

It may import the contract (the topics its rules grant) and the runtime (the MQTT client), never
edge_agent or cloud_bridge (tests/test_layers.py). This file imports nothing.

    access     one account and one role per kiosk and per bridge worker: the rules, grants, revocation
    dynsec     the dynamic-security plugin: its configuration file and an admin client
    pki        the broker's CA and certificates, the kiosks' client certificates
    check      can this client reach the broker, and if not, exactly why
    mosquitto  a real Mosquitto process on a loopback port (the demo and the tests)
"""
