"""Operations: bans, the event log, metrics, client addresses and limits, security headers, TURN credentials."""
