"""Home Assistant MQTT discovery: entities announced under ``<prefix>/…/config``."""
