"""bannou's messaging contract: events, the broker, heartbeats, the restart policy, and the
messaging side of one environment."""
