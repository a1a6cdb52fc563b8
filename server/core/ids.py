"""The id alphabet of every resource id (courses, videos, sessions, users in resource names)."""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
