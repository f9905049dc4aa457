"""Controlled vocabularies: the one place where Passage's coded values live.

Every vocabulary is a :class:`Vocabulary` (a ``StrEnum``) whose values are
stable lowercase snake_case strings. Those values are what the database, the
API and the audit log store, so **never rename or reuse a value**; add a new
member instead.

Each member has:

* an English label, ``label(member)`` or ``member.label``. The UI translates
  these later; they all sit in :data:`LABELS`.
* an HTCDS v2.0 code where one exists, ``htcds_code(member)`` or
  ``member.htcds``. The code is ``None`` where HTCDS has no equivalent. The
  HTCDS field that each vocabulary maps to is :data:`HTCDS_FIELDS`.

Why the tables are keyed by enum class first
--------------------------------------------
``StrEnum`` members compare and hash like their string values, so
``AgencyType.ngo == DetectingOrganisationType.ngo`` and
``AgeBand.child == VulnerabilityFlag.child``. A flat ``dict`` keyed by members
would silently merge such pairs. :data:`LABELS` and :data:`HTCDS_CODES` are
therefore ``{enum class: {member: ...}}``, and the lookups go through
``type(member)``.

Sources for the HTCDS codes (IOM, github.com/UNMigration/HTCDS)
---------------------------------------------------------------
* ``Field Definitions.md`` (v2.0): the MethodsOfControl value names, the ISIC
  Tier 1 ForcedLabourIndustry codes, the TraffickingStatus definitions, and
  the deprecation of the "Vulnerabilities" field in v2.0.
* ``Toolkit/Survey/htcds_xlsform.xml``: the value names for prs_Gender,
  vic_TraffickingStatus, vic_TypeOfExploitation and cas_Status.
* ``HTCDS Field Reference.md`` (draft): org_Type values, and
  cas_ReasonForCaseClosure as free text with no code list.
* No published text lists the con_ consent-checklist field names; the survey
  form has only a yes/no ``con_Consent``. :class:`ConsentPurpose` therefore
  maps to ``None`` rather than to invented names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Final

import pycountry
from babel import Locale, UnknownLocaleError
from pydantic import AfterValidator

__all__ = [
    "ADULT_AGE",
    "HTCDS_CODES",
    "HTCDS_FIELDS",
    "HTCDS_VERSION",
    "LABELS",
    "USER_ASSIGNED_COUNTRY_CODES",
    "VOCABULARIES",
    "AgeBand",
    "AgencyType",
    "CaseStatusHTCDS",
    "ClosureReason",
    "ConsentPurpose",
    "CountryCode",
    "DetectingOrganisationType",
    "DocumentType",
    "ExploitationForm",
    "ExploitationPurpose",
    "Indicator",
    "LabourSector",
    "LanguageCode",
    "Role",
    "Sex",
    "TraffickingAct",
    "TraffickingClassification",
    "TraffickingMeans",
    "TraffickingStatus",
    "Vocabulary",
    "VulnerabilityFlag",
    "age_band",
    "age_on",
    "choices",
    "country_name",
    "htcds_case_status_for_closure",
    "htcds_code",
    "htcds_field",
    "is_country_code",
    "is_language_code",
    "label",
    "validate_country_code",
    "validate_language_code",
]

HTCDS_VERSION: Final = "2.0"


class Vocabulary(StrEnum):
    """Base class for every controlled vocabulary. It adds ``.label`` and ``.htcds``."""

    @property
    def label(self) -> str:
        """Short English label. Same as ``label(member)``."""
        return LABELS[type(self)][self]

    @property
    def htcds(self) -> str | None:
        """HTCDS v2.0 value name, or ``None``. Same as ``htcds_code(member)``."""
        return HTCDS_CODES[type(self)][self]


# --------------------------------------------------------------------------- #
# Organisations and people
# --------------------------------------------------------------------------- #


class AgencyType(Vocabulary):
    """Type of a participating agency (tenant) in the referral mechanism."""

    ngo = "ngo"
    police = "police"
    social_services = "social_services"
    prosecutor = "prosecutor"
    coordinator_office = "coordinator_office"
    foreign_focal_point = "foreign_focal_point"


class Role(Vocabulary):
    """A user's role. HTCDS does not model user roles."""

    ngo_caseworker = "ngo_caseworker"
    police_officer = "police_officer"
    social_worker = "social_worker"
    prosecutor = "prosecutor"
    guardian = "guardian"
    coordinator = "coordinator"
    focal_point = "focal_point"
    admin = "admin"


class Event(StrEnum):
    """A case event of the referral workflow (``app.cases.workflow`` defines what each one
    does; ``policies/transitions.toml`` who may fire it). Stored in audit details. Not a
    :class:`Vocabulary`: its labels are the screens' (``app/web/labels.py``), and HTCDS
    has no equivalent."""

    record_screening = "record_screening"
    refer = "refer"
    decline_formal_identification = "decline_formal_identification"
    consent_to_referral = "consent_to_referral"
    accept_referral = "accept_referral"
    positive_reasonable_grounds = "positive_reasonable_grounds"
    propose_negative_decision = "propose_negative_decision"
    negative_reasonable_grounds = "negative_reasonable_grounds"
    start_identification = "start_identification"
    positive_identification = "positive_identification"
    negative_identification = "negative_identification"
    request_reconsideration = "request_reconsideration"
    uphold_negative = "uphold_negative"
    overturn_to_recovery = "overturn_to_recovery"
    overturn_to_identified = "overturn_to_identified"
    start_long_term_support = "start_long_term_support"
    plan_return = "plan_return"
    cosign_return = "cosign_return"
    cancel_return = "cancel_return"
    confirm_return_handover = "confirm_return_handover"
    start_reintegration_monitoring = "start_reintegration_monitoring"
    report_re_trafficking = "report_re_trafficking"
    report_lost_contact = "report_lost_contact"
    report_missing_child = "report_missing_child"
    contact_restored = "contact_restored"
    close = "close"


class Sex(Vocabulary):
    """Gender as recorded. Maps to HTCDS prs_Gender."""

    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class DetectingOrganisationType(Vocabulary):
    """Who first identified the presumed victim (UK NRM: "first responder" type)."""

    ngo = "ngo"
    police = "police"
    border_guard = "border_guard"
    labour_inspection = "labour_inspection"
    social_services = "social_services"
    consulate = "consulate"
    carrier = "carrier"
    health = "health"
    self_referral = "self_referral"
    other = "other"


# --------------------------------------------------------------------------- #
# The trafficking itself: Palermo Protocol Art. 3 act, means, purpose
# --------------------------------------------------------------------------- #


class ExploitationForm(Vocabulary):
    """Form of exploitation. This is also the Palermo "purpose" element.

    Palermo Art. 3(a) defines the purpose as exploitation and lists its forms.
    A separate purpose vocabulary would repeat this list, so
    :data:`ExploitationPurpose` is an alias of this class. Maps to HTCDS
    vic_TypeOfExploitation.
    """

    sexual = "sexual"
    labour = "labour"
    domestic_servitude = "domestic_servitude"
    forced_begging = "forced_begging"
    forced_criminality = "forced_criminality"
    forced_marriage = "forced_marriage"
    illegal_adoption = "illegal_adoption"
    surrogacy = "surrogacy"
    organ_removal = "organ_removal"
    other = "other"


ExploitationPurpose = ExploitationForm
"""The Palermo "purpose" element. Kept in :class:`ExploitationForm` (see its docstring)."""


class LabourSector(Vocabulary):
    """Sector of labour exploitation. Maps to HTCDS vic_ForcedLabourIndustry (ISIC section)."""

    agriculture = "agriculture"
    construction = "construction"
    manufacturing = "manufacturing"
    hospitality = "hospitality"
    domestic_work = "domestic_work"
    fishing = "fishing"
    mining = "mining"
    retail = "retail"
    cleaning = "cleaning"
    care = "care"
    car_wash = "car_wash"
    nail_bar = "nail_bar"
    other = "other"


class TraffickingAct(Vocabulary):
    """The "act" element of Palermo Protocol Art. 3(a)."""

    recruitment = "recruitment"
    transportation = "transportation"
    transfer = "transfer"
    harbouring = "harbouring"
    receipt = "receipt"


class TraffickingMeans(Vocabulary):
    """The "means" element of Palermo Art. 3(a), plus common control methods.

    Maps to HTCDS vic_MethodsOfControl where a value matches.
    """

    threat = "threat"
    force = "force"
    coercion = "coercion"
    abduction = "abduction"
    fraud = "fraud"
    deception = "deception"
    abuse_of_power = "abuse_of_power"
    abuse_of_vulnerability = "abuse_of_vulnerability"
    payments_or_benefits = "payments_or_benefits"
    debt_bondage = "debt_bondage"
    confiscation_of_documents = "confiscation_of_documents"
    isolation = "isolation"
    withholding_wages = "withholding_wages"
    other = "other"


class TraffickingClassification(Vocabulary):
    """Whether a case is trafficking, migrant smuggling, both, or not yet known."""

    trafficking = "trafficking"
    smuggling = "smuggling"
    both = "both"
    undetermined = "undetermined"


# --------------------------------------------------------------------------- #
# Documents, consent, case lifecycle
# --------------------------------------------------------------------------- #


class DocumentType(Vocabulary):
    """Type of identity or travel document held. ``none`` means no document."""

    passport = "passport"
    national_id = "national_id"
    residence_permit = "residence_permit"
    birth_certificate = "birth_certificate"
    travel_document = "travel_document"
    driving_licence = "driving_licence"
    other = "other"
    none = "none"


class ConsentPurpose(Vocabulary):
    """What a consent record covers. Each purpose is consented to separately.

    HTCDS v2.0 has a con_ consent checklist (purpose, data use, research use,
    access rights, retention period, withdrawal). Its field names are not
    published in a form we could check, so every purpose maps to ``None``.
    When they are known, the likely match is: ``research_statistics`` to the
    research-use item, ``data_sharing_*`` to the data-use item, and the rest
    to the purpose item.
    """

    referral = "referral"
    data_sharing_national = "data_sharing_national"
    data_sharing_transnational = "data_sharing_transnational"
    return_preparation = "return_preparation"
    research_statistics = "research_statistics"
    service_provision = "service_provision"


class ClosureReason(Vocabulary):
    """Why a case was closed. Modelled on HTCDS cas_ReasonForCaseClosure.

    HTCDS defines that field as free text with no code list, so every reason
    maps to ``None``. For an HTCDS export, put the label in the free-text
    field and get cas_Status from :func:`htcds_case_status_for_closure`.
    """

    support_completed = "support_completed"
    returned_and_reintegrated = "returned_and_reintegrated"
    declined_further_support = "declined_further_support"
    not_identified_no_reconsideration = "not_identified_no_reconsideration"
    transferred_to_other_country = "transferred_to_other_country"
    lost_contact = "lost_contact"
    deceased = "deceased"
    other = "other"


class TraffickingStatus(Vocabulary):
    """HTCDS vic_TraffickingStatus."""

    possible = "possible"
    actual = "actual"
    not_a_victim = "not_a_victim"


class CaseStatusHTCDS(Vocabulary):
    """HTCDS cas_Status.

    This is the export view of a case. Passage's own workflow states are
    richer and live with the case model.
    """

    active = "active"
    follow_up = "follow_up"
    closed = "closed"
    closed_referred = "closed_referred"


# --------------------------------------------------------------------------- #
# Age, vulnerability, screening
# --------------------------------------------------------------------------- #


class AgeBand(Vocabulary):
    """Child, adult or unknown. This matches the UK NRM "age at exploitation" breakdown.

    Compute it with :func:`age_band`.
    """

    child = "child"
    adult = "adult"
    unknown = "unknown"


class VulnerabilityFlag(Vocabulary):
    """Vulnerabilities that change how a person is handled.

    HTCDS v2.0 deprecated its single "Vulnerabilities" field. It now gives
    guidance on individual, household and community risk assessment instead,
    so none of these flags has an HTCDS code.
    """

    child = "child"
    unaccompanied_minor = "unaccompanied_minor"
    pregnancy = "pregnancy"
    disability = "disability"
    health_condition = "health_condition"
    mental_health = "mental_health"
    substance_dependence = "substance_dependence"
    homelessness = "homelessness"
    other = "other"


class Indicator(Vocabulary):
    """Screening indicators, drawn from common ILO/UNODC indicator lists.

    An indicator is something the screener observed. It is not a finding.
    Where an indicator matches an HTCDS vic_MethodsOfControl value, the code
    is given so that an export can suggest it. A caseworker still has to
    confirm it.
    """

    documents_withheld = "documents_withheld"
    debt_bondage = "debt_bondage"
    restricted_movement = "restricted_movement"
    threats_or_violence = "threats_or_violence"
    excessive_hours = "excessive_hours"
    no_or_little_pay = "no_or_little_pay"
    deceived_about_work = "deceived_about_work"
    isolation = "isolation"
    dependence_on_employer_housing = "dependence_on_employer_housing"
    signs_of_physical_abuse = "signs_of_physical_abuse"
    fear_of_authorities = "fear_of_authorities"
    not_knowing_address = "not_knowing_address"
    recruited_by_deception = "recruited_by_deception"
    forced_to_commit_crimes = "forced_to_commit_crimes"
    sexual_exploitation_signs = "sexual_exploitation_signs"


VOCABULARIES: Final[tuple[type[Vocabulary], ...]] = (
    AgencyType,
    Role,
    Sex,
    DetectingOrganisationType,
    ExploitationForm,
    LabourSector,
    TraffickingAct,
    TraffickingMeans,
    TraffickingClassification,
    DocumentType,
    ConsentPurpose,
    ClosureReason,
    TraffickingStatus,
    CaseStatusHTCDS,
    AgeBand,
    VulnerabilityFlag,
    Indicator,
)
"""Every controlled vocabulary in this module."""


# --------------------------------------------------------------------------- #
# English labels
# --------------------------------------------------------------------------- #

_LABELS: dict[type[Vocabulary], Mapping[Vocabulary, str]] = {
    AgencyType: {
        AgencyType.ngo: "NGO",
        AgencyType.police: "Police",
        AgencyType.social_services: "Social services",
        AgencyType.prosecutor: "Prosecutor's office",
        AgencyType.coordinator_office: "National coordinator's office",
        AgencyType.foreign_focal_point: "Foreign focal point",
    },
    Role: {
        Role.ngo_caseworker: "NGO caseworker",
        Role.police_officer: "Police officer",
        Role.social_worker: "Social worker",
        Role.prosecutor: "Prosecutor",
        Role.guardian: "Guardian",
        Role.coordinator: "Coordinator",
        Role.focal_point: "Focal point",
        Role.admin: "Administrator",
    },
    Sex: {
        Sex.female: "Female",
        Sex.male: "Male",
        Sex.other: "Other",
        Sex.unknown: "Unknown",
    },
    DetectingOrganisationType: {
        DetectingOrganisationType.ngo: "NGO",
        DetectingOrganisationType.police: "Police",
        DetectingOrganisationType.border_guard: "Border guard",
        DetectingOrganisationType.labour_inspection: "Labour inspectorate",
        DetectingOrganisationType.social_services: "Social services",
        DetectingOrganisationType.consulate: "Consulate",
        DetectingOrganisationType.carrier: "Carrier (airline, bus, ferry)",
        DetectingOrganisationType.health: "Health service",
        DetectingOrganisationType.self_referral: "Self-referral",
        DetectingOrganisationType.other: "Other",
    },
    ExploitationForm: {
        ExploitationForm.sexual: "Sexual exploitation",
        ExploitationForm.labour: "Labour exploitation",
        ExploitationForm.domestic_servitude: "Domestic servitude",
        ExploitationForm.forced_begging: "Forced begging",
        ExploitationForm.forced_criminality: "Forced criminality",
        ExploitationForm.forced_marriage: "Forced marriage",
        ExploitationForm.illegal_adoption: "Illegal adoption",
        ExploitationForm.surrogacy: "Surrogacy",
        ExploitationForm.organ_removal: "Organ removal",
        ExploitationForm.other: "Other",
    },
    LabourSector: {
        LabourSector.agriculture: "Agriculture",
        LabourSector.construction: "Construction",
        LabourSector.manufacturing: "Manufacturing",
        LabourSector.hospitality: "Hospitality",
        LabourSector.domestic_work: "Domestic work",
        LabourSector.fishing: "Fishing",
        LabourSector.mining: "Mining",
        LabourSector.retail: "Retail",
        LabourSector.cleaning: "Cleaning",
        LabourSector.care: "Care",
        LabourSector.car_wash: "Car wash",
        LabourSector.nail_bar: "Nail bar",
        LabourSector.other: "Other",
    },
    TraffickingAct: {
        TraffickingAct.recruitment: "Recruitment",
        TraffickingAct.transportation: "Transportation",
        TraffickingAct.transfer: "Transfer",
        TraffickingAct.harbouring: "Harbouring",
        TraffickingAct.receipt: "Receipt",
    },
    TraffickingMeans: {
        TraffickingMeans.threat: "Threat",
        TraffickingMeans.force: "Use of force",
        TraffickingMeans.coercion: "Coercion",
        TraffickingMeans.abduction: "Abduction",
        TraffickingMeans.fraud: "Fraud",
        TraffickingMeans.deception: "Deception",
        TraffickingMeans.abuse_of_power: "Abuse of power",
        TraffickingMeans.abuse_of_vulnerability: "Abuse of a position of vulnerability",
        TraffickingMeans.payments_or_benefits: "Giving or receiving payments or benefits",
        TraffickingMeans.debt_bondage: "Debt bondage",
        TraffickingMeans.confiscation_of_documents: "Confiscation of documents",
        TraffickingMeans.isolation: "Isolation",
        TraffickingMeans.withholding_wages: "Withholding of wages",
        TraffickingMeans.other: "Other",
    },
    TraffickingClassification: {
        TraffickingClassification.trafficking: "Trafficking in human beings",
        TraffickingClassification.smuggling: "Migrant smuggling",
        TraffickingClassification.both: "Trafficking and smuggling",
        TraffickingClassification.undetermined: "Undetermined",
    },
    DocumentType: {
        DocumentType.passport: "Passport",
        DocumentType.national_id: "National identity card",
        DocumentType.residence_permit: "Residence permit",
        DocumentType.birth_certificate: "Birth certificate",
        DocumentType.travel_document: "Travel document",
        DocumentType.driving_licence: "Driving licence",
        DocumentType.other: "Other document",
        DocumentType.none: "No document",
    },
    ConsentPurpose: {
        ConsentPurpose.referral: "Referral to support services",
        ConsentPurpose.data_sharing_national: "Data sharing within the country",
        ConsentPurpose.data_sharing_transnational: "Data sharing with other countries",
        ConsentPurpose.return_preparation: "Preparation of return",
        ConsentPurpose.research_statistics: "Research and statistics",
        ConsentPurpose.service_provision: "Provision of services",
    },
    ClosureReason: {
        ClosureReason.support_completed: "Support completed",
        ClosureReason.returned_and_reintegrated: "Returned and reintegrated",
        ClosureReason.declined_further_support: "Declined further support",
        ClosureReason.not_identified_no_reconsideration: (
            "Not identified as a victim, no reconsideration"
        ),
        ClosureReason.transferred_to_other_country: "Transferred to another country",
        ClosureReason.lost_contact: "Lost contact",
        ClosureReason.deceased: "Deceased",
        ClosureReason.other: "Other",
    },
    TraffickingStatus: {
        TraffickingStatus.possible: "Possible victim of trafficking",
        TraffickingStatus.actual: "Victim of trafficking",
        TraffickingStatus.not_a_victim: "Not a victim of trafficking",
    },
    CaseStatusHTCDS: {
        CaseStatusHTCDS.active: "Active",
        CaseStatusHTCDS.follow_up: "Follow-up",
        CaseStatusHTCDS.closed: "Closed",
        CaseStatusHTCDS.closed_referred: "Closed (referred)",
    },
    AgeBand: {
        AgeBand.child: "Child",
        AgeBand.adult: "Adult",
        AgeBand.unknown: "Age unknown",
    },
    VulnerabilityFlag: {
        VulnerabilityFlag.child: "Child",
        VulnerabilityFlag.unaccompanied_minor: "Unaccompanied minor",
        VulnerabilityFlag.pregnancy: "Pregnancy",
        VulnerabilityFlag.disability: "Disability",
        VulnerabilityFlag.health_condition: "Health condition",
        VulnerabilityFlag.mental_health: "Mental health",
        VulnerabilityFlag.substance_dependence: "Substance dependence",
        VulnerabilityFlag.homelessness: "Homelessness",
        VulnerabilityFlag.other: "Other",
    },
    Indicator: {
        Indicator.documents_withheld: "Identity documents withheld",
        Indicator.debt_bondage: "Debt bondage",
        Indicator.restricted_movement: "Restricted freedom of movement",
        Indicator.threats_or_violence: "Threats or violence",
        Indicator.excessive_hours: "Excessive working hours",
        Indicator.no_or_little_pay: "No pay or very little pay",
        Indicator.deceived_about_work: "Deceived about the work",
        Indicator.isolation: "Isolation",
        Indicator.dependence_on_employer_housing: "Depends on employer for housing",
        Indicator.signs_of_physical_abuse: "Signs of physical abuse",
        Indicator.fear_of_authorities: "Fear of the authorities",
        Indicator.not_knowing_address: "Does not know home or work address",
        Indicator.recruited_by_deception: "Recruited by deception",
        Indicator.forced_to_commit_crimes: "Forced to commit crimes",
        Indicator.sexual_exploitation_signs: "Signs of sexual exploitation",
    },
}

LABELS: Final[Mapping[type[Vocabulary], Mapping[Vocabulary, str]]] = MappingProxyType(
    {cls: MappingProxyType(dict(table)) for cls, table in _LABELS.items()}
)
"""English labels: ``LABELS[EnumClass][member]``. Use :func:`label`."""


# --------------------------------------------------------------------------- #
# HTCDS v2.0 mapping
# --------------------------------------------------------------------------- #

_HTCDS_FIELDS: dict[type[Vocabulary], str | None] = {
    AgencyType: "org_Type",
    DetectingOrganisationType: "org_Type",
    Sex: "prs_Gender",
    ExploitationForm: "vic_TypeOfExploitation",
    LabourSector: "vic_ForcedLabourIndustry",
    TraffickingAct: "hte_Type",
    TraffickingMeans: "vic_MethodsOfControl",
    Indicator: "vic_MethodsOfControl",
    TraffickingStatus: "vic_TraffickingStatus",
    CaseStatusHTCDS: "cas_Status",
    ClosureReason: "cas_ReasonForCaseClosure",  # free text in HTCDS, no codes
    Role: None,
    TraffickingClassification: None,
    DocumentType: None,
    ConsentPurpose: None,
    AgeBand: None,  # HTCDS has only a numeric AgeWhenTrafficked
    VulnerabilityFlag: None,  # "Vulnerabilities" was deprecated in v2.0
}

HTCDS_FIELDS: Final[Mapping[type[Vocabulary], str | None]] = MappingProxyType(_HTCDS_FIELDS)
"""The HTCDS field each vocabulary maps to, or ``None`` if there is none."""

# Enums that map value by value. Every member must appear, with None where
# HTCDS has no equivalent, so a missing entry is a bug and not a silent gap.
_HTCDS_EXPLICIT: dict[type[Vocabulary], Mapping[Vocabulary, str | None]] = {
    # org_Type comes from the draft Field Reference. Its values are NGO,
    # LawEnforcement, HealthServiceOrganisation, CentralGovernmentOrganisation,
    # LocalGovernmentOrganisation, ImmigrationService, LegalService and
    # CorporateBusiness.
    AgencyType: {
        AgencyType.ngo: "NGO",
        AgencyType.police: "LawEnforcement",
        AgencyType.social_services: "LocalGovernmentOrganisation",
        AgencyType.prosecutor: "CentralGovernmentOrganisation",
        AgencyType.coordinator_office: "CentralGovernmentOrganisation",
        AgencyType.foreign_focal_point: None,  # could be any type of body abroad
    },
    DetectingOrganisationType: {
        DetectingOrganisationType.ngo: "NGO",
        DetectingOrganisationType.police: "LawEnforcement",
        DetectingOrganisationType.border_guard: "LawEnforcement",
        DetectingOrganisationType.labour_inspection: "CentralGovernmentOrganisation",
        DetectingOrganisationType.social_services: "LocalGovernmentOrganisation",
        DetectingOrganisationType.consulate: "CentralGovernmentOrganisation",
        DetectingOrganisationType.carrier: "CorporateBusiness",
        DetectingOrganisationType.health: "HealthServiceOrganisation",
        DetectingOrganisationType.self_referral: None,
        DetectingOrganisationType.other: None,
    },
    # HTCDS genders: Feminine, Masculine, TransgenderFeminine,
    # TransgenderMasculine, NonConforming, NonSpecifiedUnknown. "other" does
    # not map to any single one of these.
    Sex: {
        Sex.female: "Feminine",
        Sex.male: "Masculine",
        Sex.other: None,
        Sex.unknown: "NonSpecifiedUnknown",
    },
    ExploitationForm: {
        ExploitationForm.sexual: "SexualExploitation",
        ExploitationForm.labour: "ForcedLabour",
        ExploitationForm.domestic_servitude: "Servitude",
        ExploitationForm.forced_begging: "ForcedBegging",
        ExploitationForm.forced_criminality: None,  # no HTCDS value; export as "Other"
        ExploitationForm.forced_marriage: "ForcedMarriage",
        ExploitationForm.illegal_adoption: "ForcedAdoption",
        ExploitationForm.surrogacy: "Surrogacy",
        ExploitationForm.organ_removal: "OrganRemoval",
        ExploitationForm.other: "Other",
    },
    # ISIC Rev.4 sections, written as HTCDS Tier 1 codes.
    LabourSector: {
        LabourSector.agriculture: "A_AgricultureForestryAndFishing",
        LabourSector.construction: "F_Construction",
        LabourSector.manufacturing: "C_Manufacturing",
        LabourSector.hospitality: "I_AccommodationAndFoodServiceActivities",
        LabourSector.domestic_work: "T_ActivitiesOfHouseholdsAsEmployers",
        LabourSector.fishing: "A_AgricultureForestryAndFishing",
        LabourSector.mining: "B_MiningAndQuarrying",
        LabourSector.retail: "G_WholesaleAndRetailTradeRepairOfMotorVehicles",
        # ISIC 81, services to buildings (including cleaning), is in section N.
        LabourSector.cleaning: "N_AdministrativeAndSupportServiceActivities",
        LabourSector.care: "Q_HumanHealthAndSocialWorkActivities",
        # ISIC 4520, maintenance of motor vehicles, covers washing and polishing.
        LabourSector.car_wash: "G_WholesaleAndRetailTradeRepairOfMotorVehicles",
        # ISIC 9602, hairdressing and other beauty treatment.
        LabourSector.nail_bar: "S_OtherServiceActivities",
        LabourSector.other: None,  # ForcedLabourIndustry has no "Other"
    },
    # hte_Type is Recruitment, Transit or Exploitation: the kind of historic
    # event. Only two Palermo acts have an event counterpart.
    TraffickingAct: {
        TraffickingAct.recruitment: "Recruitment",
        TraffickingAct.transportation: "Transit",
        TraffickingAct.transfer: None,
        TraffickingAct.harbouring: None,
        TraffickingAct.receipt: None,
    },
    # Value names follow the v2.0 Field Definitions.
    TraffickingMeans: {
        TraffickingMeans.threat: "Threats",
        TraffickingMeans.force: "PhysicalAbuse",
        TraffickingMeans.coercion: None,
        TraffickingMeans.abduction: None,
        TraffickingMeans.fraud: "FalsePromises",
        TraffickingMeans.deception: "FalsePromises",
        TraffickingMeans.abuse_of_power: None,
        TraffickingMeans.abuse_of_vulnerability: None,
        TraffickingMeans.payments_or_benefits: None,
        TraffickingMeans.debt_bondage: "DebtBondage",
        TraffickingMeans.confiscation_of_documents: "WithholdsDocuments",
        # HTCDS's RestrictsMovement definition includes physical and social isolation.
        TraffickingMeans.isolation: "RestrictsMovement",
        TraffickingMeans.withholding_wages: "TakesEarnings",
        TraffickingMeans.other: "Other",
    },
    Indicator: {
        Indicator.documents_withheld: "WithholdsDocuments",
        Indicator.debt_bondage: "DebtBondage",
        Indicator.restricted_movement: "RestrictsMovement",
        Indicator.threats_or_violence: None,  # spans Threats and PhysicalAbuse
        Indicator.excessive_hours: "ExcessiveWorkingHours",
        Indicator.no_or_little_pay: None,  # low pay is not the same as TakesEarnings
        Indicator.deceived_about_work: "FalsePromises",
        Indicator.isolation: "RestrictsMovement",
        Indicator.dependence_on_employer_housing: None,
        Indicator.signs_of_physical_abuse: "PhysicalAbuse",
        Indicator.fear_of_authorities: None,
        Indicator.not_knowing_address: None,
        Indicator.recruited_by_deception: "FalsePromises",
        Indicator.forced_to_commit_crimes: None,
        Indicator.sexual_exploitation_signs: None,  # this is an exploitation type, not control
    },
    TraffickingStatus: {
        TraffickingStatus.possible: "PossibleVictimOfTrafficking",
        TraffickingStatus.actual: "ActualVictimOfTrafficking",
        TraffickingStatus.not_a_victim: "NotAVictimOfTrafficking",
    },
    CaseStatusHTCDS: {
        CaseStatusHTCDS.active: "Active",
        CaseStatusHTCDS.follow_up: "FollowUp",
        CaseStatusHTCDS.closed: "Closed",
        CaseStatusHTCDS.closed_referred: "ClosedReferred",
    },
}


def _build_htcds_codes() -> Mapping[type[Vocabulary], Mapping[Vocabulary, str | None]]:
    table: dict[type[Vocabulary], Mapping[Vocabulary, str | None]] = {}
    for cls in VOCABULARIES:
        explicit = _HTCDS_EXPLICIT.get(cls)
        if explicit is None:
            table[cls] = MappingProxyType({member: None for member in cls})
        else:
            table[cls] = MappingProxyType(dict(explicit))
    return MappingProxyType(table)


HTCDS_CODES: Final[Mapping[type[Vocabulary], Mapping[Vocabulary, str | None]]] = (
    _build_htcds_codes()
)
"""HTCDS v2.0 value names: ``HTCDS_CODES[EnumClass][member]``, ``None`` where there is none.

Every member of every vocabulary has an entry, so ``None`` always means
"checked, and HTCDS has no equivalent". Several members can share one code,
for example fraud and deception both map to ``FalsePromises``, so this
mapping cannot be reversed for import.
"""


def label(member: Vocabulary) -> str:
    """Short English label for a vocabulary member, e.g. ``"Forced begging"``."""
    return LABELS[type(member)][member]


def htcds_code(member: Vocabulary) -> str | None:
    """HTCDS v2.0 value name for ``member``, or ``None`` if HTCDS has no equivalent."""
    return HTCDS_CODES[type(member)][member]


def htcds_field(vocabulary: type[Vocabulary]) -> str | None:
    """HTCDS field name (e.g. ``"vic_TypeOfExploitation"``) for a vocabulary, or ``None``."""
    return HTCDS_FIELDS[vocabulary]


def choices(vocabulary: type[Vocabulary]) -> list[tuple[str, str]]:
    """``(value, English label)`` pairs in declaration order, e.g. for a ``<select>``."""
    return [(member.value, label(member)) for member in vocabulary]


def htcds_case_status_for_closure(reason: ClosureReason) -> CaseStatusHTCDS:
    """The HTCDS cas_Status for a case closed for ``reason``.

    A transfer to another country's mechanism is ``ClosedReferred``. Every
    other reason is ``Closed``.
    """
    if reason is ClosureReason.transferred_to_other_country:
        return CaseStatusHTCDS.closed_referred
    return CaseStatusHTCDS.closed


# --------------------------------------------------------------------------- #
# Age: CETS 197 (Council of Europe Convention on Action against THB), Art. 10(3)
# --------------------------------------------------------------------------- #

ADULT_AGE: Final = 18


def age_on(date_of_birth: date, on: date) -> int:
    """Age in completed years on ``on``.

    A person born on 29 February reaches a new age on 1 March in non-leap
    years. That is the later of the two possible readings, so it is the
    protective one.
    """
    if date_of_birth > on:
        raise ValueError(f"date of birth {date_of_birth.isoformat()} is after {on.isoformat()}")
    before_birthday = (on.month, on.day) < (date_of_birth.month, date_of_birth.day)
    return on.year - date_of_birth.year - int(before_birthday)


def age_band(
    date_of_birth: date | None,
    estimated_age: int | None,
    age_uncertain: bool,
    on: date,
) -> AgeBand:
    """``AgeBand`` (child, adult or unknown) on ``on``, applying CETS 197 Art. 10(3).

    Art. 10(3): "When the age of the victim is uncertain and there are reasons
    to believe that the victim is a child, he or she shall be presumed to be a
    child ... pending verification of his/her age."

    The function reads this protectively:

    * ``age_uncertain=True`` gives ``child``, **even when the date of birth on
      record says adult**. Traffickers often supply false documents that make
      a child look like an adult. Set ``age_uncertain`` when there are reasons
      to believe the person may be a child. Clear it only once an age
      assessment has verified the age.
    * Otherwise the result is ``child`` if *any* evidence says under 18: the date
      of birth, or the estimated age. A date of birth and an estimate that
      disagree also give ``child``.
    * ``adult`` if there is evidence and all of it says 18 or over. The 18th
      birthday is the first day as an adult.
    * ``unknown`` if there is no date of birth, no estimate and no uncertainty flag.

    ``on`` is the reference date, e.g. today, or the date of exploitation for
    the NRM "age at exploitation" statistic. Raises ``ValueError`` when the
    date of birth is after ``on`` or the estimated age is negative.
    """
    if estimated_age is not None and estimated_age < 0:
        raise ValueError(f"estimated age must not be negative, got {estimated_age}")
    minor_by_dob = date_of_birth is not None and age_on(date_of_birth, on) < ADULT_AGE
    minor_by_estimate = estimated_age is not None and estimated_age < ADULT_AGE
    if age_uncertain or minor_by_dob or minor_by_estimate:
        return AgeBand.child
    if date_of_birth is not None or estimated_age is not None:
        return AgeBand.adult
    return AgeBand.unknown


# --------------------------------------------------------------------------- #
# Countries (ISO 3166-1 alpha-2) and languages (ISO 639)
# --------------------------------------------------------------------------- #

USER_ASSIGNED_COUNTRY_CODES: Final[Mapping[str, str]] = MappingProxyType({"XK": "Kosovo"})
"""Codes accepted in addition to ISO 3166-1, with their English names.

"XK" is in ISO's user-assigned range. The EU, the IMF and most referral
partners use it for Kosovo.
"""

_ISO_3166_ALPHA_2: Final[frozenset[str]] = frozenset(
    str(country.alpha_2) for country in pycountry.countries
)
_COUNTRY_CODES: Final[frozenset[str]] = _ISO_3166_ALPHA_2 | USER_ASSIGNED_COUNTRY_CODES.keys()

# ISO 639-1 (2 letters). ISO 639-3 (3 letters), which includes every
# individual-language code of ISO 639-2/T. ISO 639-2/B bibliographic variants
# such as "fre" and "ger". ISO 639-2 collective codes such as "ber", taken from
# pycountry's ISO 639-5 table (a superset of them).
_ISO_639_1: Final[frozenset[str]] = frozenset(
    str(lang.alpha_2) for lang in pycountry.languages if hasattr(lang, "alpha_2")
)
_ISO_639_2_3: Final[frozenset[str]] = (
    frozenset(str(lang.alpha_3) for lang in pycountry.languages)
    | frozenset(
        str(lang.bibliographic) for lang in pycountry.languages if hasattr(lang, "bibliographic")
    )
    | frozenset(str(family.alpha_3) for family in pycountry.language_families)
)

_COUNTRY_HINTS: Final[Mapping[str, str]] = MappingProxyType({"UK": "GB", "EL": "GR"})


def is_country_code(code: str) -> bool:
    """True for an uppercase ISO 3166-1 alpha-2 code, or for "XK" (Kosovo).

    The check is strict: ``"gb"`` and ``"UK"`` are both False (the ISO code
    for the United Kingdom is ``GB``). :data:`CountryCode` normalises case
    before it checks.
    """
    return code in _COUNTRY_CODES


def is_language_code(code: str) -> bool:
    """True for a lowercase ISO 639-1 (2-letter) or ISO 639-2/639-3 (3-letter) code."""
    if len(code) == 2:
        return code in _ISO_639_1
    if len(code) == 3:
        return code in _ISO_639_2_3
    return False


def validate_country_code(value: str) -> str:
    """Strip and uppercase ``value``, then check it.

    Raises ``ValueError`` with a readable message, which pydantic reports as a 422.
    """
    code = value.strip().upper()
    if is_country_code(code):
        return code
    message = f"{value!r} is not an ISO 3166-1 alpha-2 country code"
    hint = _COUNTRY_HINTS.get(code)
    if hint is not None:
        message += f" (did you mean {hint!r}?)"
    raise ValueError(message)


def validate_language_code(value: str) -> str:
    """Strip and lowercase ``value``, then check it. Raises ``ValueError`` if it is not valid."""
    code = value.strip().lower()
    if is_language_code(code):
        return code
    raise ValueError(f"{value!r} is not an ISO 639-1, 639-2 or 639-3 language code")


CountryCode = Annotated[str, AfterValidator(validate_country_code)]
"""Pydantic type for a country: ``" gb "`` becomes ``"GB"``, and ``"UK"`` is rejected."""

LanguageCode = Annotated[str, AfterValidator(validate_language_code)]
"""Pydantic type for a language: ``"EN"`` becomes ``"en"``, and ``"xx"`` is rejected."""


@lru_cache(maxsize=16)
def _territory_names(locale: str) -> Mapping[str, str]:
    try:
        parsed = Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown locale {locale!r}") from exc
    return MappingProxyType(dict(parsed.territories))


def country_name(code: str, locale: str = "en") -> str:
    """Country name in ``locale``, from Babel's CLDR data, e.g. ``country_name("CI", "fr")``.

    ``code`` is normalised the same way as :data:`CountryCode`. If CLDR has no
    name for the code, the English name from pycountry is returned. Raises
    ``ValueError`` for an invalid code or an unknown locale.
    """
    normalised = validate_country_code(code)
    name = _territory_names(locale).get(normalised)
    if name:
        return name
    if normalised in USER_ASSIGNED_COUNTRY_CODES:
        return USER_ASSIGNED_COUNTRY_CODES[normalised]
    country = pycountry.countries.get(alpha_2=normalised)
    if country is None:  # pragma: no cover - validate_country_code() guarantees a match
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return str(getattr(country, "common_name", None) or country.name)
