"""Registration payloads with fictional people."""

from __future__ import annotations

from typing import Any


def registration(**victim: Any) -> dict[str, Any]:
    base_victim: dict[str, Any] = {
        "given_name": "Élodie",
        "family_name": "N'Diaye",
        "date_of_birth": "1996-04-12",
        "sex": "female",
        "nationalities": ["SN"],
        "languages": ["fr", "wo"],
        "phone": "+33 6 12 34 56 78",
        "current_address": "12 rue des Lilas, 75020 Paris",
        "accommodation": "Foyer Horizon, 8 impasse du Port",
        "health_notes": "asthma, needs inhaler",
    }
    base_victim.update(victim)
    return {
        "victim": base_victim,
        "case": {
            "exploitation_forms": ["labour"],
            "labour_sector": "hospitality",
            "exploitation_means": ["debt_bondage", "confiscation_of_documents"],
            "countries_of_exploitation": ["FR"],
            "indicators": ["documents_withheld", "debt_bondage"],
            "detection_place": "Restaurant Le Soleil, Paris 11e",
            "statement_summary": "recruited through an agency in Dakar",
        },
        "detection": {"detected_on": "2026-10-01", "detecting_org_type": "ngo"},
    }
