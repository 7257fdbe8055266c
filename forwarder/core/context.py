"""Which pipeline the running code works for, for the log (``observe.logs`` names it in
every line). Each pipeline's thread sets it; threads a pipeline starts copy it."""

from __future__ import annotations

import contextvars

PIPELINE: contextvars.ContextVar[str] = contextvars.ContextVar("pipeline", default="")
