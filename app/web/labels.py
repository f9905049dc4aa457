"""Screen labels for codes that have no label elsewhere (stages, events, audit actions...).

Every label is English source text marked with N_() for extraction; templates translate it
with the request's locale. Vocabulary labels (app/vocab.py) are extracted by a custom
extractor (app/web/i18n.py) and translated the same way.
"""

from __future__ import annotations

from app.web.i18n import N_

STAGES: dict[str, str] = {
    "detected": N_("Detected"),
    "presumed_victim": N_("Presumed victim"),
    "referred": N_("Referred"),
    "reasonable_grounds_pending": N_("Reasonable-grounds decision pending"),
    "recovery_reflection": N_("Recovery and reflection period"),
    "identification_pending": N_("Identification decision pending"),
    "identified": N_("Identified as a victim"),
    "not_identified": N_("Not identified"),
    "reconsideration": N_("Reconsideration"),
    "long_term_support": N_("Long-term support"),
    "return_planning": N_("Return planning"),
    "returned_handed_over": N_("Returned and handed over"),
    "reintegration_monitoring": N_("Reintegration monitoring"),
    "closed": N_("Closed"),
    "declined_formal_identification": N_("Declined formal identification"),
    "lost_contact": N_("Lost contact"),
    "missing_child": N_("Missing child"),
}

EVENTS: dict[str, str] = {
    "record_screening": N_("Record screening"),
    "refer": N_("Refer to the competent authority"),
    "decline_formal_identification": N_("Record that the person declines formal identification"),
    "consent_to_referral": N_("Record consent to referral"),
    "accept_referral": N_("Accept the referral"),
    "positive_reasonable_grounds": N_("Positive reasonable-grounds decision"),
    "propose_negative_decision": N_("Propose a negative decision"),
    "negative_reasonable_grounds": N_("Confirm the negative reasonable-grounds decision"),
    "start_identification": N_("Start the identification decision"),
    "positive_identification": N_("Positive identification decision"),
    "negative_identification": N_("Confirm the negative identification decision"),
    "request_reconsideration": N_("Request reconsideration"),
    "uphold_negative": N_("Uphold the negative decision"),
    "overturn_to_recovery": N_("Overturn: start recovery and reflection"),
    "overturn_to_identified": N_("Overturn: identified as a victim"),
    "start_long_term_support": N_("Start long-term support"),
    "plan_return": N_("Start return planning"),
    "cosign_return": N_("Co-sign the return"),
    "cancel_return": N_("Cancel the return"),
    "confirm_return_handover": N_("Confirm the return handover"),
    "start_reintegration_monitoring": N_("Start reintegration monitoring"),
    "report_re_trafficking": N_("Report re-trafficking"),
    "report_lost_contact": N_("Report lost contact"),
    "report_missing_child": N_("Report a missing child"),
    "contact_restored": N_("Contact restored"),
    "close": N_("Close the case"),
}

DEADLINE_KINDS: dict[str, str] = {
    "referral": N_("Referral"),
    "reasonable_grounds_decision": N_("Reasonable-grounds decision"),
    "first_support_contact": N_("First support contact"),
    "reflection_minimum_end": N_("End of the minimum reflection period"),
    "identification_decision": N_("Identification decision"),
    "reconsideration_window_end": N_("End of the reconsideration window"),
    "move_on_end": N_("End of the move-on period"),
    "residence_permit_expiry": N_("Residence permit expiry"),
    "return_follow_up": N_("Follow-up after return"),
    "lost_contact_check": N_("Contact check"),
}

DEADLINE_STATUSES: dict[str, str] = {
    "met": N_("Met"),
    "overdue": N_("Overdue"),
    "due_soon": N_("Due soon"),
    "pending": N_("Pending"),
}

DEADLINE_BADGES = {
    "met": "badge-met",
    "overdue": "badge-overdue",
    "due_soon": "badge-due-soon",
    "pending": "badge-pending",
}

AUDIT_ACTIONS: dict[str, str] = {
    "access_denied": N_("Access refused"),
    "assessment_recorded": N_("Assessment recorded"),
    "assistance_recorded": N_("Assistance recorded"),
    "break_glass": N_("Emergency access granted"),
    "break_glass_reviewed": N_("Emergency access reviewed"),
    "case_registered": N_("Case registered"),
    "case_share_revoked": N_("Referral revoked"),
    "case_shared": N_("Case shared with an agency"),
    "case_updated": N_("Case updated"),
    "case_viewed": N_("Case viewed"),
    "consent_recorded": N_("Consent recorded"),
    "consent_withdrawn": N_("Consent withdrawn"),
    "csrf_rejected": N_("Unverified request refused"),
    "duplicates_checked": N_("Duplicate check"),
    "fields_read": N_("Personal data read"),
    "fields_revealed": N_("Personal data revealed"),
    "guardian_assigned": N_("Guardian assigned"),
    "note_added": N_("Note added"),
    "proceedings_event": N_("Criminal proceedings updated"),
    "residence_permit_event": N_("Residence permit updated"),
    "transition": N_("Workflow step"),
    "transition_refused": N_("Workflow step refused"),
    "victim_erased": N_("Personal data erased"),
    "victim_updated": N_("Personal data updated"),
}

FIELD_GROUPS: dict[str, str] = {
    "identity": N_("Identity"),
    "documents": N_("Documents"),
    "contact": N_("Contact details"),
    "location": N_("Location"),
    "accommodation": N_("Accommodation"),
    "vulnerability": N_("Vulnerability"),
    "health": N_("Health"),
    "exploitation": N_("Exploitation"),
    "detection": N_("Detection"),
    "needs": N_("Needs and support plan"),
    "statements": N_("Statements"),
    "notes": N_("Notes"),
}

FIELDS: dict[str, str] = {
    "given_name": N_("Given name"),
    "family_name": N_("Family name"),
    "aliases": N_("Other names used"),
    "date_of_birth": N_("Date of birth"),
    "estimated_age": N_("Estimated age"),
    "age_uncertain": N_("Age uncertain"),
    "sex": N_("Sex"),
    "gender_identity": N_("Gender identity"),
    "nationalities": N_("Nationalities"),
    "languages": N_("Languages"),
    "interpreter_needed": N_("Interpreter needed"),
    "documents": N_("Identity documents"),
    "phone": N_("Phone"),
    "email": N_("Email"),
    "current_location": N_("Current location"),
    "current_address": N_("Current address"),
    "accommodation": N_("Accommodation"),
    "unaccompanied_minor": N_("Unaccompanied minor"),
    "pregnant": N_("Pregnant"),
    "disability": N_("Disability"),
    "health_notes": N_("Health notes"),
    "exploitation_acts": N_("Acts"),
    "exploitation_means": N_("Means"),
    "exploitation_form_details": N_("Details of the exploitation"),
    "labour_sector": N_("Labour sector"),
    "online_exploitation": N_("Online exploitation"),
    "countries_of_recruitment": N_("Countries of recruitment"),
    "countries_of_transit": N_("Countries of transit"),
    "countries_of_exploitation": N_("Countries of exploitation"),
    "exploitation_start": N_("Exploitation started"),
    "exploitation_end": N_("Exploitation ended"),
    "detection_place": N_("Place of detection"),
    "indicators": N_("Indicators"),
    "needs_assessment": N_("Needs assessment"),
    "support_plan": N_("Support plan"),
    "statement_summary": N_("Summary of statements"),
    "body": N_("Note"),
    # Not sealed, shown on forms and summaries.
    "exploitation_forms": N_("Forms of exploitation"),
    "detected_on": N_("Date of detection"),
    "detecting_org_type": N_("Detected by"),
    "document_type": N_("Document type"),
    "document_number": N_("Document number"),
    "document_country": N_("Issuing country"),
}

REVEAL_PURPOSES: dict[str, str] = {
    "case_work": N_("Case work"),
    "identification_decision": N_("Identification decision"),
    "safety_planning": N_("Safety planning"),
    "referral_preparation": N_("Preparing a referral"),
    "return_preparation": N_("Preparing a return"),
    "guardian_duty": N_("Guardian duty"),
    "data_subject_request": N_("Request from the person concerned"),
}

# Purposes recorded with reads of a case (reveal purposes plus the screens' own reads).
READ_PURPOSES: dict[str, str] = {
    **REVEAL_PURPOSES,
    "screen": N_("Case page"),
    "view": N_("Case page"),
    "registration": N_("Registration"),
    "api_read": N_("Read through the API"),
    "after_update": N_("After an update"),
    "notes": N_("Notes"),
}

ASSESSMENTS: dict[str, str] = {
    "guardian_request": N_("Guardian requested"),
    "best_interests": N_("Best-interests assessment"),
    "support_plan": N_("Support and safety plan"),
    "pre_return_risk": N_("Pre-return risk assessment"),
    "receiving_organisation": N_("Receiving organisation confirmed"),
    "reintegration_plan": N_("Reintegration plan"),
}

NOTE_KINDS: dict[str, str] = {
    "note": N_("Note"),
    "assistance": N_("Assistance delivered"),
    "contact": N_("Contact with the person"),
    "decision_reason": N_("Reason for a decision"),
    **ASSESSMENTS,
}

PROCEEDINGS_STATUSES: dict[str, str] = {
    "none": N_("No proceedings"),
    "investigation": N_("Investigation"),
    "prosecution": N_("Prosecution"),
    "trial": N_("Trial"),
    "outcome": N_("Outcome recorded"),
    "discontinued": N_("Discontinued"),
}

PROCEEDINGS_EVENTS: dict[str, str] = {
    "open_investigation": N_("Open an investigation"),
    "charge": N_("Charges brought"),
    "start_trial": N_("Trial started"),
    "record_outcome": N_("Record the outcome"),
    "discontinue": N_("Discontinue"),
    "claim_compensation": N_("Compensation claimed"),
}

PERMIT_STATUSES: dict[str, str] = {
    "none": N_("No residence permit"),
    "applied": N_("Applied for"),
    "granted": N_("Granted"),
    "refused": N_("Refused"),
    "expired": N_("Expired"),
}

PERMIT_EVENTS: dict[str, str] = {
    "apply": N_("Application made"),
    "grant": N_("Permit granted"),
    "refuse": N_("Permit refused"),
    "expire": N_("Permit expired"),
    "apply_for_renewal": N_("Renewal applied for"),
}

DUPLICATE_INDEXES: dict[str, str] = {
    "family_name_dob": N_("family name and date of birth"),
    "full_name_dob": N_("full name and date of birth"),
    "document": N_("identity document"),
}

GUARDS: dict[str, str] = {
    "not_possible_in_stage": N_("This step is not possible at the current stage."),
    "role_not_permitted": N_("Your role may not take this step."),
    "reason_required": N_("Give a reason for this step."),
    "legal_basis_required": N_("Give the legal basis for this decision."),
    "indicators_required": N_(
        "Screening requires at least one trafficking indicator to be recorded."
    ),
    "referral_consent_required": N_(
        "Referring an adult requires their informed consent to referral to be recorded."
    ),
    "guardian_request_required": N_(
        "Referring a child requires a guardian to have been requested or assigned."
    ),
    "child_cannot_decline": N_(
        "A child, or a person whose age is uncertain, cannot decline formal identification."
    ),
    "competent_authority_required": N_(
        "This decision may only be taken by the competent authority."
    ),
    "reflection_period_running": N_(
        "An identification decision cannot be taken before the minimum recovery and "
        "reflection period has elapsed."
    ),
    "reasonable_grounds_required": N_(
        "An identification decision requires a positive reasonable-grounds decision on record."
    ),
    "not_a_reasonable_grounds_negative": N_(
        "Overturning to recovery and reflection applies only to a negative "
        "reasonable-grounds decision."
    ),
    "negative_already_proposed": N_(
        "A negative decision has already been proposed and awaits a second reviewer."
    ),
    "negative_proposal_required": N_("A negative decision must first be proposed by one reviewer."),
    "second_reviewer_required": N_(
        "A negative decision must be confirmed by a second reviewer, not the one who proposed it."
    ),
    "reconsideration_window_closed": N_(
        "Reconsideration may only be requested within the reconsideration window."
    ),
    "support_plan_required": N_("Long-term support requires a support and safety plan."),
    "return_consent_required": N_(
        "Return requires the person's informed, voluntary consent to be recorded."
    ),
    "risk_assessment_required": N_("Return requires a completed pre-return risk assessment."),
    "receiving_organisation_required": N_("Return requires a confirmed receiving organisation."),
    "data_transfer_consent_required": N_(
        "Return requires consent to transfer case data to the recipient."
    ),
    "guardian_required": N_("This step requires an assigned guardian."),
    "best_interests_assessment_required": N_(
        "A child's return requires a best-interests assessment."
    ),
    "guardian_cosign_required": N_("A child's return requires the guardian's co-signature."),
    "child_case_only": N_("A guardian co-signs the return of a child only."),
    "stage_before_return_unknown": N_(
        "The stage from which return planning started is not recorded."
    ),
    "reintegration_plan_required": N_("Reintegration monitoring requires a reintegration plan."),
    "child_must_be_reported_missing": N_(
        "A child who loses contact must be reported as a missing child."
    ),
    "missing_child_is_for_children": N_(
        "Missing-child reporting applies to child cases only; report lost contact for an adult."
    ),
    "previous_stage_unknown": N_("The stage before contact was lost is not recorded."),
    "closure_reason_required": N_("Closing a case requires a closure reason."),
    "not_possible_in_status": N_("This step is not possible in the current status."),
}

ERROR_TITLES: dict[int, str] = {
    400: N_("The request could not be processed"),
    401: N_("Please sign in"),
    403: N_("Not allowed"),
    404: N_("Page not found"),
    409: N_("This is not possible right now"),
    410: N_("This record was erased"),
    422: N_("Some values are not valid"),
    428: N_("The request could not be processed"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
}

ERROR_MESSAGES: dict[str, str] = {
    "not_found": N_("There is nothing here, or you do not have access to it."),
    "csrf_failed": N_("This request could not be verified. Reload the page and try again."),
    "forbidden": N_("Your role may not do this."),
    "stale_version": N_(
        "This case changed since you loaded it. Reload the page to see the changes, then try again."
    ),
    "too_many_requests": N_("Too many attempts. Wait a while and try again."),
    "erased": N_("This record was erased and can no longer be read."),
    "integrity_error": N_(
        "Stored data failed an integrity check and was not shown. The incident was logged."
    ),
    "internal_error": N_("Something went wrong on our side. The error was logged."),
    "invalid_input": N_("Some values are not valid. Check the form and try again."),
    "unauthenticated": N_("Please sign in."),
    "mfa_required": N_("Enter the code from your authenticator app."),
    "self_deactivation": N_("You cannot deactivate your own account or agency."),
}

PASSWORD_PROBLEMS: dict[str, str] = {
    "use at least 12 characters": N_("use at least 12 characters"),
    "use at most 256 characters": N_("use at most 256 characters"),
    "this password is too common or contains your user name; choose another": N_(
        "this password is too common or contains your user name; choose another"
    ),
}

ROLE_HOME = {
    "ngo_caseworker": "/cases",
    "social_worker": "/cases",
    "prosecutor": "/cases",
    "guardian": "/cases",
    "focal_point": "/cases",
    "police_officer": "/inbox",
    "coordinator": "/coordinator",
    "admin": "/admin/users",
}
