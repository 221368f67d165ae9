@_exported import MQTTWire
