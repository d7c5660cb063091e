"""The HTML dashboard: a static, offline site built incrementally from a results folder (docs/dashboard.md)."""
from onlinemap.dashboard.site import build_site

__all__ = ["build_site"]
