"""The daemon's MAVLink side: one asyncio link for a whole fleet, protocols, vehicle state."""
