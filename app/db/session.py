"""Request-owned unit of work: one transaction per request, committed before the response.

Services never commit. The dependency is declared with scope="function" so a failed commit
becomes an error response instead of a 200 followed by lost writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.engine import DatabaseLimits, make_engine
from app.errors import DomainError


class Database:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(
            settings.database_url, limits=DatabaseLimits.from_settings(settings)
        )
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)

    # Pools opened beside the request pool for this database (the idempotency claim locks,
    # app/operations/idempotency.py): closed with it. Set per instance by add_companion.
    _companions: tuple[Engine, ...] = ()

    def add_companion(self, engine: Engine) -> None:
        self._companions = (*self._companions, engine)

    def dispose(self) -> None:
        """Close every pooled connection of this database: the request pool's and its
        companions'. Each stays usable (a later checkout connects anew)."""
        for companion in self._companions:
            companion.dispose()
        self.engine.dispose()


def get_session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    session = database.sessionmaker()
    try:
        yield session
        session.commit()
    except DomainError as exc:
        # A denial is recorded even though the request fails: its audit event is committed
        # (such errors are raised before anything else is written).
        if exc.keep_audit:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session, scope="function")]
