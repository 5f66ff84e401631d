"""Delivery jobs: the MQTT schema, lifecycle, journal, quotes, dispatch and mission building."""
