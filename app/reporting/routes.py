"""Coordinator reporting: indicators, dashboards, exports (API and screens)."""

from __future__ import annotations

from fastapi import APIRouter

from app.reporting.api import router as api_router
from app.reporting.screens import router as screens_router

router = APIRouter()
router.include_router(api_router)
router.include_router(screens_router)
