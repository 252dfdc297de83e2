"""Text that can be stored: no NUL byte (PostgreSQL refuses it in TEXT) and no unpaired UTF-16
surrogate such as "\\udcff" (it has no UTF-8 form). One test for the request boundary and for
the services that take text from elsewhere (CLI, import)."""
from __future__ import annotations

import re
from typing import Any, Optional

from app.services.errors import lazy_tr

UNCLEAN_MESSAGE = lazy_tr("contains characters that are not allowed (NUL or an unpaired "
                          "surrogate)")
_UNCLEAN = re.compile("[\x00\ud800-\udfff]")


def is_unclean(value: Any) -> bool:
    return isinstance(value, str) and _UNCLEAN.search(value) is not None


def first_unclean_field(data: Any, field: str = "") -> Optional[str]:
    """The name of the first value (or key) in a JSON document that is unclean text: a
    top-level key, or the path to a nested one ("contacts.0.name"); None when all is clean."""
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{field}.{key}" if field else str(key)
            if is_unclean(key):
                return name
            found = first_unclean_field(value, name)
            if found:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = first_unclean_field(value, f"{field}.{index}" if field else str(index))
            if found:
                return found
    elif is_unclean(data):
        return field or "body"
    return None
