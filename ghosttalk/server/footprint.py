"""Loading the server with only what serving uses (``ghosttalk serve`` calls :func:`load_serve`).

What the server's libraries would load and the server never uses (its idle footprint is about 60 MB):

* PyAV and FFmpeg (18 MB), which aiortc imports for codecs the SFU never runs, and aioice's mDNS resolver
  with dnspython (2 MB): stand-in modules answer those imports (``ghosttalk.media.pyav_standin``).
* The system's CA certificates, which aiohttp parses at import into the TLS context of its HTTP client
  (144 certificates, 2 MB of OpenSSL heap). The server serves plain HTTP behind its proxy and makes no client
  requests, so aiohttp is imported with OpenSSL pointed at an empty CA file. Should server code ever make an
  HTTPS request with aiohttp's default context, it fails verification: closed, and loudly, never open.

Everything the server imports goes through here, so the order holds: the stand-ins and the empty CA file are
in place before the first import of aiortc or aiohttp. ``tests/test_imports.py`` runs a server and checks
what it imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ghosttalk.config import Config
from ghosttalk.media.pyav_standin import keep_mdns_out, keep_pyav_out

# OpenSSL's variables for its default CA file and directory (read when a context loads its defaults).
_TRUST_STORE_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")

Serve = Callable[[Config, Path | None], int]


@contextmanager
def _empty_trust_store() -> Iterator[None]:
    """While inside, TLS contexts that load OpenSSL's default CA locations load nothing."""
    saved = {name: os.environ.get(name) for name in _TRUST_STORE_VARIABLES}
    for name in _TRUST_STORE_VARIABLES:
        os.environ[name] = os.devnull
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def load_serve() -> Serve:
    """Import the server, keeping out what it does not use, and return its ``serve``."""
    keep_pyav_out()
    keep_mdns_out()
    with _empty_trust_store():
        import aiohttp  # noqa: F401 (its client's default TLS context is made at import)
    from ghosttalk.server.process import serve

    return serve
