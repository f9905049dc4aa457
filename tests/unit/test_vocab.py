"""Tests for app.vocab: vocabularies, HTCDS mapping, age band, ISO code validation."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from app import vocab
from app.vocab import (
    HTCDS_CODES,
    HTCDS_FIELDS,
    LABELS,
    VOCABULARIES,
    AgeBand,
    AgencyType,
    CaseStatusHTCDS,
    ClosureReason,
    ConsentPurpose,
    CountryCode,
    DetectingOrganisationType,
    DocumentType,
    ExploitationForm,
    ExploitationPurpose,
    Indicator,
    LabourSector,
    LanguageCode,
    Role,
    Sex,
    TraffickingAct,
    TraffickingClassification,
    TraffickingMeans,
    TraffickingStatus,
    Vocabulary,
    VulnerabilityFlag,
    age_band,
    age_on,
    choices,
    country_name,
    htcds_case_status_for_closure,
    htcds_code,
    htcds_field,
    is_country_code,
    is_language_code,
    label,
)

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


# --------------------------------------------------------------------------- #
# Required values: other modules import these, so they must not drift.
# --------------------------------------------------------------------------- #

REQUIRED_VALUES: dict[type[Vocabulary], list[str]] = {
    AgencyType: [
        "ngo",
        "police",
        "social_services",
        "prosecutor",
        "coordinator_office",
        "foreign_focal_point",
    ],
    Role: [
        "ngo_caseworker",
        "police_officer",
        "social_worker",
        "prosecutor",
        "guardian",
        "coordinator",
        "focal_point",
        "admin",
    ],
    Sex: ["female", "male", "other", "unknown"],
    DetectingOrganisationType: [
        "ngo",
        "police",
        "border_guard",
        "labour_inspection",
        "social_services",
        "consulate",
        "carrier",
        "health",
        "self_referral",
        "other",
    ],
    ExploitationForm: [
        "sexual",
        "labour",
        "domestic_servitude",
        "forced_begging",
        "forced_criminality",
        "forced_marriage",
        "illegal_adoption",
        "surrogacy",
        "organ_removal",
        "other",
    ],
    LabourSector: [
        "agriculture",
        "construction",
        "manufacturing",
        "hospitality",
        "domestic_work",
        "fishing",
        "mining",
        "retail",
        "cleaning",
        "care",
        "car_wash",
        "nail_bar",
        "other",
    ],
    TraffickingAct: ["recruitment", "transportation", "transfer", "harbouring", "receipt"],
    TraffickingMeans: [
        "threat",
        "force",
        "coercion",
        "abduction",
        "fraud",
        "deception",
        "abuse_of_power",
        "abuse_of_vulnerability",
        "payments_or_benefits",
        "debt_bondage",
        "confiscation_of_documents",
        "isolation",
        "withholding_wages",
        "other",
    ],
    DocumentType: [
        "passport",
        "national_id",
        "residence_permit",
        "birth_certificate",
        "travel_document",
        "driving_licence",
        "other",
        "none",
    ],
    ConsentPurpose: [
        "referral",
        "data_sharing_national",
        "data_sharing_transnational",
        "return_preparation",
        "research_statistics",
        "service_provision",
    ],
    ClosureReason: [
        "support_completed",
        "returned_and_reintegrated",
        "declined_further_support",
        "not_identified_no_reconsideration",
        "transferred_to_other_country",
        "lost_contact",
        "deceased",
        "other",
    ],
    TraffickingClassification: ["trafficking", "smuggling", "both", "undetermined"],
    AgeBand: ["child", "adult", "unknown"],
    TraffickingStatus: ["possible", "actual", "not_a_victim"],
    CaseStatusHTCDS: ["active", "follow_up", "closed", "closed_referred"],
    VulnerabilityFlag: [
        "child",
        "unaccompanied_minor",
        "pregnancy",
        "disability",
        "health_condition",
        "mental_health",
        "substance_dependence",
        "homelessness",
        "other",
    ],
    Indicator: [
        "documents_withheld",
        "debt_bondage",
        "restricted_movement",
        "threats_or_violence",
        "excessive_hours",
        "no_or_little_pay",
        "deceived_about_work",
        "isolation",
        "dependence_on_employer_housing",
        "signs_of_physical_abuse",
        "fear_of_authorities",
        "not_knowing_address",
        "recruited_by_deception",
        "forced_to_commit_crimes",
        "sexual_exploitation_signs",
    ],
}


@pytest.mark.parametrize("cls", list(REQUIRED_VALUES), ids=lambda c: c.__name__)
def test_values_are_exactly_the_agreed_ones(cls: type[Vocabulary]) -> None:
    assert [m.value for m in cls] == REQUIRED_VALUES[cls]


def test_every_vocabulary_is_registered() -> None:
    assert set(VOCABULARIES) == set(REQUIRED_VALUES)
    assert set(LABELS) == set(VOCABULARIES)
    assert set(HTCDS_CODES) == set(VOCABULARIES)
    assert set(HTCDS_FIELDS) == set(VOCABULARIES)


@pytest.mark.parametrize("cls", VOCABULARIES, ids=lambda c: c.__name__)
def test_values_are_lowercase_snake_case(cls: type[Vocabulary]) -> None:
    for member in cls:
        assert SNAKE.match(member.value), member
        assert member.name == member.value  # other modules use Role.ngo_caseworker


def test_members_are_plain_strings() -> None:
    assert Role.admin == "admin"
    assert f"{ExploitationForm.forced_begging}" == "forced_begging"
    assert AgencyType("police") is AgencyType.police


def test_exploitation_purpose_is_folded_into_form() -> None:
    assert ExploitationPurpose is ExploitationForm


# --------------------------------------------------------------------------- #
# Labels
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("cls", VOCABULARIES, ids=lambda c: c.__name__)
def test_every_member_has_a_short_english_label(cls: type[Vocabulary]) -> None:
    assert set(LABELS[cls]) == set(cls)
    for member in cls:
        text = label(member)
        assert text == member.label
        assert text
        assert text == text.strip()
        assert len(text) <= 60
        assert text[0].isupper()


def test_labels_examples() -> None:
    assert label(ExploitationForm.forced_begging) == "Forced begging"
    assert label(Role.admin) == "Administrator"
    assert choices(Sex) == [
        ("female", "Female"),
        ("male", "Male"),
        ("other", "Other"),
        ("unknown", "Unknown"),
    ]


def test_same_value_in_two_vocabularies_is_not_confused() -> None:
    # StrEnum members hash like their value; the tables must not merge them.
    assert AgencyType.ngo == DetectingOrganisationType.ngo  # plain str equality
    assert label(AgeBand.unknown) == "Age unknown"
    assert label(Sex.unknown) == "Unknown"
    assert label(DocumentType.other) == "Other document"
    assert label(ExploitationForm.other) == "Other"
    assert htcds_code(ExploitationForm.other) == "Other"
    assert htcds_code(LabourSector.other) is None
    assert htcds_code(TraffickingMeans.debt_bondage) == "DebtBondage"
    assert htcds_code(Indicator.debt_bondage) == "DebtBondage"
    assert htcds_code(AgeBand.child) is None
    assert htcds_code(VulnerabilityFlag.child) is None


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        LABELS[Sex][Sex.male] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        HTCDS_CODES[Sex][Sex.male] = "x"  # type: ignore[index]


# --------------------------------------------------------------------------- #
# HTCDS mapping
# --------------------------------------------------------------------------- #

# The mappings this module claims, checked member by member.
CLAIMED_HTCDS: dict[type[Vocabulary], tuple[str, dict[str, str | None]]] = {
    ExploitationForm: (
        "vic_TypeOfExploitation",
        {
            "sexual": "SexualExploitation",
            "labour": "ForcedLabour",
            "domestic_servitude": "Servitude",
            "forced_begging": "ForcedBegging",
            "forced_criminality": None,
            "forced_marriage": "ForcedMarriage",
            "illegal_adoption": "ForcedAdoption",
            "surrogacy": "Surrogacy",
            "organ_removal": "OrganRemoval",
            "other": "Other",
        },
    ),
    TraffickingStatus: (
        "vic_TraffickingStatus",
        {
            "possible": "PossibleVictimOfTrafficking",
            "actual": "ActualVictimOfTrafficking",
            "not_a_victim": "NotAVictimOfTrafficking",
        },
    ),
    CaseStatusHTCDS: (
        "cas_Status",
        {
            "active": "Active",
            "follow_up": "FollowUp",
            "closed": "Closed",
            "closed_referred": "ClosedReferred",
        },
    ),
    Sex: (
        "prs_Gender",
        {
            "female": "Feminine",
            "male": "Masculine",
            "other": None,
            "unknown": "NonSpecifiedUnknown",
        },
    ),
    TraffickingMeans: (
        "vic_MethodsOfControl",
        {
            "threat": "Threats",
            "force": "PhysicalAbuse",
            "coercion": None,
            "abduction": None,
            "fraud": "FalsePromises",
            "deception": "FalsePromises",
            "abuse_of_power": None,
            "abuse_of_vulnerability": None,
            "payments_or_benefits": None,
            "debt_bondage": "DebtBondage",
            "confiscation_of_documents": "WithholdsDocuments",
            "isolation": "RestrictsMovement",
            "withholding_wages": "TakesEarnings",
            "other": "Other",
        },
    ),
}

# Allowed value lists from HTCDS (v2.0 Field Definitions / official survey form).
HTCDS_ALLOWED: dict[str, set[str]] = {
    "vic_TypeOfExploitation": {
        "ForcedLabour",
        "SexualExploitation",
        "ChildLabour",
        "ForcedMarriage",
        "Servitude",
        "ForcedMilitaryByNonStateActors",
        "OrganRemoval",
        "ForcedBegging",
        "ForcedAdoption",
        "Surrogacy",
        "Other",
    },
    "vic_MethodsOfControl": {
        "DebtBondage",
        "TakesEarnings",
        "RestrictsFinancialAccess",
        "Threats",
        "PsychologicalAbuse",
        "PhysicalAbuse",
        "SexualAbuse",
        "FalsePromises",
        "PsychoactiveSubstances",
        "RestrictsMovement",
        "RestrictsMedicalCare",
        "ExcessiveWorkingHours",
        "UsesChildren",
        "ThreatOfLawEnforcement",
        "WithholdsNecessities",
        "WithholdsDocuments",
        "Other",
    },
    "vic_ForcedLabourIndustry": {
        "A_AgricultureForestryAndFishing",
        "B_MiningAndQuarrying",
        "C_Manufacturing",
        "D_ElectricityGasSteamAndAirConditioningSupply",
        "E_WaterSupplySewerageWasteManagement",
        "F_Construction",
        "G_WholesaleAndRetailTradeRepairOfMotorVehicles",
        "H_TransportationAndStorage",
        "I_AccommodationAndFoodServiceActivities",
        "J_InformationAndCommunication",
        "K_FinancialAndInsuranceActivities",
        "L_RealEstateActivities",
        "M_ProfessionalScientificAndTechnicalActivities",
        "N_AdministrativeAndSupportServiceActivities",
        "O_PublicAdministrationAndDefence",
        "P_Education",
        "Q_HumanHealthAndSocialWorkActivities",
        "R_ArtsEntertainmentAndRecreation",
        "S_OtherServiceActivities",
        "T_ActivitiesOfHouseholdsAsEmployers",
        "U_ActivitiesOfExtraterritorialOrganizations",
    },
    "prs_Gender": {
        "Feminine",
        "Masculine",
        "TransgenderFeminine",
        "TransgenderMasculine",
        "NonConforming",
        "NonSpecifiedUnknown",
    },
    "vic_TraffickingStatus": {
        "PossibleVictimOfTrafficking",
        "ActualVictimOfTrafficking",
        "NotAVictimOfTrafficking",
    },
    "cas_Status": {"Active", "FollowUp", "Closed", "ClosedReferred"},
    "hte_Type": {"Recruitment", "Transit", "Exploitation"},
    "org_Type": {
        "NGO",
        "LawEnforcement",
        "HealthServiceOrganisation",
        "CentralGovernmentOrganisation",
        "LocalGovernmentOrganisation",
        "ImmigrationService",
        "LegalService",
        "CorporateBusiness",
    },
}


@pytest.mark.parametrize("cls", list(CLAIMED_HTCDS), ids=lambda c: c.__name__)
def test_claimed_htcds_mapping(cls: type[Vocabulary]) -> None:
    field, expected = CLAIMED_HTCDS[cls]
    assert htcds_field(cls) == field
    assert {m.value: htcds_code(m) for m in cls} == expected
    assert {m.value: m.htcds for m in cls} == expected


@pytest.mark.parametrize("cls", VOCABULARIES, ids=lambda c: c.__name__)
def test_htcds_covers_every_member_explicitly(cls: type[Vocabulary]) -> None:
    # Every member has an entry (None counts as "checked: no equivalent").
    assert set(HTCDS_CODES[cls]) == set(cls)


@pytest.mark.parametrize("cls", VOCABULARIES, ids=lambda c: c.__name__)
def test_htcds_codes_are_valid_values_of_their_field(cls: type[Vocabulary]) -> None:
    field = htcds_field(cls)
    codes = {code for code in HTCDS_CODES[cls].values() if code is not None}
    if field is None:
        assert codes == set()
    elif field in HTCDS_ALLOWED:
        assert codes <= HTCDS_ALLOWED[field]
        assert codes, f"{cls.__name__} maps to {field} but has no codes"
    else:
        # Free-text HTCDS field (cas_ReasonForCaseClosure): no codes.
        assert field == "cas_ReasonForCaseClosure"
        assert codes == set()


def test_labour_sector_isic_sections() -> None:
    assert htcds_code(LabourSector.agriculture) == "A_AgricultureForestryAndFishing"
    assert htcds_code(LabourSector.fishing) == "A_AgricultureForestryAndFishing"
    assert htcds_code(LabourSector.domestic_work) == "T_ActivitiesOfHouseholdsAsEmployers"
    assert htcds_code(LabourSector.hospitality) == "I_AccommodationAndFoodServiceActivities"
    assert htcds_code(LabourSector.nail_bar) == "S_OtherServiceActivities"
    assert htcds_code(LabourSector.other) is None


def test_vocabularies_without_htcds_equivalent() -> None:
    for cls in (
        Role,
        DocumentType,
        ConsentPurpose,
        ClosureReason,
        TraffickingClassification,
        AgeBand,
        VulnerabilityFlag,
    ):
        assert all(htcds_code(m) is None for m in cls), cls


def test_closure_reason_to_case_status() -> None:
    assert (
        htcds_case_status_for_closure(ClosureReason.transferred_to_other_country)
        is CaseStatusHTCDS.closed_referred
    )
    for reason in ClosureReason:
        if reason is not ClosureReason.transferred_to_other_country:
            assert htcds_case_status_for_closure(reason) is CaseStatusHTCDS.closed


# --------------------------------------------------------------------------- #
# age_band: CETS 197 Art. 10(3)
# --------------------------------------------------------------------------- #

ON = date(2025, 6, 15)


def test_age_on_basic() -> None:
    assert age_on(date(2007, 6, 15), ON) == 18
    assert age_on(date(2007, 6, 16), ON) == 17
    assert age_on(ON, ON) == 0


def test_seventeen_years_364_days_is_child() -> None:
    dob = date(2007, 6, 16)  # 17 years and 364 days old on ON
    assert date(2025, 6, 16) - ON == timedelta(days=1)  # 18th birthday is tomorrow
    assert age_on(dob, ON) == 17
    assert age_band(dob, None, False, ON) is AgeBand.child


def test_eighteenth_birthday_exactly_is_adult() -> None:
    assert age_band(date(2007, 6, 15), None, False, ON) is AgeBand.adult


def test_leap_day_birthday_turns_18_on_1_march_in_common_years() -> None:
    dob = date(2008, 2, 29)
    assert age_band(dob, None, False, date(2026, 2, 28)) is AgeBand.child
    assert age_band(dob, None, False, date(2026, 3, 1)) is AgeBand.adult


def test_uncertain_without_dob_is_child() -> None:
    assert age_band(None, None, True, ON) is AgeBand.child


def test_uncertain_with_adult_dob_is_child_protective_reading() -> None:
    # A document saying "adult" does not override reasons to believe a child.
    assert age_band(date(1990, 1, 1), None, True, ON) is AgeBand.child
    assert age_band(None, 30, True, ON) is AgeBand.child


def test_estimated_age() -> None:
    assert age_band(None, 17, False, ON) is AgeBand.child
    assert age_band(None, 18, False, ON) is AgeBand.adult
    assert age_band(None, 0, False, ON) is AgeBand.child


def test_conflicting_dob_and_estimate_resolve_to_child() -> None:
    assert age_band(date(1990, 1, 1), 16, False, ON) is AgeBand.child
    assert age_band(date(2010, 1, 1), 25, False, ON) is AgeBand.child


def test_nothing_known_is_unknown() -> None:
    assert age_band(None, None, False, ON) is AgeBand.unknown


def test_adult_by_dob() -> None:
    assert age_band(date(1990, 1, 1), None, False, ON) is AgeBand.adult


def test_age_band_rejects_impossible_input() -> None:
    with pytest.raises(ValueError, match="after"):
        age_band(date(2030, 1, 1), None, False, ON)
    with pytest.raises(ValueError, match="negative"):
        age_band(None, -1, False, ON)


# --------------------------------------------------------------------------- #
# Country and language codes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("code", ["GB", "FR", "RO", "NG", "VN", "AL", "XK", "UA", "MD"])
def test_valid_country_codes(code: str) -> None:
    assert is_country_code(code)


@pytest.mark.parametrize(
    "code",
    ["UK", "gb", "Gb", "QQ", "EU", "EL", "YU", "GBR", "G", "", " GB", "xk", "ZZ"],
)
def test_invalid_country_codes(code: str) -> None:
    assert not is_country_code(code)


@pytest.mark.parametrize("code", ["en", "fr", "ro", "sq", "uk", "vi", "fra", "fre", "ger", "rom"])
def test_valid_language_codes(code: str) -> None:
    assert is_language_code(code)


def test_language_collective_and_special_codes() -> None:
    assert is_language_code("ber")  # ISO 639-2 collective: Berber languages
    assert is_language_code("und")  # undetermined
    assert is_language_code("mul")  # multiple languages


@pytest.mark.parametrize("code", ["EN", "Fr", "xx", "e", "english", "", "qaa", "en-GB", "zz"])
def test_invalid_language_codes(code: str) -> None:
    assert not is_language_code(code)


class Person(BaseModel):
    nationality: CountryCode
    language: LanguageCode | None = None


def test_country_code_type_normalises_case() -> None:
    assert Person(nationality=" gb ").nationality == "GB"
    assert Person(nationality="xk").nationality == "XK"
    assert Person(nationality="RO", language="EN").language == "en"
    assert Person(nationality="RO", language="Fra").language == "fra"


def test_country_code_type_readable_422_message() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Person(nationality="QQ")
    errors = excinfo.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == ("nationality",)
    assert errors[0]["type"] == "value_error"
    assert errors[0]["msg"] == "Value error, 'QQ' is not an ISO 3166-1 alpha-2 country code"


def test_country_code_type_uk_hints_gb() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Person(nationality="UK")
    msg = excinfo.value.errors()[0]["msg"]
    assert "'UK' is not an ISO 3166-1 alpha-2 country code" in msg
    assert "'GB'" in msg


def test_language_code_type_readable_message() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Person(nationality="GB", language="xx")
    errors = excinfo.value.errors()
    assert errors[0]["loc"] == ("language",)
    assert errors[0]["msg"] == "Value error, 'xx' is not an ISO 639-1, 639-2 or 639-3 language code"


def test_country_code_type_json_schema_is_string() -> None:
    schema = Person.model_json_schema()
    assert schema["properties"]["nationality"]["type"] == "string"


def test_country_name_english_and_french() -> None:
    assert country_name("GB") == "United Kingdom"
    assert country_name("de", "fr") == "Allemagne"
    assert country_name("XK") == "Kosovo"
    assert country_name("XK", "fr") == "Kosovo"
    assert country_name("AL", "fr") == "Albanie"


def test_country_name_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="not an ISO 3166-1"):
        country_name("UK")
    with pytest.raises(ValueError, match="unknown locale"):
        country_name("GB", "xx_not_a_locale")


def test_module_exports_resolve() -> None:
    for name in vocab.__all__:
        assert hasattr(vocab, name), name
