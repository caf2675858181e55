"""QBO's error envelopes: the v3 ``Fault``, the gateway's lower-case ``fault`` and the XML
throttle fault. Codes, messages and statuses follow qbo-api.md section 7."""

from __future__ import annotations

from xml.sax.saxutils import escape

INACTIVE_DETAIL = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)


class ApiError(Exception):
    """A v3 fault: one or more errors, a fault type and an HTTP status."""

    def __init__(
        self,
        errors: list[dict],
        *,
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(errors[0]["Detail"] if errors else fault_type)
        self.errors = errors
        self.status = status
        self.fault_type = fault_type

    def fault(self) -> dict:
        """The body of ``"Fault"``, also used as-is inside batch item responses."""
        return {"Error": self.errors, "type": self.fault_type}


class GatewayError(Exception):
    """An authentication or authorization refusal made before the API runs (401/403)."""

    def __init__(self, status: int, code: str, label: str, detail: str, fault_type: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.label = label
        self.detail = detail
        self.fault_type = fault_type

    def body(self, now_ms: int) -> dict:
        """The gateway's lower-case JSON shape, with the null and empty keys QBO sends."""
        message = f"message={self.label}; errorCode={int(self.code):06d}; statusCode={self.status}"
        return {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "error": [
                    {"message": message, "detail": self.detail, "code": self.code, "element": None}
                ],
                "type": self.fault_type,
            },
            "report": None,
            "queryResponse": [],
            "batchItemResponse": [],
            "attachableResponse": [],
            "syncErrorResponse": None,
            "requestId": None,
            "time": now_ms,
            "status": None,
            "cdcresponse": [],
        }


def authentication_failed(detail: str) -> GatewayError:
    return GatewayError(401, "3200", "AuthenticationFailed", detail, "AUTHENTICATION")


def authorization_failed(detail: str) -> GatewayError:
    return GatewayError(403, "3100", "AuthorizationFailed", detail, "AUTHORIZATION")


def error(code: str, message: str, detail: str, element: str = "") -> dict:
    return {"Message": message, "Detail": detail, "code": code, "element": element}


def validation(code: str, message: str, detail: str, element: str = "") -> ApiError:
    return ApiError([error(code, message, detail, element)])


def required(element: str, detail: str | None = None) -> ApiError:
    return validation(
        "2020",
        "Required param missing, need to supply the required value for the API",
        detail or f"Required parameter {element} is missing in the request",
        element,
    )


def length(element: str, maximum: int, supplied: int) -> ApiError:
    return validation(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. "
        f"Min:0 Max:{maximum} supplied:{supplied}",
        element,
    )


def unsupported_property(name: str, entity: str, why: str = "") -> ApiError:
    detail = why or (
        f'Property Name:Unrecognized field "{name}" (class '
        f"com.intuit.schema.finance.v3.{entity}), not marked as ignorable "
        "specified is unsupported or invalid"
    )
    return validation("2010", "Request has invalid or unsupported property", detail, name)


def invalid_reference(element: str, ref_id: str) -> ApiError:
    return validation(
        "2500", "Invalid Reference Id", f"Invalid Reference Id : {element} {ref_id}", element
    )


def inactive_reference(element: str) -> ApiError:
    return validation("610", "Object Not Found", INACTIVE_DETAIL, element)


def not_found() -> ApiError:
    return validation("610", "Object Not Found", INACTIVE_DETAIL)


def unsupported_operation(operation: str) -> ApiError:
    return validation(
        "500", "Unsupported Operation", f"Operation {operation} is not supported.", ""
    )


def stale_object(user: str = "Emulator User") -> ApiError:
    return validation(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and {user} were working on this at the same time. "
        f"{user} finished before you did, so your work was not saved.",
    )


def business(detail: str, element: str = "") -> ApiError:
    return validation(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


NAME_SPACE_TAKEN = "Another customer, vendor or employee is already using this name."
NAME_TAKEN = {
    "Customer": NAME_SPACE_TAKEN,
    "Vendor": NAME_SPACE_TAKEN,
    "Employee": NAME_SPACE_TAKEN,
    "Item": "Another product or service is already using this name.",
    "Account": "Another account is already using this name.",
}


def duplicate_name(kind: str, holder: str | None = None) -> ApiError:
    """6240 for a name already used in ``kind``'s name space.

    QBO's Detail does not say which list holds the name (it names all three), and its
    ``element`` is empty. UNCONFIRMED, an emulator addition: for customers, vendors and
    employees ``element`` names the list that holds it, as ``"Vendor.DisplayName"``, and
    the Detail stays QBO's.
    """
    return validation(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : {NAME_TAKEN[kind]} Please use a different name.",
        f"{holder}.DisplayName" if holder else "",
    )


def duplicate_doc_number(doc_number: str, txn_type: str, txn_id: str) -> ApiError:
    return validation(
        "6140",
        "Duplicate Document Number Error",
        "Duplicate Document Number Error : You must specify a different number. "
        f"This number has already been used. DocNumber={doc_number} is assigned to "
        f"TxnType={txn_type} with TxnId={txn_id}",
    )


def amount_mismatch(amount: object) -> ApiError:
    return validation(
        "6070",
        "Amount calculation incorrect in the request",
        f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}",
        "Line.Amount",
    )


def no_name() -> ApiError:
    return validation(
        "6080",
        "No name provided",
        "You must specify a name: DisplayName, or at least one of Title, GivenName, "
        "MiddleName, FamilyName and Suffix.",
        "DisplayName",
    )


def invalid_tax_code(value: str) -> ApiError:
    return validation(
        "6100",
        "Invalid line TaxCode",
        f"Invalid TaxCode ID: {value}. A US line TaxCodeRef must be TAX or NON.",
        "Line.SalesItemLineDetail.TaxCodeRef",
    )


def system_fault() -> ApiError:
    return ApiError(
        [
            error(
                "10000",
                "An application error has occurred while processing your request",
                "System Failure Error: An unexpected error occurred while accessing or "
                "saving your data. Please wait a few minutes and try again.",
            )
        ],
        status=500,
        fault_type="SystemFault",
    )


def throttle_xml(time_text: str) -> bytes:
    """QBO's throttle fault, which arrives as XML even when JSON was requested (section 6)."""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{escape(time_text)}">'
        '<Fault type="SERVICE"><Error code="3001" element="">'
        "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
        "<Detail>The request limit was reached.  Try again later</Detail>"
        "</Error></Fault></IntuitResponse>"
    ).encode()
