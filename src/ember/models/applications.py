"""``ember.models.applications`` is ``ember.applications`` (the builders live there)."""

from ember.applications import *  # noqa: F403
from ember.applications import __all__  # noqa: F401
