"""Re-export: `Every` and `check_interval` live in `emergence.schedule` (the one periodic rule)."""

from __future__ import annotations

from emergence.schedule import Every, check_interval

__all__ = ["Every", "check_interval"]
