"""Names from workload files made safe for file names, SkyPilot services and Kubernetes objects."""

from __future__ import annotations

import hashlib
import re


def slug(text: str, limit: int = 40) -> str:
    """Lower-case letters, digits and single hyphens, starting with a letter; a short hash keeps two
    names that differ only in other characters apart."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not s or not s[0].isalpha():
        s = f"w-{s}".rstrip("-")
    s = s[:limit].rstrip("-")
    if s != text:
        s = f"{s}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"
    return s
