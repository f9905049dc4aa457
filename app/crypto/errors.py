"""Crypto errors. Messages name tables, columns and key ids, never values."""


class CryptoError(Exception):
    """Base class for key and envelope failures."""


class KeyFileError(CryptoError):
    """A key file is missing, malformed or readable by other users."""


class UnknownKeyError(CryptoError):
    """A ciphertext names a key id that is not (or no longer) in the key ring."""


class SealedValueIntegrityError(CryptoError):
    """A sealed value failed authentication: tampered, or moved to another row or column."""


class DataKeyShreddedError(CryptoError):
    """The victim's data key was destroyed (erasure by crypto-shredding)."""
