"""``retap ui``: a local web view of a store's runs (``docs/ui.md``). ``make_app`` builds
the ASGI app, for serving it some other way."""

from retap.ui.server import make_app

__all__ = ["make_app"]
