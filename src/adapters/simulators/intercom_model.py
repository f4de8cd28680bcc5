"""What the Intercom simulator enforces: API errors, company fields, the data-attribute catalogue.

Shapes and messages follow Intercom's OpenAPI description (2.14) where it gives them; where it is
silent (the wording for an undefined custom attribute or a type mismatch) the text is our own.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

MAX_MONTHLY_SPEND = 2**31 - 1
MAX_STRING_ATTRIBUTE = 255
DATA_TYPES = ("string", "integer", "float", "boolean", "date")
WRITABLE_COMPANY_FIELDS = frozenset(
    {
        "name",
        "plan",
        "size",
        "website",
        "industry",
        "remote_created_at",
        "monthly_spend",
        "custom_attributes",
    }
)


class IntercomError(Exception):
    """An error the simulated API answers with an ``error.list`` body and ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self, request_id: str | None) -> JSON:
        """The ``error.list`` document Intercom sends for this error."""
        error: JSON = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"type": "error.list", "request_id": request_id, "errors": [error]}


def company_not_found() -> IntercomError:
    """404 ``company_not_found``, as for an unknown id or company_id."""
    return IntercomError(404, "company_not_found", "Company Not Found")


def parameter_invalid(message: str, field: str | None = None) -> IntercomError:
    """400 ``parameter_invalid``."""
    return IntercomError(400, "parameter_invalid", message, field=field)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalize_company_fields(body: Mapping[str, Any]) -> JSON:
    """Check the standard writable fields of a company write and return them normalised.

    ``custom_attributes`` and ``company_id`` are left to the caller. ``monthly_spend`` is truncated
    to an integer as Intercom does; ``plan`` stays a plan *name* here.
    """
    out: JSON = {}
    for key in ("name", "website", "industry", "plan"):
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise parameter_invalid(f"{key} must be a string, got {_type_name(value)}", key)
            out[key] = value
    for key in ("size", "remote_created_at"):
        if key in body:
            value = body[key]
            if value is not None and not _is_int(value):
                raise parameter_invalid(f"{key} must be an integer, got {_type_name(value)}", key)
            out[key] = value
    if "monthly_spend" in body:
        value = body["monthly_spend"]
        if value is None:
            value = 0
        if not _is_number(value):
            raise parameter_invalid(
                f"monthly_spend must be a number, got {_type_name(value)}", "monthly_spend"
            )
        if abs(value) > MAX_MONTHLY_SPEND:
            raise parameter_invalid(
                f"monthly_spend must be at most {MAX_MONTHLY_SPEND}", "monthly_spend"
            )
        out["monthly_spend"] = int(value)
    return out


@dataclass
class DataAttribute:
    """One data attribute of a model (standard or custom), as ``/data_attributes`` shows it."""

    name: str
    full_name: str
    label: str
    description: str
    data_type: str
    api_writable: bool
    custom: bool = False
    archived: bool = False
    model: str = "company"
    ui_writable: bool = False
    messenger_writable: bool = True
    id: int | None = None
    options: list[str] | None = None
    created_at: int | None = None
    updated_at: int | None = None

    def to_json(self) -> JSON:
        """The ``data_attribute`` object (custom attributes carry id and timestamps)."""
        out: JSON = {} if self.id is None else {"id": self.id}
        out.update(
            type="data_attribute",
            name=self.name,
            full_name=self.full_name,
            label=self.label,
            description=self.description,
            data_type=self.data_type,
        )
        if self.options is not None:
            out["options"] = list(self.options)
        out.update(
            api_writable=self.api_writable,
            ui_writable=self.ui_writable,
            messenger_writable=self.messenger_writable,
            custom=self.custom,
            archived=self.archived,
        )
        if self.custom:
            out.update(created_at=self.created_at, updated_at=self.updated_at)
        out["model"] = self.model
        return out

    def check(self, value: Any) -> Any:
        """Validate a value written to this (custom) attribute; return what is stored."""
        if value is None:
            return None
        dt = self.data_type
        ok = {
            "string": isinstance(value, str),
            "integer": _is_int(value),
            "float": _is_number(value),
            "boolean": isinstance(value, bool),
            "date": _is_int(value),
        }[dt]
        if not ok:
            raise parameter_invalid(
                f"Custom attribute '{self.name}' expects {dt}, got {_type_name(value)}",
                f"custom_attributes.{self.name}",
            )
        if self.options is not None and value not in self.options:
            raise parameter_invalid(
                f"Custom attribute '{self.name}' must be one of: {', '.join(self.options)}",
                f"custom_attributes.{self.name}",
            )
        if dt == "string" and len(value) > MAX_STRING_ATTRIBUTE:
            raise parameter_invalid(
                f"Custom attribute '{self.name}' is longer than {MAX_STRING_ATTRIBUTE} characters",
                f"custom_attributes.{self.name}",
            )
        return float(value) if dt == "float" else value


# Intercom's standard company attributes, in the order of OAS 2.14:
# name | full_name | label | data_type | api_writable (w) or not (-) | description
_STANDARD_COMPANY = """
name|name|Company name|string|w|The name of a company
company_id|company_id|Company ID|string|-|A number identifying a company
last_request_at|last_request_at|Company last seen|date|-|The last day anyone from a company \
visited your site or app
remote_created_at|remote_created_at|Company created at|date|w|The day a company was added to \
Intercom
user_count|user_count|People|integer|-|The number of people in a company
session_count|session_count|Company web sessions|integer|-|All visits from anyone in a company \
to your product's site or app
name|plan.name|Plan|string|-|A specific plan or level within your product that companies have \
signed up to
monthly_spend|monthly_spend|Monthly Spend|float|w|The monthly revenue you receive from a company
size|size|Company size|integer|w|The number of people employed in this company, expressed as a \
single number
industry|industry|Company industry|string|w|The category or domain this company belongs to e.g. \
'ecommerce' or 'SaaS'
website|website|Company website|string|w|The web address for the company's primary marketing site
id|id|ID|string|-|The Intercom defined id representing the company
created_at|created_at|Created at|date|-|The time the company was added to Intercom
updated_at|updated_at|Updated at|date|-|The last time the company was updated
id|plan.id|Plan ID|string|-|The Intercom defined id representing the plan
app_id|app_id|App ID|string|-|The Intercom defined id representing the app
"""


def _standard_attributes() -> list[DataAttribute]:
    rows = (line.split("|") for line in _STANDARD_COMPANY.strip().splitlines())
    return [
        DataAttribute(name, full_name, label, description, data_type, writable == "w")
        for name, full_name, label, data_type, writable, description in rows
    ]


def _valid_attribute_name(name: str) -> bool:
    # Intercom: "alphanumeric characters, currency symbols, and hyphens"; its own examples also
    # use spaces ("The One Ring") and underscores ("paid_subscriber").
    return bool(name.strip()) and all(
        ch.isalnum() or ch in " _-" or unicodedata.category(ch) == "Sc" for ch in name
    )


def _option_values(raw: Any) -> list[str]:
    """The values of an ``options`` list (``[{"value": "1-10"}, ...]``); at least two."""
    items = raw if isinstance(raw, list) else []
    values = [item.get("value") for item in items if isinstance(item, dict)]
    if len(values) < 2 or not all(isinstance(v, str) and v for v in values):
        raise parameter_invalid("You must have at least two options on a list type data attribute")
    return [str(v) for v in values]


@dataclass
class AttributeCatalog:
    """The data attributes of a workspace: the standard company ones plus custom ones.

    Not thread-safe on its own; :class:`IntercomState` guards it with its lock.
    """

    attributes: list[DataAttribute] = field(default_factory=list)
    next_id: int = 1

    @classmethod
    def standard(cls) -> AttributeCatalog:
        """A catalogue holding only Intercom's standard company attributes."""
        return cls(_standard_attributes())

    def __iter__(self) -> Iterator[DataAttribute]:
        return iter(self.attributes)

    def custom(self, name: str, model: str = "company") -> DataAttribute | None:
        """The live (unarchived) custom attribute called ``name``, if any."""
        for attr in self.attributes:
            if attr.custom and attr.model == model and attr.name == name and not attr.archived:
                return attr
        return None

    def by_id(self, attribute_id: int) -> DataAttribute:
        """The custom attribute with this id, or 404 ``not_found``."""
        for attr in self.attributes:
            if attr.id == attribute_id:
                return attr
        raise IntercomError(404, "not_found", "Resource Not Found")

    def create(self, body: Mapping[str, Any], now: int) -> DataAttribute:
        """Create a custom attribute from a ``POST /data_attributes`` body (B7 rules)."""
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise IntercomError(400, "parameter_not_found", "name not specified", field="name")
        model = body.get("model")
        if model not in ("company", "contact"):
            raise parameter_invalid(
                "The Data Attribute model field must be either contact or company"
            )
        if not _valid_attribute_name(name):
            raise parameter_invalid(
                "Your name for this attribute must only contain alphanumeric characters, "
                "currency symbols, and hyphens"
            )
        taken = {a.name.lower() for a in self.attributes if a.model == model}
        if name.lower() in taken:
            raise parameter_invalid(
                f"You already have '{name}' in your {model} data. "
                f"To save this as new {model} data, use a different name."
            )
        data_type = body.get("data_type")
        options: list[str] | None = None
        if data_type == "datetime":
            data_type = "date"
        elif data_type == "options":
            options, data_type = _option_values(body.get("options")), "string"
        if data_type not in DATA_TYPES:
            raise parameter_invalid("Data Type isn't an option")
        description = body.get("description") or ""
        attr = DataAttribute(
            name=name,
            full_name=f"custom_attributes.{name}",
            label=name,
            description=str(description),
            data_type=str(data_type),
            api_writable=True,
            custom=True,
            model=str(model),
            messenger_writable=bool(body.get("messenger_writable", False)),
            id=self.next_id,
            options=options,
            created_at=now,
            updated_at=now,
        )
        self.next_id += 1
        self.attributes.append(attr)
        return attr

    def update(self, attribute_id: int, body: Mapping[str, Any], now: int) -> DataAttribute:
        """Apply a ``PUT /data_attributes/{id}`` body: description, options, archived."""
        attr = self.by_id(attribute_id)
        if "data_type" in body and body["data_type"] != attr.data_type:
            raise parameter_invalid(
                "The data type of a data attribute cannot be changed via the API"
            )
        if "description" in body:
            attr.description = str(body["description"] or "")
        if "archived" in body:
            attr.archived = bool(body["archived"])
        if "messenger_writable" in body:
            attr.messenger_writable = bool(body["messenger_writable"])
        if "options" in body:
            if attr.options is None:
                raise parameter_invalid(f"'{attr.name}' is not a list type data attribute")
            attr.options = _option_values(body["options"])
        attr.updated_at = now
        return attr

    def check_custom_values(self, values: Any) -> JSON:
        """Validate a ``custom_attributes`` object against the company catalogue."""
        if not isinstance(values, dict):
            raise parameter_invalid("custom_attributes must be an object", "custom_attributes")
        out: JSON = {}
        for key, value in values.items():
            attr = self.custom(key)
            if attr is None:
                raise parameter_invalid(
                    f"Custom attribute '{key}' does not exist", f"custom_attributes.{key}"
                )
            out[key] = attr.check(value)
        return out
