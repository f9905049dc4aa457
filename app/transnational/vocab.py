"""Coded values of the transnational exchange. Stored, signed and audited as they are:
never rename or reuse a value, add a new one."""

from __future__ import annotations

from enum import StrEnum


class PackagePurpose(StrEnum):
    """Why a package crosses the border; each purpose has its own minimal dataset."""

    return_preparation = "return_preparation"
    request_for_information = "request_for_information"
    case_management_handover = "case_management_handover"
    post_return_follow_up = "post_return_follow_up"


class MessageType(StrEnum):
    referral = "referral"
    receipt = "receipt"
    accepted = "accepted"
    rejected = "rejected"
    status = "status"
    risk_assessment = "risk_assessment"
    logistics = "logistics"
    arrival_confirmed = "arrival_confirmed"
    handover_confirmed = "handover_confirmed"
    follow_up = "follow_up"
    re_trafficking = "re_trafficking"
    consent_withdrawn = "consent_withdrawn"


class RejectionReason(StrEnum):
    not_a_national = "not_a_national"
    identity_not_verified = "identity_not_verified"
    no_receiving_capacity = "no_receiving_capacity"
    risk_too_high = "risk_too_high"
    insufficient_information = "insufficient_information"
    duplicate_referral = "duplicate_referral"
    outside_mandate = "outside_mandate"
    other = "other"


class StatusCode(StrEnum):
    in_review = "in_review"
    nationality_verified = "nationality_verified"
    identity_not_verified = "identity_not_verified"
    travel_documents_issued = "travel_documents_issued"
    family_traced = "family_traced"
    information_provided = "information_provided"
    reintegration_plan_in_place = "reintegration_plan_in_place"
    closed = "closed"


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class TravelMode(StrEnum):
    air = "air"
    land = "land"
    sea = "sea"


class FollowUpStatus(StrEnum):
    in_contact_stable = "in_contact_stable"
    in_contact_needs_support = "in_contact_needs_support"
    not_reached = "not_reached"
    lost_contact = "lost_contact"
    re_trafficked = "re_trafficked"
    moved_on = "moved_on"


class KeyRevocationReason(StrEnum):
    compromised = "compromised"
    superseded = "superseded"
    partner_request = "partner_request"
    decommissioned = "decommissioned"


class ReclassificationReason(StrEnum):
    """Why a case's trafficking/smuggling classification changed."""

    initial_assessment = "initial_assessment"
    new_evidence = "new_evidence"
    exploitation_indicators_found = "exploitation_indicators_found"
    no_exploitation_purpose_found = "no_exploitation_purpose_found"
    identification_decision = "identification_decision"
    judicial_finding = "judicial_finding"
    partner_information = "partner_information"
    data_correction = "data_correction"


# The organisation that receives a returning person is a service provider, not a
# focal-point or police body.
RECEIVING_AGENCY_TYPES = frozenset({"ngo", "social_services"})
