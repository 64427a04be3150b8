"""The web server: the aiohttp application, the page, WebSocket signaling, rooms and the admin panel."""
