"""Column types that encrypt on the way into the database and decrypt on the way out."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from core.encryption.keys import decrypt, encrypt


class EncryptedBytes(TypeDecorator[bytes]):
    """Bytes encrypted with the current clinic's data key; ``purpose`` names the field."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.purpose = purpose

    def process_bind_param(self, value: bytes | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> bytes | None:
        return None if value is None else decrypt(value, self.purpose)


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with the current clinic's data key; ``purpose`` names the field."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(value.encode("utf-8"), self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decrypt(value, self.purpose).decode("utf-8")


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document encrypted with the current clinic's data key."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return encrypt(json.dumps(value, sort_keys=True).encode("utf-8"), self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(decrypt(value, self.purpose))
