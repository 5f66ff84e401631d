"""nestsim: a MAVLink multirotor delivery-drone fleet simulator (PX4 and ArduPilot flavours)."""
