"""The SFU's media plane: the shared UDP socket, one WebRTC connection per person, and the forwarder that
relays each speaker's RTP to every listener without decoding it (docs/DESIGN.md, "The media path")."""
