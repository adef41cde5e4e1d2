"""Envelope encryption of health data: per-clinic data keys, wrapped by the operator's master keys."""

from core.encryption.keys import MasterKeys, decrypt, encrypt
from core.encryption.types import EncryptedBytes, EncryptedJSON, EncryptedText

__all__ = ["EncryptedBytes", "EncryptedJSON", "EncryptedText", "MasterKeys", "decrypt", "encrypt"]
