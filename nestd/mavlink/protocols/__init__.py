"""Sans-io MAVLink protocol state machines: fed messages and the time, they return messages."""
