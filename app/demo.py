"""Demo data: agencies, users and synthetic cases with full, realistic timelines.

Everything here is fictional. Names are drawn from common given and family names of each
nationality, phone numbers from ranges reserved for fiction (UK 07700 900xxx, France
06 39 98 xx xx) or made up, addresses are invented shelters and streets.

Two paths produce the same shapes from the same stories (``_Plot`` writes a story: the
person, the case and a chronological list of steps):

* **Small** (``cases <= 500``, what ``make run`` uses): every step goes through the real
  services (``register``, ``refer``, ``add_consent``, ``add_note``, ``record_assessment``,
  ``assign_guardian``, ``track_event``, ``update_case``, ``transition``), so every guard,
  scope check and audit event is genuine. Services read the clock through
  ``app.db.base.utcnow``; :func:`backdated` makes that clock read the story's time while a
  step runs, so registrations, consents, notes and assessments carry their story time
  just as the backdated transitions do.
* **Bulk** (``cases > 500``, the benchmark): the same stories are written directly in
  batches (``session.execute(insert(...), rows)``). Transitions are still decided by the
  pure workflow machine (``app.cases.workflow.decide``), so a bulk timeline is one the
  services would have accepted; audit hash chains are computed in Python with the audit
  service's own ``chain_hash``. Lighter variant: a victim's sealed record holds the
  identity fields only (names, birth date, age flags, sex, nationalities, languages, one
  document) and the case the exploitation and detection fields; contact, address,
  accommodation and health fields are left empty. Blind indexes are real.

The demo refuses to load twice (it looks for its coordinator office).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import time_ns
from types import SimpleNamespace
from typing import Any, cast

import click
from sqlalchemy import JSON, Table, func, select
from sqlalchemy.orm import Session

import app.db.base as db_base
from app.agencies.models import Agency
from app.audit.models import AuditChainHead, AuditEvent
from app.audit.service import GENESIS_HASH, chain_hash
from app.auth.actor import Actor
from app.auth.models import User
from app.auth.passwords import hash_password
from app.auth.service import actor_for
from app.cases import service as cases_service
from app.cases import transitions as tx
from app.cases.models import Case, CaseNote, CaseParticipant, Consent
from app.cases.schemas import CasePatch, ConsentIn, NoteIn, ReferralIn, RegistrationIn
from app.cases.workflow import (
    RESUME_PREVIOUS,
    TRANSITIONS,
    Allowed,
    CaseFacts,
    Effect,
    Event,
    PermitStatus,
    ProceedingsStatus,
    Role,
    Stage,
    TransitionRequest,
    decide,
    facts_after,
)
from app.context import AppContext
from app.crypto.models import BlindIndexEntry, DataKey
from app.db.base import utcnow
from app.errors import DomainError
from app.reporting.bulk import BackgroundCopier
from app.victims.models import Victim
from app.vocab import age_band

DEMO_PASSWORD = "demo-passage-2026"  # noqa: S105 (public by design: demo logins only)
SMALL_PATH_MAX = 500
PARALLEL_MIN = 5000  # below this, starting worker processes costs more than it saves
_MARKER_AGENCY = "National Anti-Trafficking Coordination Office (demo)"


# =========================================================================== clock


class _DemoClock(threading.local):
    moment: datetime | None = None


_CLOCK = _DemoClock()
_REAL_DATETIME = datetime


class _BackdatedDatetime(datetime):
    """``app.db.base.datetime`` while :func:`backdated` is active: ``now()`` is the story time."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        moment = _CLOCK.moment
        if moment is None:
            return _REAL_DATETIME.now(tz)
        return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)


@contextmanager
def backdated(moment: datetime) -> Iterator[None]:
    """Make ``app.db.base.utcnow`` (services, column defaults, audit) read ``moment``.

    For demo data and tests only. ``utcnow`` resolves ``datetime`` in ``app.db.base`` at
    call time, so swapping that module global moves every clock read that goes through it,
    column defaults included. The story time is thread-local; other threads see real time.
    """
    if moment.tzinfo is None:
        raise ValueError("backdated() needs an aware datetime")
    previous_moment = _CLOCK.moment
    module_globals = vars(db_base)
    previous_class = module_globals["datetime"]
    _CLOCK.moment = moment.astimezone(UTC)
    module_globals["datetime"] = _BackdatedDatetime
    try:
        yield
    finally:
        _CLOCK.moment = previous_moment
        module_globals["datetime"] = previous_class


# =========================================================================== directory


@dataclass(frozen=True)
class AgencySpec:
    key: str
    name: str
    type: str
    country: str
    region: str | None


@dataclass(frozen=True)
class UserSpec:
    username: str
    display_name: str
    role: str
    agency: str


AGENCIES: tuple[AgencySpec, ...] = (
    AgencySpec("coord", _MARKER_AGENCY, "coordinator_office", "FR", "National"),
    # France (Council of Europe default profile)
    AgencySpec("fr_ngo", "Association Passerelle (demo)", "ngo", "FR", "Île-de-France"),
    AgencySpec(
        "fr_ngo2", "Association Le Relais Rhône (demo)", "ngo", "FR", "Auvergne-Rhône-Alpes"
    ),
    AgencySpec(
        "fr_police", "Police nationale, unité traite Paris (demo)", "police", "FR", "Île-de-France"
    ),
    AgencySpec(
        "fr_social",
        "Aide sociale à l'enfance de Paris (demo)",
        "social_services",
        "FR",
        "Île-de-France",
    ),
    AgencySpec(
        "fr_parquet", "Parquet de Paris, pôle traite (demo)", "prosecutor", "FR", "Île-de-France"
    ),
    # United Kingdom (NRM): the Single Competent Authority decides
    AgencySpec("gb_ngo", "North Star Refuge (demo)", "ngo", "GB", "London"),
    AgencySpec("gb_police", "Metropolitan Modern Slavery Unit (demo)", "police", "GB", "London"),
    AgencySpec(
        "gb_social", "Westminster Children's Services (demo)", "social_services", "GB", "London"
    ),
    AgencySpec(
        "gb_sca", "Single Competent Authority (demo)", "coordinator_office", "GB", "United Kingdom"
    ),
    # Portugal
    AgencySpec("pt_ngo", "Associação Porto Seguro (demo)", "ngo", "PT", "Lisboa"),
    AgencySpec("pt_police", "Polícia Judiciária, unidade TSH (demo)", "police", "PT", "Lisboa"),
    AgencySpec("pt_mp", "Ministério Público, DIAP Lisboa (demo)", "prosecutor", "PT", "Lisboa"),
    # Niger
    AgencySpec("ne_ngo", "ONG Tiyya Niamey (demo)", "ngo", "NE", "Niamey"),
    AgencySpec("ne_police", "Brigade des mineurs de Niamey (demo)", "police", "NE", "Niamey"),
    AgencySpec("ne_parquet", "Parquet du tribunal de Niamey (demo)", "prosecutor", "NE", "Niamey"),
    AgencySpec(
        "ne_social",
        "Direction régionale de la protection de l'enfant (demo)",
        "social_services",
        "NE",
        "Niamey",
    ),
    # Foreign focal points (receiving countries for returns)
    AgencySpec("fp_ro", "Romanian focal point (demo)", "foreign_focal_point", "RO", None),
    AgencySpec("fp_ng", "Nigerian focal point (demo)", "foreign_focal_point", "NG", None),
    AgencySpec("fp_vn", "Vietnamese focal point (demo)", "foreign_focal_point", "VN", None),
    AgencySpec("fp_br", "Brazilian focal point (demo)", "foreign_focal_point", "BR", None),
    AgencySpec("fp_al", "Albanian focal point (demo)", "foreign_focal_point", "AL", None),
    AgencySpec(
        "fp_intl",
        "Regional return and reintegration desk (demo)",
        "foreign_focal_point",
        "CH",
        None,
    ),
)

USERS: tuple[UserSpec, ...] = (
    UserSpec("coordinator.marc", "Marc Lefèvre", "coordinator", "coord"),
    UserSpec("coordinator.helen", "Helen Okoro", "coordinator", "coord"),
    UserSpec("admin.root", "Demo administrator", "admin", "coord"),
    UserSpec("ngo.amina", "Amina Diallo", "ngo_caseworker", "fr_ngo"),
    UserSpec("ngo.pierre", "Pierre Garnier", "ngo_caseworker", "fr_ngo2"),
    UserSpec("police.luc", "Luc Moreau", "police_officer", "fr_police"),
    UserSpec("police.nadia", "Nadia Benali", "police_officer", "fr_police"),
    UserSpec("social.claire", "Claire Fontaine", "social_worker", "fr_social"),
    UserSpec("guardian.sofia", "Sofia Almeida", "guardian", "fr_social"),
    UserSpec("prosecutor.jean", "Jean Rousseau", "prosecutor", "fr_parquet"),
    UserSpec("ngo.grace", "Grace Whitfield", "ngo_caseworker", "gb_ngo"),
    UserSpec("police.tom", "Tom Hargreaves", "police_officer", "gb_police"),
    UserSpec("social.hannah", "Hannah Price", "social_worker", "gb_social"),
    UserSpec("guardian.emma", "Emma Clarke", "guardian", "gb_social"),
    UserSpec("sca.oliver", "Oliver Bennett", "police_officer", "gb_sca"),
    UserSpec("sca.priya", "Priya Raman", "police_officer", "gb_sca"),
    UserSpec("ngo.beatriz", "Beatriz Nogueira", "ngo_caseworker", "pt_ngo"),
    UserSpec("guardian.ricardo", "Ricardo Matos", "guardian", "pt_ngo"),
    UserSpec("police.joao", "João Carvalho", "police_officer", "pt_police"),
    UserSpec("police.marta", "Marta Simões", "police_officer", "pt_police"),
    UserSpec("prosecutor.rita", "Rita Lobo", "prosecutor", "pt_mp"),
    UserSpec("ngo.hadiza", "Hadiza Mahamane", "ngo_caseworker", "ne_ngo"),
    UserSpec("police.issa", "Issa Garba", "police_officer", "ne_police"),
    UserSpec("parquet.ibrahim", "Ibrahim Soumana", "police_officer", "ne_parquet"),
    UserSpec("parquet.aicha", "Aïcha Boubacar", "police_officer", "ne_parquet"),
    UserSpec("social.mariama", "Mariama Idrissa", "social_worker", "ne_social"),
    UserSpec("guardian.moussa", "Moussa Hamani", "guardian", "ne_social"),
    UserSpec("focal.ines", "Inês Duarte", "focal_point", "fp_intl"),
    UserSpec("focal.andrei", "Andrei Marin", "focal_point", "fp_ro"),
    UserSpec("focal.chidi", "Chidi Okeke", "focal_point", "fp_ng"),
    UserSpec("focal.linh", "Linh Pham", "focal_point", "fp_vn"),
    UserSpec("focal.rafaela", "Rafaela Costa", "focal_point", "fp_br"),
    UserSpec("focal.arben", "Arben Hoxha", "focal_point", "fp_al"),
)


@dataclass(frozen=True)
class CountrySetup:
    profile: str
    ngo: tuple[str, ...]
    police: tuple[str, ...]
    social: tuple[str, ...]
    deciders: tuple[str, str]
    decider_agency: str
    support_agency: str
    support_user: str
    guardian: str
    nationalities: tuple[tuple[str, int], ...]
    weight: int


COUNTRIES: dict[str, CountrySetup] = {
    "GB": CountrySetup(
        profile="uk",
        ngo=("ngo.grace",),
        police=("police.tom",),
        social=("social.hannah",),
        deciders=("sca.oliver", "sca.priya"),
        decider_agency="gb_sca",
        support_agency="gb_ngo",
        support_user="ngo.grace",
        guardian="guardian.emma",
        nationalities=(
            ("GB", 24),
            ("AL", 15),
            ("VN", 12),
            ("ER", 8),
            ("SD", 7),
            ("RO", 8),
            ("NG", 8),
            ("IN", 5),
            ("PL", 4),
            ("CN", 5),
            ("IR", 4),
        ),
        weight=30,
    ),
    "FR": CountrySetup(
        profile="coe_default",
        ngo=("ngo.amina", "ngo.pierre"),
        police=("police.luc", "police.nadia"),
        social=("social.claire",),
        deciders=("police.luc", "police.nadia"),
        decider_agency="fr_police",
        support_agency="fr_ngo",
        support_user="ngo.amina",
        guardian="guardian.sofia",
        nationalities=(
            ("NG", 20),
            ("RO", 14),
            ("FR", 10),
            ("CN", 8),
            ("BR", 8),
            ("MA", 8),
            ("CI", 8),
            ("BG", 6),
            ("VN", 6),
            ("UA", 6),
            ("AL", 6),
        ),
        weight=30,
    ),
    "PT": CountrySetup(
        profile="pt",
        ngo=("ngo.beatriz",),
        police=("police.joao", "police.marta"),
        social=(),
        deciders=("police.joao", "police.marta"),
        decider_agency="pt_police",
        support_agency="pt_ngo",
        support_user="ngo.beatriz",
        guardian="guardian.ricardo",
        nationalities=(
            ("PT", 15),
            ("BR", 25),
            ("RO", 10),
            ("NP", 10),
            ("IN", 10),
            ("UA", 8),
            ("MD", 6),
            ("CV", 8),
            ("AO", 8),
        ),
        weight=20,
    ),
    "NE": CountrySetup(
        profile="ne",
        ngo=("ngo.hadiza",),
        police=("police.issa",),
        social=("social.mariama",),
        deciders=("parquet.ibrahim", "parquet.aicha"),
        decider_agency="ne_parquet",
        support_agency="ne_ngo",
        support_user="ngo.hadiza",
        guardian="guardian.moussa",
        nationalities=(("NE", 35), ("NG", 25), ("ML", 15), ("BF", 10), ("BJ", 8), ("TD", 7)),
        weight=20,
    ),
}
FOCAL_BY_NATIONALITY = {
    "RO": "focal.andrei",
    "MD": "focal.andrei",
    "NG": "focal.chidi",
    "VN": "focal.linh",
    "BR": "focal.rafaela",
    "AL": "focal.arben",
}
_USER_AGENCY = {u.username: u.agency for u in USERS}
_AGENCY_BY_KEY = {a.key: a for a in AGENCIES}


# =========================================================================== people

# given names (female, male), family names, languages (ISO 639), phone prefix
# fmt: off
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], str]] = {
    "GB": (("Emily", "Chloe", "Jessica", "Megan", "Lauren"), ("Jack", "Liam", "Callum", "Ryan", "Kyle"),
           ("Smith", "Jones", "Taylor", "Brown", "Walker", "Wright"), ("en",), "+44 7700 900"),
    "AL": (("Elira", "Arta", "Besa", "Klea", "Ana"), ("Ardit", "Klodian", "Erion", "Besnik", "Gentian"),
           ("Hoxha", "Shehu", "Gashi", "Krasniqi", "Leka", "Duka"), ("sq",), "+355 69 "),
    "VN": (("Lan", "Hoa", "Linh", "Thao", "Mai"), ("Minh", "Tuan", "Duc", "Hung", "Quang"),
           ("Nguyen", "Tran", "Le", "Pham", "Hoang", "Vu"), ("vi",), "+84 91 "),
    "ER": (("Senait", "Helen", "Selam", "Luwam", "Saba"), ("Yonas", "Dawit", "Samuel", "Filmon", "Robel"),
           ("Tesfay", "Ghebre", "Kidane", "Haile", "Tekle"), ("ti",), "+291 7 "),
    "SD": (("Amira", "Fatima", "Hawa", "Sara", "Mariam"), ("Mohamed", "Ahmed", "Osman", "Yousif", "Adam"),
           ("Abdalla", "Hassan", "Ibrahim", "Musa", "Omer"), ("ar",), "+249 91 "),
    "RO": (("Ioana", "Andreea", "Elena", "Mihaela", "Alexandra"), ("Mihai", "Ionut", "Florin", "Adrian", "Vasile"),
           ("Popescu", "Ionescu", "Dumitru", "Stan", "Constantin", "Marin"), ("ro",), "+40 72 "),
    "NG": (("Blessing", "Joy", "Precious", "Favour", "Osas", "Chioma"), ("Efosa", "Uche", "Emeka", "Osaro", "Tunde"),
           ("Okafor", "Igbinedion", "Osagie", "Adeyemi", "Okonkwo", "Eze"), ("en", "bin"), "+234 803 "),
    "IN": (("Priya", "Sunita", "Anjali", "Kavita", "Pooja"), ("Rahul", "Amit", "Suresh", "Vikram", "Arjun"),
           ("Singh", "Kumar", "Sharma", "Patel", "Das"), ("hi", "pa"), "+91 98 "),
    "PL": (("Anna", "Katarzyna", "Magdalena", "Agnieszka", "Joanna"), ("Piotr", "Tomasz", "Krzysztof", "Marek", "Pawel"),
           ("Nowak", "Kowalski", "Wisniewski", "Wojcik", "Kaminski"), ("pl",), "+48 601 "),
    "CN": (("Mei", "Xiu", "Lan", "Ying", "Hui"), ("Wei", "Jun", "Hao", "Lei", "Qiang"),
           ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang"), ("zh",), "+86 139 "),
    "IR": (("Maryam", "Zahra", "Fatemeh", "Neda", "Parisa"), ("Ali", "Reza", "Hossein", "Mehdi", "Amir"),
           ("Ahmadi", "Hosseini", "Karimi", "Rezaei", "Moradi"), ("fa",), "+98 912 "),
    "FR": (("Camille", "Léa", "Manon", "Chloé", "Inès"), ("Lucas", "Hugo", "Théo", "Nathan", "Enzo"),
           ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit"), ("fr",), "+33 6 39 98 "),
    "BR": (("Ana", "Juliana", "Fernanda", "Larissa", "Camila"), ("Lucas", "Gabriel", "Thiago", "Rafael", "Bruno"),
           ("Silva", "Santos", "Oliveira", "Souza", "Pereira", "Lima"), ("pt",), "+55 11 9"),
    "MA": (("Fatima", "Khadija", "Salma", "Imane", "Nadia"), ("Youssef", "Mohamed", "Hamza", "Karim", "Mehdi"),
           ("El Amrani", "Benali", "Alaoui", "Idrissi", "Bennani"), ("ar", "fr"), "+212 6 "),
    "CI": (("Aya", "Adjoua", "Affoué", "Mariam", "Awa"), ("Koffi", "Yao", "Kouadio", "Seydou", "Yannick"),
           ("Kouassi", "Konan", "Traoré", "Koné", "Yao", "Bamba"), ("fr", "dyu"), "+225 07 "),
    "BG": (("Desislava", "Maria", "Ivanka", "Petya", "Gergana"), ("Ivan", "Georgi", "Dimitar", "Nikolay", "Stoyan"),
           ("Ivanova", "Petrova", "Dimitrova", "Georgieva", "Nikolova"), ("bg",), "+359 88 "),
    "UA": (("Olena", "Iryna", "Oksana", "Natalia", "Yulia"), ("Andriy", "Dmytro", "Oleksandr", "Serhiy", "Taras"),
           ("Shevchenko", "Kovalenko", "Bondarenko", "Tkachenko", "Melnyk"), ("uk",), "+380 67 "),
    "PT": (("Beatriz", "Inês", "Mariana", "Carolina", "Rita"), ("João", "Tiago", "Diogo", "Rui", "Nuno"),
           ("Ferreira", "Costa", "Rodrigues", "Martins", "Sousa"), ("pt",), "+351 91 "),
    "NP": (("Sita", "Gita", "Sarita", "Anita", "Maya"), ("Ram", "Hari", "Bikash", "Suman", "Prakash"),
           ("Shrestha", "Tamang", "Gurung", "Rai", "Thapa", "Magar"), ("ne",), "+977 98 "),
    "MD": (("Natalia", "Olga", "Cristina", "Svetlana", "Ana"), ("Ion", "Vasile", "Sergiu", "Andrei", "Victor"),
           ("Rusu", "Ciobanu", "Ceban", "Lungu", "Munteanu"), ("ro", "ru"), "+373 69 "),
    "CV": (("Carla", "Nelida", "Edna", "Sónia", "Elisa"), ("Carlos", "Nelson", "Hélder", "Admilson", "Jorge"),
           ("Tavares", "Monteiro", "Fernandes", "Semedo", "Varela"), ("pt", "kea"), "+238 99 "),
    "AO": (("Esperança", "Luzia", "Domingas", "Teresa", "Madalena"), ("Domingos", "Manuel", "António", "Mateus", "Adão"),
           ("Mbala", "Kiala", "Neto", "Sebastião", "Lutonda"), ("pt", "kmb"), "+244 92 "),
    "NE": (("Hadiza", "Mariama", "Zeinabou", "Rakia", "Fati"), ("Abdou", "Issoufou", "Moussa", "Hamidou", "Salif"),
           ("Moussa", "Hama", "Issa", "Ali", "Boukari", "Garba"), ("ha", "dje"), "+227 96 "),
    "ML": (("Aminata", "Fatoumata", "Kadiatou", "Oumou", "Djeneba"), ("Mamadou", "Bakary", "Seydou", "Modibo", "Boubacar"),
           ("Traoré", "Coulibaly", "Diarra", "Keita", "Touré", "Sissoko"), ("bm", "fr"), "+223 76 "),
    "BF": (("Aïssata", "Salimata", "Rasmata", "Awa", "Alimata"), ("Ousmane", "Issaka", "Adama", "Souleymane", "Yacouba"),
           ("Ouédraogo", "Sawadogo", "Compaoré", "Kaboré", "Zongo"), ("mos", "fr"), "+226 70 "),
    "BJ": (("Rachida", "Sènan", "Bénédicte", "Afiavi", "Rosine"), ("Koffi", "Sèna", "Rodrigue", "Kossi", "Codjo"),
           ("Hounkpatin", "Agossou", "Dossou", "Ahouandjinou", "Sossou"), ("fon", "fr"), "+229 97 "),
    "TD": (("Achta", "Hawa", "Zara", "Khadidja", "Halimé"), ("Mahamat", "Abakar", "Idriss", "Hassan", "Brahim"),
           ("Abdelkerim", "Youssouf", "Moussa", "Saleh", "Ahmat"), ("ar", "fr"), "+235 66 "),
}
# fmt: on

_SHELTERS = {
    "GB": ("Safe House 7 (demo), London", "Haven Court (demo), Croydon"),
    "FR": ("Foyer Horizon (démo), Paris 20e", "Résidence Les Tilleuls (démo), Lyon 7e"),
    "PT": ("Casa Abrigo Sul (demo), Lisboa", "Centro de Acolhimento Tejo (demo), Setúbal"),
    "NE": ("Centre d'accueil Espoir (démo), Niamey", "Maison des enfants (démo), Niamey"),
}
_STREETS = {
    "GB": ("Example Road", "Fictional Lane", "Sample Street"),
    "FR": ("rue des Lilas", "impasse du Port", "avenue Imaginaire"),
    "PT": ("Rua das Flores", "Travessa do Exemplo", "Avenida Fictícia"),
    "NE": ("Rue du Fleuve", "Avenue de la Démo", "Quartier Plateau"),
}


@dataclass(frozen=True)
class Person:
    given_name: str
    family_name: str
    sex: str
    nationality: str
    date_of_birth: date | None
    estimated_age: int | None
    age_uncertain: bool
    languages: tuple[str, ...]
    phone: str | None
    passport: str | None
    address: str
    accommodation: str


# =========================================================================== stories


@dataclass
class Step:
    at: datetime
    op: str  # register share consent assess guardian note fire track indicators
    actor: str  # a key of Story.cast
    arg: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Story:
    index: int
    country: str
    profile: str
    registrar_kind: str
    person: Person
    forms: list[str]
    labour_sector: str | None
    indicators: list[str]
    means: list[str]
    detecting_org_type: str
    detected_on: date
    referral_consent: bool
    cast: dict[str, str]
    steps: list[Step] = field(default_factory=list)

    @property
    def band(self) -> str:
        return str(
            age_band(
                self.person.date_of_birth,
                self.person.estimated_age,
                self.person.age_uncertain,
                self.detected_on,
            )
        )


class _Done(Exception):
    """The story ends here (its goal is reached, or it has caught up with the present)."""


# Stages every demo covers: the first stories are steered to end in each of them.
GOAL_STAGES: tuple[str, ...] = tuple(s.value for s in Stage)
# fmt: off
_GOALS: dict[str, dict[str, bool]] = {
    "detected": {},
    "presumed_victim": {},
    "declined_formal_identification": {"decline": True, "reenter": False, "close_declined": False},
    "referred": {"decline": False},
    "reasonable_grounds_pending": {"decline": False},
    "recovery_reflection": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False,
    },
    "identification_pending": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False,
    },
    "identified": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False, "id_negative": False,
    },
    "not_identified": {"decline": False, "rg_negative": True, "reconsider_rg": False},
    "reconsideration": {"decline": False, "rg_negative": True, "reconsider_rg": True},
    "long_term_support": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False, "id_negative": False, "long_term": True, "return": False,
    },
    "return_planning": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False, "id_negative": False, "long_term": False, "return": True,
        "cancel_return": False,
    },
    "returned_handed_over": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False, "id_negative": False, "long_term": False, "return": True,
        "cancel_return": False,
    },
    "reintegration_monitoring": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False, "id_negative": False, "long_term": False, "return": True,
        "cancel_return": False, "re_traffic": False,
    },
    "closed": {
        "decline": False, "rg_negative": False, "lost_contact": False, "missing": False,
        "early_return": False, "id_negative": False, "long_term": True, "return": False,
        "close_after_support": True,
    },
    "lost_contact": {
        "decline": False, "rg_negative": False, "lost_contact": True, "restore": False,
    },
    "missing_child": {"rg_negative": False, "missing": True, "found": False},
}
# fmt: on


def _weighted(rng: random.Random, items: Sequence[tuple[str, int]]) -> str:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items], k=1)[0]


def _office(moment: datetime, rng: random.Random, tz_hours: int = 0) -> datetime:
    """Move a staff action into office hours (Mon-Fri, 08:30-18:00 UTC-ish)."""
    local = moment
    if local.hour < 8 or (local.hour == 8 and local.minute < 30):
        local = local.replace(hour=8, minute=30) + timedelta(minutes=rng.randint(0, 240))
    elif local.hour >= 18:
        local = (local + timedelta(days=1)).replace(hour=8, minute=30) + timedelta(
            minutes=rng.randint(0, 240)
        )
    while local.weekday() >= 5:
        local = (local + timedelta(days=1)).replace(hour=9, minute=rng.randint(0, 59))
    return local


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(sigma * rng.gauss(0.0, 1.0))


class _Plot:
    """Writes one story: a person, a case and its timeline (see the module docstring)."""

    def __init__(self, rng: random.Random, present: datetime, index: int, goal: str | None) -> None:
        self.rng = rng
        self.present = present
        self.goal = goal
        self.forced = _GOALS.get(goal or "", {})
        country = _weighted(rng, [(code, c.weight) for code, c in COUNTRIES.items()])
        if goal in ("declined_formal_identification", "lost_contact"):
            self.want_child: bool | None = False
        elif goal == "missing_child":
            self.want_child = True
        else:
            self.want_child = None
        self.story = self._cast(index, country)
        self.t = datetime.combine(self.story.detected_on, time(0), tzinfo=UTC)

    # -- randomness with goals ---------------------------------------------------------
    def branch(self, name: str, probability: float) -> bool:
        if name in self.forced:
            return self.forced[name]
        return self.rng.random() < probability

    def stop(self, stage: str) -> None:
        if self.goal == stage:
            raise _Done

    # -- the cast and the person ---------------------------------------------------------
    def _cast(self, index: int, country: str) -> Story:
        rng = self.rng
        setup = COUNTRIES[country]
        nationality = _weighted(rng, setup.nationalities)
        child = self.want_child if self.want_child is not None else rng.random() < 0.2
        kinds = [("ngo", 55), ("police", 30)] + (
            [("social", 15 + 20 * child)] if setup.social else []
        )
        registrar_kind = _weighted(rng, kinds)
        pool = {"ngo": setup.ngo, "police": setup.police, "social": setup.social}[registrar_kind]
        registrar = rng.choice(pool)
        support = registrar if registrar_kind in ("ngo", "social") else setup.support_user
        person = self._person(nationality, child, country)
        detected_days_ago = 2 + (rng.random() ** 0.85) * 3 * 365
        detected_on = (self.present - timedelta(days=detected_days_ago)).date()
        forms, sector = self._forms(person.sex, child)
        org = self._detector(registrar_kind)
        cast = {
            "registrar": registrar,
            "support": support,
            "decider": setup.deciders[0],
            "decider2": setup.deciders[1],
            "guardian": setup.guardian,
            "focal": FOCAL_BY_NATIONALITY.get(nationality, "focal.ines"),
            "coordinator": "coordinator.marc",
        }
        if rng.random() < 0.5:
            cast["decider"], cast["decider2"] = cast["decider2"], cast["decider"]
        indicators = self._indicators(forms)
        means = rng.sample(
            [
                "deception",
                "debt_bondage",
                "confiscation_of_documents",
                "threat",
                "isolation",
                "abuse_of_vulnerability",
                "coercion",
                "withholding_wages",
            ],
            k=rng.randint(1, 3),
        )
        return Story(
            index=index,
            country=country,
            profile=setup.profile,
            registrar_kind=registrar_kind,
            person=person,
            forms=forms,
            labour_sector=sector,
            indicators=indicators,
            means=means,
            detecting_org_type=org,
            detected_on=detected_on,
            referral_consent=False,
            cast=cast,
        )

    def _person(self, nationality: str, child: bool, country: str) -> Person:
        rng = self.rng
        female_names, male_names, families, languages, phone_prefix = _NAMES[nationality]
        sex = "female" if rng.random() < (0.55 if child else 0.62) else "male"
        if rng.random() < 0.01:
            sex = "unknown"
        given = rng.choice(male_names if sex == "male" else female_names)
        family = rng.choice(families)
        today = self.present.date()
        dob: date | None
        estimated: int | None = None
        uncertain = False
        if child:
            age = rng.randint(11, 17)
            if rng.random() < 0.3:  # age disputed: an estimate only, presumed a child
                dob, estimated, uncertain = None, rng.randint(15, 19), True
            else:
                dob = today - timedelta(days=age * 365 + rng.randint(30, 330))
        elif self.want_child is None and rng.random() < 0.04:
            dob = None  # nothing known about the age: the workflow treats the person as a child
        else:
            age = min(62, 18 + int(abs(rng.gauss(0, 1)) * 9) + rng.randint(1, 4))
            dob = today - timedelta(days=age * 365 + rng.randint(30, 330))
        phone = None
        if rng.random() < 0.7:
            phone = phone_prefix + "".join(
                str(rng.randint(0, 9)) for _ in range(3 if nationality == "GB" else 6)
            )
            if nationality == "FR":
                phone = f"{phone_prefix}{rng.randint(10, 99)} {rng.randint(10, 99)}"
        passport = None
        if rng.random() < 0.45:
            passport = f"{nationality}{rng.randint(1000000, 9999999)}"
        street = rng.choice(_STREETS[country])
        return Person(
            given_name=given,
            family_name=family,
            sex=sex,
            nationality=nationality,
            date_of_birth=dob,
            estimated_age=estimated,
            age_uncertain=uncertain,
            languages=languages,
            phone=phone,
            passport=passport,
            address=f"{rng.randint(1, 180)} {street}",
            accommodation=rng.choice(_SHELTERS[country]),
        )

    def _forms(self, sex: str, child: bool) -> tuple[list[str], str | None]:
        rng = self.rng
        if child:
            table = [
                ("forced_criminality", 30),
                ("sexual", 25),
                ("forced_begging", 15),
                ("labour", 15),
                ("domestic_servitude", 10),
                ("forced_marriage", 5),
            ]
        elif sex == "male":
            table = [
                ("labour", 60),
                ("forced_criminality", 15),
                ("labour+forced_criminality", 8),
                ("sexual", 7),
                ("forced_begging", 5),
                ("domestic_servitude", 3),
                ("organ_removal", 1),
                ("other", 1),
            ]
        else:
            table = [
                ("sexual", 55),
                ("labour", 15),
                ("domestic_servitude", 15),
                ("sexual+labour", 5),
                ("forced_marriage", 3),
                ("forced_criminality", 4),
                ("other", 3),
            ]
        forms = _weighted(rng, table).split("+")
        sector = None
        if "labour" in forms:
            sector = rng.choice(
                [
                    "agriculture",
                    "construction",
                    "hospitality",
                    "car_wash",
                    "nail_bar",
                    "fishing",
                    "cleaning",
                    "manufacturing",
                    "domestic_work",
                ]
            )
        return forms, sector

    def _detector(self, registrar_kind: str) -> str:
        tables = {
            "police": [
                ("police", 60),
                ("border_guard", 20),
                ("labour_inspection", 15),
                ("other", 5),
            ],
            "ngo": [
                ("ngo", 50),
                ("self_referral", 15),
                ("health", 10),
                ("consulate", 5),
                ("carrier", 3),
                ("labour_inspection", 5),
                ("social_services", 5),
                ("other", 7),
            ],
            "social": [("social_services", 70), ("health", 15), ("ngo", 10), ("other", 5)],
        }
        return _weighted(self.rng, tables[registrar_kind])

    def _indicators(self, forms: Sequence[str]) -> list[str]:
        pool = [
            "documents_withheld",
            "restricted_movement",
            "threats_or_violence",
            "deceived_about_work",
            "isolation",
            "fear_of_authorities",
            "not_knowing_address",
        ]
        if "labour" in forms:
            pool += [
                "excessive_hours",
                "no_or_little_pay",
                "dependence_on_employer_housing",
                "debt_bondage",
            ]
        if "sexual" in forms:
            pool += [
                "sexual_exploitation_signs",
                "signs_of_physical_abuse",
                "recruited_by_deception",
            ]
        if "forced_criminality" in forms:
            pool += ["forced_to_commit_crimes"]
        return sorted(self.rng.sample(pool, k=self.rng.randint(2, min(5, len(pool)))))

    # -- steps ---------------------------------------------------------------------------
    def at(self, days: float, *, office: bool = True) -> datetime:
        moment = self.t + timedelta(days=max(days, 0.0))
        return _office(moment, self.rng) if office else moment

    def main(
        self, op: str, actor: str, arg: str = "", *, after: float, office: bool = True, **extra: Any
    ) -> datetime:
        """A step on the case's main line: the cursor moves to it."""
        moment = self.at(after, office=office)
        if self.goal is None and moment > self.present:
            raise _Done
        self.t = moment
        self.story.steps.append(Step(moment, op, actor, arg, dict(extra)))
        return moment

    def side(self, op: str, actor: str, arg: str = "", *, at: datetime, **extra: Any) -> None:
        """A step off the main line (a note, an assessment): the cursor stays."""
        if self.goal is None and at > self.present:
            return
        self.story.steps.append(Step(at, op, actor, arg, dict(extra)))

    def fire(
        self, event: str, actor: str, *, after: float, office: bool = True, **extra: Any
    ) -> datetime:
        return self.main("fire", actor, event, after=after, office=office, **extra)

    # -- the plot ------------------------------------------------------------------------
    def write(self) -> Story:
        with suppress(_Done):
            self._plot()
        story = self.story
        story.steps.sort(key=lambda s: s.at)
        if self.goal is not None:
            # Steer the end of the story to just before the present.
            last = max(s.at for s in story.steps)
            shift = (self.present - timedelta(hours=self.rng.uniform(6, 240))) - last
            for s in story.steps:
                s.at += shift
            story.detected_on = (
                datetime.combine(story.detected_on, time(12), tzinfo=UTC) + shift
            ).date()
            if story.detected_on > story.steps[0].at.date():
                story.detected_on = story.steps[0].at.date()
        return story

    def _plot(self) -> None:
        rng, s = self.rng, self.story
        child = s.band != "adult"
        setup = COUNTRIES[s.country]
        s.referral_consent = not child
        registered = self.main("register", "registrar", after=rng.uniform(0.05, 1.5), office=False)
        self.side(
            "share",
            "registrar",
            setup.decider_agency,
            at=registered + timedelta(minutes=5),
            role="identification_authority",
        )
        if s.registrar_kind == "police":
            self.side(
                "share",
                "registrar",
                setup.support_agency,
                at=registered + timedelta(minutes=8),
                role="support_provider",
            )
        if child:
            self.side(
                "assess", "registrar", "guardian_request", at=registered + timedelta(minutes=20)
            )
            delay = _lognormal(rng, 1.2, 1.0)
            self.side("guardian", "support", at=_office(registered + timedelta(days=delay), rng))
        if rng.random() < 0.3:
            self.side(
                "consent", "support", "research_statistics", at=registered + timedelta(minutes=30)
            )
        self.stop("detected")
        self.fire("record_screening", "registrar", after=rng.uniform(0.05, 1.5))
        self.stop("presumed_victim")
        if not child and self.branch("decline", 0.06):
            self.fire("decline_formal_identification", "registrar", after=rng.uniform(0.0, 2.0))
            self.stop("declined_formal_identification")
            if self.branch("reenter", 0.35):
                self.main("consent", "support", "referral", after=rng.uniform(10, 80))
                self.fire("consent_to_referral", "registrar", after=0.01)
            else:
                if self.branch("close_declined", 0.4):
                    self.fire(
                        "close",
                        "support",
                        after=rng.uniform(20, 200),
                        closure="declined_further_support",
                    )
                return
        self._referral()
        self._decisions()

    def _referral(self) -> None:
        rng = self.rng
        late = rng.random() < 0.12
        delay = rng.uniform(1.2, 10) if late else _lognormal(rng, 0.3, 0.8)
        self.fire("refer", "registrar", after=min(delay, 14), office=False)
        self.stop("referred")
        self.fire("accept_referral", "decider", after=rng.uniform(0.02, 1.5))
        self.stop("reasonable_grounds_pending")

    def _decisions(self) -> None:
        rng = self.rng
        s = self.story
        child = s.band != "adult"
        rg_delay = _lognormal(rng, 3.0, 0.75)
        if self.branch("rg_negative", 0.12):
            self.fire(
                "propose_negative_decision", "decider", after=rg_delay, reason=_REASON_NEGATIVE
            )
            self.fire(
                "negative_reasonable_grounds",
                "decider2",
                after=rng.uniform(0.1, 3),
                reason=_REASON_NEGATIVE,
            )
            self.stop("not_identified")
            if not self.branch("reconsider_rg", 0.35):
                self.fire(
                    "close",
                    "support",
                    after=rng.uniform(31, 60),
                    closure="not_identified_no_reconsideration",
                )
                return
            self.fire(
                "request_reconsideration",
                "support",
                after=rng.uniform(3, 25),
                reason=_REASON_RECONSIDER,
            )
            self.stop("reconsideration")
            if self.branch("overturn_rg", 0.45):
                self.fire(
                    "overturn_to_recovery",
                    "decider",
                    after=_lognormal(rng, 35, 0.5),
                    reason=_REASON_POSITIVE,
                )
            else:
                self.fire(
                    "propose_negative_decision",
                    "decider",
                    after=_lognormal(rng, 35, 0.5),
                    reason=_REASON_NEGATIVE,
                )
                self.fire(
                    "uphold_negative",
                    "decider2",
                    after=rng.uniform(0.2, 5),
                    reason=_REASON_NEGATIVE,
                )
                self.fire(
                    "close",
                    "support",
                    after=rng.uniform(14, 60),
                    closure="not_identified_no_reconsideration",
                )
                return
        else:
            self.fire(
                "positive_reasonable_grounds", "decider", after=rg_delay, reason=_REASON_POSITIVE
            )
        self._reflection(child)

    def _reflection(self, child: bool) -> None:
        rng, s = self.rng, self.story
        start = self.t
        contact_hours = _lognormal(rng, 16, 0.9)
        self.side("note", "support", "contact", at=start + timedelta(hours=contact_hours))
        if rng.random() < 0.6:
            self.side(
                "note",
                "support",
                "assistance",
                at=start + timedelta(hours=contact_hours + rng.uniform(2, 200)),
            )
        follow = start + timedelta(hours=contact_hours)
        for _ in range(rng.randint(0, 3)):
            follow = _office(follow + timedelta(days=rng.uniform(10, 60)), rng)
            self.side("note", "support", rng.choice(("contact", "assistance")), at=follow)
        self._tracks(start)
        self.stop("recovery_reflection")
        if not child and self.branch("lost_contact", 0.07):
            self.fire("report_lost_contact", "support", after=rng.uniform(5, 25))
            self.stop("lost_contact")
            if self.branch("restore", 0.55):
                self.fire("contact_restored", "support", after=rng.uniform(7, 60))
            else:
                self.fire("close", "support", after=rng.uniform(60, 120), closure="lost_contact")
                return
        if child and self.branch("missing", 0.12):
            self.fire("report_missing_child", "support", after=rng.uniform(2, 40), office=False)
            self.stop("missing_child")
            if self.branch("found", 0.65):
                self.fire("contact_restored", "support", after=rng.uniform(1, 30))
            else:
                return
        if self.branch("early_return", 0.03):
            self._return(child)
            return
        self.fire("start_identification", "decider", after=rng.uniform(1, 20))
        self.stop("identification_pending")
        median = 380.0 if s.profile == "uk" else 110.0
        delay = _lognormal(rng, median, 0.7)
        gated = s.profile == "uk"
        if not gated and rng.random() < 0.06:
            delay = rng.uniform(12, 29)  # decided during the reflection period (allowed here)
        minimum = 31.0
        elapsed = (self.t - start).total_seconds() / 86400
        wait = max(delay - elapsed, (minimum - elapsed) if gated else 0.5)
        if self.branch("id_negative", 0.15):
            propose_at = max(wait - rng.uniform(1, 10), (minimum - elapsed) if gated else 0.5)
            self.fire(
                "propose_negative_decision", "decider", after=propose_at, reason=_REASON_NEGATIVE
            )
            self.fire(
                "negative_identification",
                "decider2",
                after=rng.uniform(0.5, 8),
                reason=_REASON_NEGATIVE,
            )
            if not self.branch("reconsider_id", 0.3):
                self.fire(
                    "close",
                    "support",
                    after=rng.uniform(31, 90),
                    closure="not_identified_no_reconsideration",
                )
                return
            requester = "guardian" if child else "support"
            self.fire(
                "request_reconsideration",
                requester,
                after=rng.uniform(2, 25),
                reason=_REASON_RECONSIDER,
            )
            if self.branch("overturn_id", 0.4):
                self.fire(
                    "overturn_to_identified",
                    "decider",
                    after=_lognormal(rng, 45, 0.5),
                    reason=_REASON_POSITIVE,
                )
            else:
                self.fire(
                    "propose_negative_decision",
                    "decider",
                    after=_lognormal(rng, 45, 0.5),
                    reason=_REASON_NEGATIVE,
                )
                self.fire(
                    "uphold_negative",
                    "decider2",
                    after=rng.uniform(0.2, 5),
                    reason=_REASON_NEGATIVE,
                )
                self.fire(
                    "close",
                    "support",
                    after=rng.uniform(14, 60),
                    closure="not_identified_no_reconsideration",
                )
                return
        else:
            self.fire("positive_identification", "decider", after=wait, reason=_REASON_POSITIVE)
        self.stop("identified")
        self._after_identification(child)

    def _after_identification(self, child: bool) -> None:
        rng = self.rng
        if self.branch("return", 0.08):
            self._return(child)
            return
        if not self.branch("long_term", 0.7):
            if rng.random() < 0.3:
                self.fire(
                    "close",
                    "support",
                    after=_lognormal(rng, 120, 0.6),
                    closure="declined_further_support",
                )
            return
        self.main("assess", "support", "support_plan", after=rng.uniform(3, 20))
        self.fire("start_long_term_support", "support", after=rng.uniform(0.5, 10))
        self.stop("long_term_support")
        if self.branch("return", 0.05):
            self._return(child)
            return
        if self.branch("close_after_support", 0.5):
            self.fire(
                "close", "support", after=_lognormal(rng, 240, 0.5), closure="support_completed"
            )
            self.stop("closed")

    def _return(self, child: bool) -> None:
        rng = self.rng
        s = self.story
        self.main("consent", "support", "return_preparation", after=rng.uniform(1, 10))
        self.fire("plan_return", "support", after=rng.uniform(0.2, 5))
        self.stop("return_planning")
        focal_agency = _USER_AGENCY[s.cast["focal"]]
        self.main(
            "share",
            "support",
            focal_agency,
            after=rng.uniform(0.5, 5),
            role="receiving_focal_point",
        )
        if rng.random() < 0.93:
            self.main("assess", "support", "pre_return_risk", after=rng.uniform(3, 20))
        if self.branch("cancel_return", 0.1):
            self.fire("cancel_return", "support", after=rng.uniform(5, 40))
            return
        if not any(st.op == "assess" and st.arg == "pre_return_risk" for st in s.steps):
            self.main("assess", "support", "pre_return_risk", after=rng.uniform(3, 20))
        self.main("assess", "support", "receiving_organisation", after=rng.uniform(2, 20))
        self.main("consent", "support", "data_sharing_transnational", after=rng.uniform(0.5, 5))
        if child:
            self.main("assess", "guardian", "best_interests", after=rng.uniform(2, 15))
            self.fire("cosign_return", "guardian", after=rng.uniform(0.5, 5))
        self.fire("confirm_return_handover", "focal", after=_lognormal(rng, 30, 0.6))
        returned = self.t
        self.stop("returned_handed_over")
        self.main("assess", "focal", "reintegration_plan", after=rng.uniform(3, 20))
        self.fire("start_reintegration_monitoring", "focal", after=rng.uniform(0.5, 10))
        for checkpoint, chance in ((30, 0.85), (90, 0.75), (180, 0.65), (365, 0.55)):
            if rng.random() < chance:
                self.side(
                    "note",
                    "focal",
                    "contact",
                    at=_office(returned + timedelta(days=checkpoint - rng.uniform(1, 20)), rng),
                )
        self.stop("reintegration_monitoring")
        if self.branch("re_traffic", 0.05):
            self.fire(
                "report_re_trafficking",
                "focal",
                after=rng.uniform(100, 400),
                reason=_REASON_RETRAFFICKED,
            )
            self._second_episode(child)
            return
        if self.branch("close_after_return", 0.6):
            last_follow_up = returned + timedelta(days=rng.uniform(370, 420))
            after = max((last_follow_up - self.t).total_seconds() / 86400, 1.0)
            self.fire("close", "focal", after=after, closure="returned_and_reintegrated")

    def _second_episode(self, child: bool) -> None:
        rng = self.rng
        s = self.story
        updater = "registrar" if s.registrar_kind in ("ngo", "police") else "decider"
        self.main("indicators", updater, after=rng.uniform(0.5, 5))
        if not child:
            self.main("consent", "support", "referral", after=rng.uniform(0.1, 3))
        self.fire("record_screening", "registrar", after=rng.uniform(0.1, 2))
        self._referral()
        self.fire(
            "positive_reasonable_grounds",
            "decider",
            after=_lognormal(rng, 3, 0.7),
            reason=_REASON_POSITIVE,
        )
        self.side(
            "note", "support", "contact", at=self.t + timedelta(hours=_lognormal(rng, 20, 0.8))
        )

    def _tracks(self, start: datetime) -> None:
        """Criminal proceedings and residence permits: parallel tracks, off the main line."""
        rng, s = self.rng, self.story
        police_actor = None
        if s.registrar_kind == "police":
            police_actor = "registrar"
        elif s.profile != "uk":
            police_actor = "decider"
        if police_actor is not None and rng.random() < 0.3:
            moment = start + timedelta(days=rng.uniform(5, 60))
            for event in ("open_investigation", "charge", "start_trial", "record_outcome"):
                self.side(
                    "track", police_actor, event, at=_office(moment, rng), track="proceedings"
                )
                if rng.random() < 0.45:
                    break
                moment += timedelta(days=_lognormal(rng, 120, 0.5))
        foreign = s.person.nationality != s.country
        if s.profile in ("coe_default", "pt") and foreign and rng.random() < 0.4:
            moment = _office(start + timedelta(days=rng.uniform(5, 30)), rng)
            self.side("track", "support", "apply", at=moment, track="residence_permit")
            granted = _office(moment + timedelta(days=rng.uniform(20, 90)), rng)
            self.side(
                "track",
                "support",
                "grant",
                at=granted,
                track="residence_permit",
                valid_from=granted.date().isoformat(),
                valid_until=(granted.date() + timedelta(days=365)).isoformat(),
            )


_REASON_POSITIVE = "Credible account; indicators consistent with trafficking (demo text)."
_REASON_NEGATIVE = "Insufficient indications at this stage (demo text)."
_REASON_RECONSIDER = "New evidence from the support provider (demo text)."
_REASON_RETRAFFICKED = "Reported re-recruited by the same network (demo text)."


def story_seeds(count: int, seed: int) -> list[int]:
    """The per-story seeds: story ``i`` is the same whichever process writes it."""
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(count)]


def write_story(index: int, story_seed: int, present: datetime) -> Story:
    goal = GOAL_STAGES[index] if index < len(GOAL_STAGES) else None
    return _Plot(random.Random(story_seed), present, index, goal).write()


def write_stories(count: int, seed: int, present: datetime) -> list[Story]:
    """``count`` stories; the first ones end in each workflow stage, the rest are free."""
    return [write_story(i, s, present) for i, s in enumerate(story_seeds(count, seed))]


# =========================================================================== directory rows


@dataclass
class Directory:
    agencies: dict[str, Agency]
    users: dict[str, User]

    def actor(self, username: str) -> Actor:
        user = self.users[username]
        return actor_for(user, self.agencies[_USER_AGENCY[username]])


@dataclass(frozen=True)
class DirectoryIds:
    """What the bulk writer needs of the directory, as plain values (crosses processes)."""

    agencies: dict[str, tuple[uuid.UUID, str | None]]  # key -> (id, region)
    users: dict[str, uuid.UUID]  # username -> id
    actors: dict[str, Actor]  # username -> actor

    @classmethod
    def of(cls, directory: Directory) -> DirectoryIds:
        return cls(
            agencies={k: (a.id, a.region) for k, a in directory.agencies.items()},
            users={name: u.id for name, u in directory.users.items()},
            actors={name: directory.actor(name) for name in directory.users},
        )


def demo_loaded(session: Session) -> bool:
    found = session.scalar(
        select(func.count()).select_from(Agency).where(Agency.name == _MARKER_AGENCY)
    )
    return bool(found)


def create_directory(session: Session, ctx: AppContext, when: datetime) -> Directory:
    """Demo agencies and one user per role (and a few more), sharing one password hash."""
    password_hash = hash_password(DEMO_PASSWORD)  # hashed once, reused for every demo user
    agencies: dict[str, Agency] = {}
    for agency_spec in AGENCIES:
        agency = Agency(
            name=agency_spec.name,
            type=agency_spec.type,
            country=agency_spec.country,
            region=agency_spec.region,
        )
        agency.created_at = agency.updated_at = when
        agencies[agency_spec.key] = agency
        session.add(agency)
    session.flush()
    users: dict[str, User] = {}
    for spec in USERS:
        role = ctx.policy.role(spec.role)
        agency = agencies[spec.agency]
        if agency.type not in role.agency_types:
            raise ValueError(
                f"demo user {spec.username}: role {spec.role} cannot be in a {agency.type}"
            )
        user = User(
            username=spec.username,
            display_name=spec.display_name,
            agency_id=agency.id,
            role=spec.role,
            password_hash=password_hash,
        )
        user.created_at = user.updated_at = user.sessions_valid_after = when
        users[spec.username] = user
        session.add(user)
    session.flush()
    return Directory(agencies=agencies, users=users)


# =========================================================================== small path


def _registration(story: Story, at: datetime) -> RegistrationIn:
    p = story.person
    victim: dict[str, Any] = {
        "given_name": p.given_name,
        "family_name": p.family_name,
        "sex": p.sex,
        "nationalities": [p.nationality],
        "languages": list(p.languages),
        "interpreter_needed": p.nationality not in ("GB", "FR", "PT")
        and story.country != p.nationality,
        "current_address": f"{p.address} (demo)",
        "accommodation": p.accommodation,
        "age_uncertain": p.age_uncertain,
        "unaccompanied_minor": story.band != "adult" and p.nationality != story.country,
    }
    if p.date_of_birth is not None:
        victim["date_of_birth"] = p.date_of_birth.isoformat()
    if p.estimated_age is not None:
        victim["estimated_age"] = p.estimated_age
    if p.phone:
        victim["phone"] = p.phone
    if p.passport:
        victim["documents"] = [
            {"type": "passport", "number": p.passport, "issuing_country": p.nationality}
        ]
    case: dict[str, Any] = {
        "exploitation_forms": story.forms,
        "exploitation_means": story.means,
        "countries_of_exploitation": [story.country],
        "indicators": story.indicators,
        "detection_place": f"{_SHELTER_AREA[story.country]} (demo)",
        "statement_summary": "Synthetic statement for demonstration; no real person (demo).",
    }
    if story.labour_sector:
        case["labour_sector"] = story.labour_sector
    consents = []
    if story.referral_consent:
        consents.append(
            {
                "purpose": "referral",
                "scope": ["identity", "exploitation", "detection"],
                "given_on": at.date().isoformat(),
            }
        )
    return RegistrationIn.model_validate(
        {
            "victim": victim,
            "case": case,
            "detection": {
                "detected_on": story.detected_on.isoformat(),
                "detecting_org_type": story.detecting_org_type,
                "country_profile": story.profile,
            },
            "consents": consents,
        }
    )


_SHELTER_AREA = {
    "GB": "East London",
    "FR": "Paris 18e",
    "PT": "Lisboa, Almada",
    "NE": "Niamey, Plateau",
}
_CONSENT_SCOPES = {
    "referral": ["identity", "exploitation", "detection"],
    "research_statistics": ["exploitation"],
    "return_preparation": ["identity", "documents", "needs"],
    "data_sharing_transnational": ["identity", "documents", "needs"],
}


def _run_story_with_services(
    session: Session, ctx: AppContext, directory: Directory, story: Story
) -> tuple[Case | None, int]:
    """Play a story through the services. Returns the case and how many steps were refused."""
    case: Case | None = None
    refused = 0
    for step in story.steps:
        with backdated(step.at):
            actor = directory.actor(story.cast[step.actor])
            try:
                if step.op == "register":
                    case = cases_service.register(
                        session, ctx, actor, _registration(story, step.at)
                    )
                    continue
                assert case is not None, "a story starts with its registration"
                _service_step(session, ctx, directory, actor, case, story, step)
            except DomainError:
                refused += 1
                break
    return case, refused


def _service_step(
    session: Session,
    ctx: AppContext,
    directory: Directory,
    actor: Actor,
    case: Case,
    story: Story,
    step: Step,
) -> None:
    op, arg = step.op, step.arg
    if op == "share":
        cases_service.refer(
            session,
            ctx,
            actor,
            case.id,
            ReferralIn(
                agency_id=directory.agencies[arg].id,
                access_role=step.extra["role"],
                purpose="Demo referral for identification, support or return",
            ),
        )
    elif op == "consent":
        cases_service.add_consent(
            session,
            ctx,
            actor,
            case.id,
            ConsentIn(purpose=arg, scope=_CONSENT_SCOPES[arg], given_on=step.at.date()),
        )
    elif op == "assess":
        tx.record_assessment(session, ctx, actor, case.id, arg, _ASSESSMENT_TEXT[arg], case.version)
    elif op == "guardian":
        guardian = directory.users[story.cast["guardian"]]
        tx.assign_guardian(session, ctx, actor, case.id, guardian.id, case.version)
    elif op == "note":
        cases_service.add_note(session, ctx, actor, case.id, NoteIn(kind=arg, body=_NOTE_TEXT[arg]))
    elif op == "indicators":
        cases_service.update_case(
            session,
            ctx,
            actor,
            case.id,
            CasePatch(indicators=story.indicators),
            case.version,
        )
    elif op == "track":
        valid_from = step.extra.get("valid_from")
        valid_until = step.extra.get("valid_until")
        tx.track_event(
            session,
            ctx,
            actor,
            case.id,
            track=step.extra["track"],
            event=arg,
            expected_version=case.version,
            valid_from=date.fromisoformat(valid_from) if valid_from else None,
            valid_until=date.fromisoformat(valid_until) if valid_until else None,
        )
    elif op == "fire":
        tx.transition(
            session,
            ctx,
            actor,
            case.id,
            tx.TransitionInput(
                event=Event(arg),
                reason=step.extra.get("reason"),
                closure_reason=step.extra.get("closure"),
            ),
            case.version,
            now=step.at,
        )
    else:  # pragma: no cover - the plot writes only the ops above
        raise ValueError(f"unknown demo step {op}")


_ASSESSMENT_TEXT = {
    "guardian_request": "Guardian requested from the child protection service (demo text).",
    "best_interests": "Best-interests assessment: return supported by family tracing (demo text).",
    "support_plan": "Support and safety plan agreed with the person (demo text).",
    "pre_return_risk": "Joint pre-return risk assessment with the receiving focal point (demo text).",
    "receiving_organisation": "Receiving organisation confirmed in writing (demo text).",
    "reintegration_plan": "Reintegration plan: housing, training, counselling (demo text).",
}
_NOTE_TEXT = {
    "contact": "Met the person; needs reviewed (demo text).",
    "assistance": "Accommodation, medical check and legal advice arranged (demo text).",
}


# =========================================================================== bulk path

_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_BULK_SEALED_VICTIM = (
    "given_name",
    "family_name",
    "date_of_birth",
    "estimated_age",
    "age_uncertain",
    "sex",
    "nationalities",
    "languages",
    "documents",
)
_BULK_SEALED_CASE = (
    "exploitation_means",
    "labour_sector",
    "countries_of_exploitation",
    "detection_place",
    "indicators",
)
_ID_BITS = random.Random(os.urandom(32))


def _fast_id() -> uuid.UUID:
    """A UUIDv7 (48-bit millisecond time, 74 random bits) for the hundreds of thousands of
    rows of a bulk load: several times cheaper than ``app.db.base.new_id``. The random bits
    come from a generator seeded from the OS once; ids are unique, not secrets."""
    rand = _ID_BITS.getrandbits(74)
    value = (
        (time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)


@dataclass(slots=True)
class _Ev:
    """What ``canonical_payload`` reads of an event, ids already rendered as text.

    ``canonical_payload`` writes ``str(id)`` for each id, so handing it the text form gives
    the same bytes (and the same hash) for a fraction of the cost; the row inserted keeps
    the UUIDs.
    """

    chain_key: str
    seq: int
    occurred_at: datetime
    action: str
    actor_user_id: str | None
    actor_role: str | None
    actor_agency_id: str | None
    case_id: str | None
    victim_id: str | None
    entity_type: str | None
    entity_id: str | None
    fields: list[str]
    details: dict[str, Any]
    row: dict[str, Any]
    request_id: str | None = None


def _blank(table: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        row[column.name] = default.arg if default is not None and default.is_scalar else None
    return row


class _BulkWriter:
    """Writes stories as rows, deciding each transition with the pure workflow machine."""

    TABLES: tuple[Table, ...] = tuple(
        cast(Table, model.__table__)
        for model in (
            Victim,
            DataKey,
            BlindIndexEntry,
            Case,
            CaseParticipant,
            Consent,
            CaseNote,
            AuditEvent,
            AuditChainHead,
        )
    )

    def __init__(
        self, session: Session | None, ctx: AppContext, ids: DirectoryIds, seed: int
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.ids = ids
        self.salt = random.Random(seed ^ 0x5EED).getrandbits(40)
        self.rows: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.blanks = {table: _blank(table) for table in self.TABLES}
        self.actors = ids.actors
        from app.cases.models import OutboxMessage

        self.outbox_table = cast(Table, OutboxMessage.__table__)
        self.blanks[self.outbox_table] = _blank(self.outbox_table)
        self.events = 0
        self.copier: BackgroundCopier | None = None
        self._actor_text: dict[uuid.UUID | None, tuple[str | None, str | None]] = {}
        # The data-key cache lives in a session's ``info``; a worker process has no session.
        self.key_holder: Any = session if session is not None else SimpleNamespace(info={})

    @property
    def tables(self) -> tuple[Table, ...]:
        return (*self.TABLES, self.outbox_table)

    def close(self) -> None:
        """Wait for the last batches to be written (and re-raise a writer's error)."""
        self.flush()
        if self.copier is not None:
            self.copier.close()

    # -- rows ----------------------------------------------------------------------------
    def row(self, table: Any, **values: Any) -> dict[str, Any]:
        row = dict(self.blanks[table]) if table in self.blanks else {}
        row.update(values)
        self.rows[table].append(row)
        return row

    def actor_text(self, actor: Actor) -> tuple[str | None, str | None]:
        key = actor.user_id
        found = self._actor_text.get(key)
        if found is None:
            found = (
                str(actor.user_id) if actor.user_id else None,
                str(actor.agency_id) if actor.agency_id else None,
            )
            self._actor_text[key] = found
        return found

    def reference(self, index: int) -> str:
        """Unique by construction: an odd multiplier permutes the 40-bit space."""
        value = (index * 0x9E3779B97F + self.salt) & ((1 << 40) - 1)
        body = "".join(_REFERENCE_ALPHABET[(value >> (5 * i)) & 31] for i in range(7, -1, -1))
        return f"PSG-{body[:4]}-{body[4:]}"

    def forget_keys(self) -> None:
        from app.crypto import service as crypto_service

        self.key_holder.info.pop(crypto_service._CACHE, None)

    def flush(self) -> None:
        """Hand what has been built to the copier, parents first; forget the key cache."""
        assert self.session is not None
        if self.copier is None:
            self.copier = BackgroundCopier(self.session, self.tables)
        for table in self.tables:
            rows = self.rows.pop(table, [])
            if rows:
                self.copier.put(table, rows)
        self.forget_keys()

    def take_tuples(self) -> dict[str, list[tuple[Any, ...]]]:
        """The rows built so far as COPY-ready tuples (worker processes): ids as text, JSON
        serialised, so they pickle cheaply; then forget them."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in self.tables:
            rows = self.rows.pop(table, [])
            columns = [c.name for c in table.columns]
            as_json = {c.name for c in table.columns if isinstance(c.type, JSON)}
            out[table.name] = [
                tuple(
                    json.dumps(v)
                    if c in as_json and v is not None
                    else str(v)
                    if isinstance(v, uuid.UUID)
                    else v
                    for c, v in ((c, row[c]) for c in columns)
                )
                for row in rows
            ]
        self.forget_keys()
        return out

    # -- one story -----------------------------------------------------------------------
    def add(self, story: Story) -> None:
        _BulkCase(self, story).play()


# -- worker processes of the bulk path ----------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_start(settings: Any, ids: DirectoryIds, present: datetime, seed: int) -> None:
    from app.context import build_context

    ctx = build_context(settings)
    _WORKER.update(writer=_BulkWriter(None, ctx, ids, seed), present=present)


def _worker_chunk(
    task: tuple[int, list[int]],
) -> tuple[int, dict[str, list[tuple[Any, ...]]], Counter[str]]:
    start, seeds = task
    writer: _BulkWriter = _WORKER["writer"]
    stages: Counter[str] = Counter()
    before = writer.events
    for offset, story_seed in enumerate(seeds):
        bulk_case = _BulkCase(writer, write_story(start + offset, story_seed, _WORKER["present"]))
        bulk_case.play()
        stages[bulk_case.case["stage"]] += 1
    return writer.events - before, writer.take_tuples(), stages


class _BulkCase:
    def __init__(self, writer: _BulkWriter, story: Story) -> None:
        self.w = writer
        self.story = story
        self.profile = writer.ctx.profile(story.profile)
        self.events: list[_Ev] = []
        self.consents: set[str] = set()
        self.case: dict[str, Any] = {}
        self.codec: Any = None
        self.chain_key = self.case_text = self.victim_text = ""
        # Every transition of the steered stories and of one story in VALIDATE_EVERY is
        # decided by the workflow machine and checked against what this writer persists.
        self.validate = story.index < len(GOAL_STAGES) or story.index % VALIDATE_EVERY == 0

    # -- helpers -------------------------------------------------------------------------
    def actor(self, key: str) -> Actor:
        return self.w.actors[self.story.cast[key]]

    def audit(
        self,
        actor: Actor,
        action: str,
        at: datetime,
        *,
        victim: bool = False,
        entity_type: str | None = None,
        entity_id: uuid.UUID | None = None,
        fields: Sequence[str] = (),
        details: dict[str, Any] | None = None,
    ) -> None:
        case_id = self.case["id"]
        victim_id = self.case["victim_id"] if victim else None
        field_list = sorted(set(fields)) if fields else []
        detail_dict = dict(details or {})
        seq = len(self.events) + 1
        row = self.w.row(
            AuditEvent.__table__,
            id=_fast_id(),
            chain_key=self.chain_key,
            seq=seq,
            occurred_at=at,
            action=action,
            actor_user_id=actor.user_id,
            actor_role=actor.role,
            actor_agency_id=actor.agency_id,
            case_id=case_id,
            victim_id=victim_id,
            entity_type=entity_type,
            entity_id=entity_id,
            fields=field_list,
            details=detail_dict,
            request_id=None,
        )
        user_text, agency_text = self.w.actor_text(actor)
        self.events.append(
            _Ev(
                chain_key=self.chain_key,
                seq=seq,
                occurred_at=at,
                action=action,
                actor_user_id=user_text,
                actor_role=actor.role,
                actor_agency_id=agency_text,
                case_id=self.case_text,
                victim_id=self.victim_text if victim else None,
                entity_type=entity_type,
                entity_id=str(entity_id) if entity_id else None,
                fields=field_list,
                details=detail_dict,
                row=row,
            )
        )

    def seal(self, table: str, column: str, row_id: uuid.UUID, value: Any) -> bytes | None:
        blob: bytes | None = self.codec.seal(table, column, row_id, value)
        return blob

    def note(self, actor: Actor, kind: str, at: datetime, body: str) -> uuid.UUID:
        note_id = _fast_id()
        self.w.row(
            CaseNote.__table__,
            id=note_id,
            case_id=self.case["id"],
            author_id=actor.user_id,
            kind=kind,
            created_at=at,
            body=self.seal("case_notes", "body", note_id, body),
        )
        return note_id

    # -- the story -----------------------------------------------------------------------
    def play(self) -> None:
        for step in self.story.steps:
            actor = self.actor(step.actor)
            if step.op == "register":
                self.register(actor, step.at)
            elif step.op == "share":
                self.share(actor, step)
            elif step.op == "consent":
                self.consent(actor, step.arg, step.at)
            elif step.op == "assess":
                self.assess(actor, step.arg, step.at)
            elif step.op == "guardian":
                self.guardian(actor, step.at)
            elif step.op == "note":
                self.add_note(actor, step.arg, step.at)
            elif step.op == "indicators":
                self.indicators(actor, step.at)
            elif step.op == "track":
                self.track(actor, step)
            elif step.op == "fire":
                self.fire(actor, step)
            else:  # pragma: no cover
                raise ValueError(f"unknown demo step {step.op}")
        self.finish()

    def register(self, actor: Actor, at: datetime) -> None:
        story, p = self.story, self.story.person
        victim_id = _fast_id()
        codec, data_key = self.w.ctx.keys.new_data_key(self.w.key_holder, victim_id)
        self.codec = codec
        victim_values: dict[str, Any] = {
            "given_name": p.given_name,
            "family_name": p.family_name,
            "date_of_birth": p.date_of_birth.isoformat() if p.date_of_birth else None,
            "estimated_age": p.estimated_age,
            "age_uncertain": p.age_uncertain,
            "sex": p.sex,
            "nationalities": [p.nationality],
            "languages": list(p.languages),
            "documents": [
                {"type": "passport", "number": p.passport, "issuing_country": p.nationality}
            ]
            if p.passport
            else [],
        }
        victim_row = self.w.row(
            Victim.__table__,
            id=victim_id,
            registered_by_agency_id=actor.agency_id,
            created_at=at,
            updated_at=at,
        )
        written = []
        for name in _BULK_SEALED_VICTIM:
            value = victim_values[name]
            victim_row[name] = codec.seal("victims", name, victim_id, value)
            if value not in (None, [], False):
                written.append(name)
        self.w.row(
            DataKey.__table__,
            id=data_key.id,
            victim_id=victim_id,
            kek_kid=data_key.kek_kid,
            wrapped_key=data_key.wrapped_key,
            created_at=at,
        )
        digests = self.w.ctx.keys.indexer.identity_digests(
            given_name=p.given_name,
            family_name=p.family_name,
            date_of_birth=p.date_of_birth,
            documents=[(p.nationality, p.passport)] if p.passport else [],
        )
        for index_name, values in digests.items():
            for digest in values:
                self.w.row(
                    BlindIndexEntry.__table__,
                    id=_fast_id(),
                    victim_id=victim_id,
                    agency_id=actor.agency_id,
                    index_name=index_name,
                    digest=digest,
                )
        _, region = self.w.ids.agencies[_USER_AGENCY[self.story.cast["registrar"]]]
        case_id = _fast_id()
        self.chain_key = f"case:{case_id}"
        self.case_text = str(case_id)
        self.victim_text = str(victim_id)
        self.case = self.w.row(
            Case.__table__,
            id=case_id,
            created_at=at,
            updated_at=at,
            reference=self.w.reference(self.story.index),
            victim_id=victim_id,
            owning_agency_id=actor.agency_id,
            country_profile=story.profile,
            stage="detected",
            stage_entered_at=at,
            version=1,
            age_band=story.band,
            sex=p.sex,
            nationality=p.nationality,
            exploitation_forms=list(story.forms),
            detecting_org_type=story.detecting_org_type,
            detected_on=story.detected_on,
            region=region,
            indicator_count=len(set(story.indicators)),
            episode_started_at=at,
            last_contact_at=at,
        )
        case_values: dict[str, Any] = {
            "exploitation_means": list(story.means),
            "labour_sector": story.labour_sector,
            "countries_of_exploitation": [story.country],
            "detection_place": f"{_SHELTER_AREA[story.country]} (demo)",
            "indicators": list(story.indicators),
        }
        for name in _BULK_SEALED_CASE:
            value = case_values[name]
            self.case[name] = codec.seal("cases", name, case_id, value)
            if value not in (None, [], False):
                written.append(name)
        self.audit(
            actor,
            "case_registered",
            at,
            victim=True,
            entity_type="case",
            entity_id=case_id,
            fields=written,
            details={"stage": "detected", "country_profile": story.profile, "age_band": story.band},
        )
        if story.referral_consent:
            self.consent(actor, "referral", at)

    def share(self, actor: Actor, step: Step) -> None:
        agency_id, _ = self.w.ids.agencies[step.arg]
        share_id = _fast_id()
        self.w.row(
            CaseParticipant.__table__,
            id=share_id,
            case_id=self.case["id"],
            agency_id=agency_id,
            access_role=step.extra["role"],
            purpose="Demo referral for identification, support or return",
            granted_by=actor.user_id,
            granted_at=step.at,
        )
        self.audit(
            actor,
            "case_shared",
            step.at,
            victim=True,
            entity_type="case_participant",
            entity_id=share_id,
            details={"agency_id": str(agency_id), "access_role": step.extra["role"]},
        )

    def consent(self, actor: Actor, purpose: str, at: datetime) -> None:
        consent_id = _fast_id()
        scope = list(dict.fromkeys(_CONSENT_SCOPES[purpose]))
        self.w.row(
            Consent.__table__,
            id=consent_id,
            case_id=self.case["id"],
            purpose=purpose,
            scope=scope,
            given_on=at.date(),
            recorded_by=actor.user_id,
            created_at=at,
        )
        self.consents.add(purpose)
        self.audit(
            actor,
            "consent_recorded",
            at,
            entity_type="consent",
            entity_id=consent_id,
            details={"purpose": purpose, "scope": scope},
        )

    def assess(self, actor: Actor, kind: str, at: datetime) -> None:
        column = tx.ASSESSMENTS[kind][0]
        note_id = self.note(actor, kind, at, _ASSESSMENT_TEXT[kind])
        self.case[column] = at
        self.case["version"] += 1
        self.audit(
            actor,
            "assessment_recorded",
            at,
            entity_type="case_note",
            entity_id=note_id,
            fields=["body"],
            details={"kind": kind, "version": self.case["version"]},
        )

    def guardian(self, actor: Actor, at: datetime) -> None:
        guardian_id = self.w.ids.users[self.story.cast["guardian"]]
        self.case["guardian_user_id"] = guardian_id
        self.case["guardian_assigned_at"] = at
        self.case["guardian_requested_at"] = self.case["guardian_requested_at"] or at
        self.case["version"] += 1
        self.audit(
            actor,
            "guardian_assigned",
            at,
            entity_type="user",
            entity_id=guardian_id,
            details={"version": self.case["version"]},
        )

    def add_note(self, actor: Actor, kind: str, at: datetime) -> None:
        note_id = self.note(actor, kind, at, _NOTE_TEXT[kind])
        if kind in ("assistance", "contact"):
            self.case["last_contact_at"] = at
            if (
                self.case["reasonable_grounds_at"] is not None
                and self.case["first_support_contact_at"] is None
            ):
                self.case["first_support_contact_at"] = at
        self.audit(
            actor,
            "assistance_recorded" if kind == "assistance" else "note_added",
            at,
            victim=True,
            entity_type="case_note",
            entity_id=note_id,
            fields=["body"],
            details={"kind": kind},
        )

    def indicators(self, actor: Actor, at: datetime) -> None:
        self.case["indicators"] = self.seal(
            "cases", "indicators", self.case["id"], list(self.story.indicators)
        )
        self.case["indicator_count"] = len(set(self.story.indicators))
        self.case["version"] += 1
        self.audit(
            actor,
            "case_updated",
            at,
            victim=True,
            entity_type="case",
            entity_id=self.case["id"],
            fields=["indicators"],
            details={"version": self.case["version"]},
        )

    def track(self, actor: Actor, step: Step) -> None:
        from app.cases.workflow import (
            PERMIT_TRANSITIONS,
            PROCEEDINGS_TRANSITIONS,
            PermitEvent,
            ProceedingsEvent,
        )

        track = step.extra["track"]
        if track == "residence_permit":
            old = self.case["residence_permit_status"]
            new = PERMIT_TRANSITIONS[(PermitStatus(old), PermitEvent(step.arg))]
            if new == PermitStatus.granted:
                self.case["residence_permit_valid_from"] = date.fromisoformat(
                    step.extra["valid_from"]
                )
                self.case["residence_permit_valid_until"] = date.fromisoformat(
                    step.extra["valid_until"]
                )
            self.case["residence_permit_status"] = str(new)
        else:
            old = self.case["proceedings_status"]
            self.case["proceedings_status"] = str(
                PROCEEDINGS_TRANSITIONS[(ProceedingsStatus(old), ProceedingsEvent(step.arg))]
            )
        self.case["version"] += 1
        self.audit(
            actor,
            f"{track}_event",
            step.at,
            details={"event": step.arg, "from": old, "version": self.case["version"]},
        )

    def facts(self, actor: Actor, event: Event, at: datetime, closure: str | None) -> CaseFacts:
        c = self.case
        stage = Stage(c["stage"])
        proposed_in = c["negative_decision_proposed_in"]
        return CaseFacts(
            now=at,
            age=18 if c["age_band"] == "adult" else None,
            age_uncertain=c["age_band"] != "adult",
            indicators_recorded=c["indicator_count"],
            referral_consent_recorded="referral" in self.consents,
            guardian_requested=c["guardian_requested_at"] is not None,
            guardian_assigned=c["guardian_user_id"] is not None,
            best_interests_assessment_done=c["best_interests_assessed_at"] is not None,
            actor_is_competent_authority=tx.competent_for(
                self.profile, actor.agency_type, stage, event
            ),
            reasonable_grounds_at=c["reasonable_grounds_at"],
            min_reflection_days=self.profile.min_reflection_days,
            identification_gated_by_reflection=self.profile.identification_gated_by_reflection,
            not_identified_at=c["not_identified_at"],
            reconsideration_window_days=self.profile.reconsideration_window_days,
            negative_decision_proposed_by=c["negative_decision_proposed_by"],
            negative_decision_proposed_in=Stage(proposed_in) if proposed_in else None,
            support_plan_recorded=c["support_plan_at"] is not None,
            return_consent_recorded="return_preparation" in self.consents,
            pre_return_risk_assessment_done=c["pre_return_risk_assessed_at"] is not None,
            receiving_organisation_confirmed=c["receiving_organisation_confirmed_at"] is not None,
            data_transfer_consent_recorded="data_sharing_transnational" in self.consents,
            guardian_cosigned_return=c["guardian_cosigned_at"] is not None,
            reintegration_plan_recorded=c["reintegration_plan_at"] is not None,
            stage_before_return=Stage(c["stage_before_return"])
            if c["stage_before_return"]
            else None,
            previous_stage=Stage(c["previous_stage"]) if c["previous_stage"] else None,
            closure_reason=closure,
        )

    def fire(self, actor: Actor, step: Step) -> None:
        """What ``app.cases.transitions.transition`` persists for an allowed event.

        The graph (target, effects, default legal basis) comes from the workflow table; on
        sampled stories ``decide`` must allow the event and ``facts_after`` must agree with
        the effects applied here, or the load stops (a story the services would refuse).
        """
        c = self.case
        at = step.at
        event = Event(step.arg)
        closure = step.extra.get("closure")
        reason = step.extra.get("reason")
        old = Stage(c["stage"])
        rule = TRANSITIONS.get((old, event))
        if rule is None or Role(actor.role) not in rule.roles:
            raise RuntimeError(f"demo story {self.story.index}: '{event}' impossible in '{old}'")
        if isinstance(rule.target, Stage):
            new = rule.target
        else:
            resumed = (
                c["previous_stage"] if rule.target is RESUME_PREVIOUS else c["stage_before_return"]
            )
            new = Stage(resumed)
        basis = rule.legal_basis or None
        checked: CaseFacts | None = None
        if self.validate:
            facts = self.facts(actor, event, at, closure)
            assert actor.user_id is not None
            request = TransitionRequest(event, actor.user_id, Role(actor.role), reason=reason)
            outcome = decide(old, request, facts)
            if not isinstance(outcome, Allowed):
                raise RuntimeError(
                    f"demo story {self.story.index}: '{event}' refused in '{old}' ({outcome.code})"
                )
            new, basis = outcome.target, outcome.legal_basis
            checked = facts_after(old, request, facts, outcome)
        effects = rule.effects
        # workflow.facts_after, as transitions._persist stores it
        if new != old:
            c["negative_decision_proposed_by"] = c["negative_decision_proposed_in"] = None
        if Effect.start_reflection_clock in effects:
            c["reasonable_grounds_at"] = at
        if Effect.record_negative_proposal in effects:
            c["negative_decision_proposed_by"] = actor.user_id
            c["negative_decision_proposed_in"] = str(old)
        if Effect.record_negative_decision in effects:
            c["not_identified_at"] = at
        if Effect.remember_previous_stage in effects and old not in _OUT_OF_CONTACT:
            c["previous_stage"] = str(old)
        if Effect.remember_stage_before_return in effects:
            c["stage_before_return"] = str(old)
        if Effect.record_guardian_cosign in effects and c["guardian_cosigned_at"] is None:
            c["guardian_cosigned_at"] = at
        if Effect.start_new_episode in effects:
            c["reasonable_grounds_at"] = c["not_identified_at"] = None
            c["negative_decision_proposed_by"] = c["negative_decision_proposed_in"] = None
            c["stage_before_return"] = c["previous_stage"] = None
            c["episode_started_at"] = at
            c["indicator_count"] = 0
            for column in _EPISODE_COLUMNS:
                c[column] = None
            c["detected_on"] = at.date()
            self.consents.clear()
        if checked is not None:
            self.compare(checked)
        # transitions._milestones_after
        if new == Stage.referred and c["referred_at"] is None:
            c["referred_at"] = at
        if event in (Event.positive_identification, Event.overturn_to_identified):
            c["identification_decided_at"], c["identification_positive"] = at, True
        if event in (
            Event.negative_identification,
            Event.uphold_negative,
            Event.negative_reasonable_grounds,
        ):
            c["identification_decided_at"], c["identification_positive"] = at, False
        if new == Stage.returned_handed_over:
            c["returned_at"] = at
        if new == Stage.closed:
            c["closed_at"] = at
            c["closure_reason"] = closure
        if old in _OUT_OF_CONTACT and new not in _OUT_OF_CONTACT:
            c["last_contact_at"] = at
        if new != old:
            c["stage"] = str(new)
            c["stage_entered_at"] = at
        c["version"] += 1
        reason_note_id = str(self.note(actor, "decision_reason", at, reason)) if reason else None
        if Effect.escalate_missing_child in effects:
            self.w.row(
                self.w.outbox_table,
                id=_fast_id(),
                topic="alert.missing_child",
                payload={
                    "case_id": self.case_text,
                    "reference": c["reference"],
                    "agency_id": str(c["owning_agency_id"]),
                },
                created_at=at,
            )
        self.audit(
            actor,
            "transition",
            at,
            entity_type="case",
            entity_id=c["id"],
            details={
                "event": str(event),
                "from": str(old),
                "to": str(new),
                "version": c["version"],
                "decision": rule.decision,
                "legal_basis": (basis or "")[:200],
                "reason_note_id": reason_note_id,
                "closure_reason": closure,
                "agency_type": actor.agency_type,
            },
        )

    def compare(self, after: CaseFacts) -> None:
        c = self.case
        expected = {
            "reasonable_grounds_at": after.reasonable_grounds_at,
            "not_identified_at": after.not_identified_at,
            "negative_decision_proposed_by": after.negative_decision_proposed_by,
            "negative_decision_proposed_in": str(after.negative_decision_proposed_in)
            if after.negative_decision_proposed_in
            else None,
            "stage_before_return": str(after.stage_before_return)
            if after.stage_before_return
            else None,
            "previous_stage": str(after.previous_stage) if after.previous_stage else None,
        }
        for column, value in expected.items():
            if c[column] != value:
                raise RuntimeError(
                    f"demo story {self.story.index}: bulk writer disagrees on {column}"
                )
        if after.guardian_cosigned_return != (c["guardian_cosigned_at"] is not None):
            raise RuntimeError(f"demo story {self.story.index}: bulk writer disagrees on cosign")

    def finish(self) -> None:
        c = self.case
        last = self.events[-1].occurred_at
        # next_due_at as transitions.refresh_next_due leaves it after the last step; the
        # deadline code reads plain attributes only, so a light stand-in does.
        stand_in = SimpleNamespace(**{k: v for k, v in c.items() if k in _CASE_ATTRS})
        tx.refresh_next_due(self.w.ctx, cast(Case, stand_in), last)
        c["next_due_at"] = stand_in.next_due_at
        c["updated_at"] = last
        prev = GENESIS_HASH
        for ev in self.events:
            ev.row["prev_hash"] = prev
            prev = chain_hash(prev, cast(AuditEvent, ev))
            ev.row["hash"] = prev
        self.w.row(
            AuditChainHead.__table__,
            chain_key=self.chain_key,
            seq=len(self.events),
            hash=prev,
        )
        self.w.events += len(self.events)


VALIDATE_EVERY = 10
_OUT_OF_CONTACT = frozenset({Stage.lost_contact, Stage.missing_child})
_EPISODE_COLUMNS = (
    "support_plan_at",
    "pre_return_risk_assessed_at",
    "receiving_organisation_confirmed_at",
    "reintegration_plan_at",
    "guardian_cosigned_at",
    "referred_at",
    "first_support_contact_at",
    "identification_decided_at",
    "identification_positive",
    "returned_at",
)
_CASE_ATTRS = frozenset(
    (
        "id",
        "created_at",
        "next_due_at",
        "stage",
        "country_profile",
        "detected_on",
        "referred_at",
        "reasonable_grounds_at",
        "first_support_contact_at",
        "identification_decided_at",
        "identification_positive",
        "not_identified_at",
        "returned_at",
        "residence_permit_valid_until",
        "last_contact_at",
    )
)


# =========================================================================== entry point


@dataclass
class DemoResult:
    cases: int
    events: int
    refused_steps: int
    stages: Counter[str]
    path: str
    case_ids: list[uuid.UUID] = field(default_factory=list)


def load_demo_data(
    session: Session,
    ctx: AppContext,
    *,
    cases: int,
    seed: int,
    now: datetime | None = None,
    bulk: bool | None = None,
    batch_size: int = 1000,
    refresh_reporting: bool = True,
    parallel: bool = True,
) -> str:
    """Create demo agencies, users and ``cases`` synthetic cases; return a printable summary.

    Runs in the caller's transaction (the CLI opens one). Refuses to run twice.
    ``bulk`` forces a path (default: services up to 500 cases, bulk above). On PostgreSQL
    the reporting store is then built, so the first dashboard does not pay for it.
    """
    if cases < 0:
        raise ValueError("cases must not be negative")
    if demo_loaded(session):
        raise DemoAlreadyLoaded(
            "demo data is already loaded (the demo coordinator office exists); "
            "start from an empty database to load it again"
        )
    present = (now or utcnow()).astimezone(UTC)
    setup_time = present - timedelta(days=4 * 365)
    directory = create_directory(session, ctx, setup_time)
    use_bulk = bulk if bulk is not None else cases > SMALL_PATH_MAX
    workers = min(os.cpu_count() or 1, 4)
    if use_bulk and parallel and workers > 1 and cases >= PARALLEL_MIN and _is_postgres(session):
        result = _load_bulk_parallel(session, ctx, directory, cases, seed, present, workers=workers)
    elif use_bulk:
        stories = write_stories(cases, seed, present)
        result = _load_bulk(session, ctx, directory, stories, seed, batch_size)
    else:
        result = _load_with_services(session, ctx, directory, write_stories(cases, seed, present))
    if refresh_reporting and _is_postgres(session):
        from app.reporting.store import refresh

        session.flush()
        refresh(session, ctx, now=present)
    return summary(result)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


class DemoAlreadyLoaded(click.ClickException):
    """The demo agencies exist already (the CLI prints the message and exits with status 1)."""


def _load_with_services(
    session: Session, ctx: AppContext, directory: Directory, stories: Sequence[Story]
) -> DemoResult:
    stages: Counter[str] = Counter()
    refused = 0
    case_ids: list[uuid.UUID] = []
    for story in stories:
        case, refused_here = _run_story_with_services(session, ctx, directory, story)
        refused += refused_here
        if case is not None:
            stages[case.stage] += 1
            case_ids.append(case.id)
    session.flush()
    events = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return DemoResult(len(stories), int(events), refused, stages, "services", case_ids)


def _load_bulk(
    session: Session,
    ctx: AppContext,
    directory: Directory | DirectoryIds,
    stories: Sequence[Story],
    seed: int,
    batch_size: int,
) -> DemoResult:
    ids = directory if isinstance(directory, DirectoryIds) else DirectoryIds.of(directory)
    writer = _BulkWriter(session, ctx, ids, seed)
    stages: Counter[str] = Counter()
    case_ids: list[uuid.UUID] = []
    for number, story in enumerate(stories, start=1):
        bulk_case = _BulkCase(writer, story)
        bulk_case.play()
        stages[bulk_case.case["stage"]] += 1
        case_ids.append(bulk_case.case["id"])
        if number % batch_size == 0:
            writer.flush()
    writer.close()
    return DemoResult(len(stories), writer.events, 0, stages, "bulk", case_ids)


def _load_bulk_parallel(
    session: Session,
    ctx: AppContext,
    directory: Directory,
    count: int,
    seed: int,
    present: datetime,
    *,
    workers: int,
    chunk: int = 500,
) -> DemoResult:
    """The bulk path on several cores: worker processes write stories into COPY-ready rows
    (each rebuilds the context from the settings, so keys never cross a pipe); this process
    streams them into its own transaction on a writer thread, in story order per chunk."""
    ids = DirectoryIds.of(directory)
    seeds = story_seeds(count, seed)
    tasks = [(start, seeds[start : start + chunk]) for start in range(0, count, chunk)]
    tables = _BulkWriter(None, ctx, ids, seed).tables
    copier = BackgroundCopier(session, tables)
    events = 0
    stages: Counter[str] = Counter()
    spawn = multiprocessing.get_context("spawn")  # never fork a process holding a connection
    with spawn.Pool(
        workers, initializer=_worker_start, initargs=(ctx.settings, ids, present, seed)
    ) as pool:
        for produced, rows, chunk_stages in pool.imap(_worker_chunk, tasks):
            events += produced
            stages.update(chunk_stages)
            for table in tables:
                copier.put(table, rows[table.name], preformatted=True)
    copier.close()
    return DemoResult(count, events, 0, stages, "bulk, parallel")


def summary(result: DemoResult) -> str:
    lines = [
        f"Demo data loaded ({result.path} path): {result.cases} fictional cases, "
        f"{result.events} audit events.",
        "",
        f"Every demo login uses the password: {DEMO_PASSWORD}",
        "(roles marked * must enrol an authenticator app at first sign-in)",
        "",
    ]
    width = max(len(u.username) for u in USERS)
    mfa_roles = {"police_officer", "prosecutor", "coordinator", "focal_point", "admin"}
    for spec in USERS:
        agency = _AGENCY_BY_KEY[spec.agency]
        star = "*" if spec.role in mfa_roles else " "
        lines.append(f"  {spec.username:<{width}}  {star} {spec.role:<15} {agency.name}")
    lines.append("")
    lines.append(
        "Cases by stage: " + ", ".join(f"{k} {v}" for k, v in sorted(result.stages.items()))
    )
    if result.refused_steps:
        lines.append(f"WARNING: {result.refused_steps} story steps were refused by the workflow.")
    return "\n".join(lines)
