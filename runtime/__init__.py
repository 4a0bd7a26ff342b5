"""What a Doorstep process runs on, whichever side it is: the edge agent, the cloud bridge and
the apps all build their MQTT client, load their settings and open their database here, so that
each is done one way.

It may import the contract, never edge_agent, cloud_bridge or the broker operations
(tests/test_layers.py). This file imports nothing.

    mqtt         the one way to build a paho-mqtt client (MQTT 5, persistent session, TLS)
    config       the settings base: one YAML file, every field overridable from the environment
    db           database engines whose commit is on disk when it returns
    http_limits  requests refused before anything parses them (both HTTP apps)
    heap         keeping the garbage collector's full passes short after start-up
"""
