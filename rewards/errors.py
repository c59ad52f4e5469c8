"""Domain errors: each carries its HTTP status and a stable code, rendered as problem+json."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ValidationFailed(DomainError):
    status, code, title = 422, "validation_error", "The request is not valid"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)


class MalformedRequest(DomainError):
    status, code, title = 400, "malformed_request", "The request body is not valid JSON"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "A valid bearer token is required"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "This token may not do that"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class InvalidLink(DomainError):
    status, code, title = 404, "invalid_link", "This link is not valid"


class LinkExpired(DomainError):
    status, code, title = 410, "link_expired", "This link has expired or was used already"


class SignInRequired(DomainError):
    status, code, title = 401, "sign_in_required", "Please sign in"


class MemberNotActive(DomainError):
    status, code, title = 409, "member_not_active", "The member is not active"


class AgeRestricted(DomainError):
    status, code, title = 422, "age_restricted", "The guest is too young to join the program"


class GuardianConsentRequired(DomainError):
    status, code, title = 422, "guardian_consent_required", "A guardian's consent is required"


class MemberMerged(DomainError):
    status, code, title = 409, "member_merged", "The member was merged into another"

    def __init__(self, detail: str, *, merged_into: int) -> None:
        super().__init__(detail, merged_into=merged_into)


class DuplicateMember(DomainError):
    status, code, title = 409, "duplicate_member", "An active member already has this email, phone or id"


class IdempotencyConflict(DomainError):
    status, code, title = 409, "idempotency_conflict", "This key was used before with a different request"


class TendersDoNotBalance(DomainError):
    status, code, title = 422, "tenders_do_not_balance", "The tenders do not add up to the lines"


class UnsupportedCurrency(DomainError):
    status, code, title = 422, "unsupported_currency", "Only USD is supported"


class RewardNotRedeemable(DomainError):
    status, code, title = 409, "reward_not_redeemable", "The reward cannot be redeemed"


class ReturnExceedsPurchase(DomainError):
    status, code, title = 422, "return_exceeds_purchase", "The return exceeds what was bought"


class UnknownOffer(DomainError):
    status, code, title = 422, "unknown_offer", "The purchase names an offer that was never made"


class UnknownNoticeVersion(DomainError):
    status, code, title = 422, "unknown_notice_version", "The notice version named is not a published one"


class UnknownTermsVersion(DomainError):
    status, code, title = 422, "unknown_terms_version", "The terms version named is not a published one"


class DocumentVersionExists(DomainError):
    status, code, title = 409, "document_version_exists", "This version is published with another text"


class RequestClosed(DomainError):
    status, code, title = 409, "request_closed", "The privacy request was already closed otherwise"


class PersonalDataHeld(DomainError):
    status, code, title = 409, "personal_data_held", "The consumer's personal data is still held"


class SubscriberIsMember(DomainError):
    status, code, title = 409, "subscriber_is_member", "The address belongs to a member: erase the member"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "The request body is too large"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "database_unavailable", "The database cannot be reached; retry shortly"
