"""Operations: health, metrics, rate limits, idempotency, backups, retention."""
