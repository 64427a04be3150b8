"""Typed application state: every long-lived object the handlers share, as aiohttp ``AppKey``s."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ghosttalk.config import Config
from ghosttalk.ops.bans import BanList
from ghosttalk.ops.eventlog import EventLog
from ghosttalk.ops.metrics import Metrics
from ghosttalk.server.rooms import RoomManager

CONFIG = web.AppKey("config", Config)
ROOMS = web.AppKey("rooms", RoomManager)
EVENTS = web.AppKey("events", EventLog)
BANS = web.AppKey("bans", BanList)
METRICS = web.AppKey("metrics", Metrics)
# Set when SIGTERM arrives: /healthz answers 503 and new joins are refused while rooms drain.
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
STARTED_AT = web.AppKey("started_at", float)
# The admin key in force (configured or generated at startup); never logged after the first print.
ADMIN_KEY = web.AppKey("admin_key", str)
