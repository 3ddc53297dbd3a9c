"""Colab's facts: it sets `COLAB_RELEASE_TAG` (and `COLAB_GPU`); outputs that outlive the VM go under `/content`."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU")
CONTENT = Path("/content")


def on_colab() -> bool:
    """Colab's environment variables are set."""
    return any(v in os.environ for v in ENV_VARS)
