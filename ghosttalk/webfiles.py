"""Where the page's files are: ``web/`` in a checkout, ``ghosttalk/web/`` in an installed wheel.

``pyproject.toml`` installs the repository's ``web/`` folder as the package ``ghosttalk.web``; an editable
install maps it to the checkout. aiohttp serves static files from a directory, so a real path is needed (the
package is never zipped).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

WEB_DIR = Path(str(resources.files("ghosttalk.web")))
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_DIR = WEB_DIR / "templates"
