"""The page's files: jinja2 templates and static ES modules, CSS, icons and translations.

Kept at the repository root and installed as the package ``ghosttalk.web`` (``pyproject.toml`` maps it), so
the server finds them through ``importlib.resources`` whether it runs from a wheel or a checkout.
"""
