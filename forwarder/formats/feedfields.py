"""Cato's API records as the push feed's JSON events: one typed event from a ``fieldsMap``.

The API gives every value of a record's ``fieldsMap`` as text: numbers and booleans
written out (``"event_count": "1"``, ``"static_host": "false"``, ``"time":
"1772448191810"``) and lists joined with ", " (``"app_stack": "TCP, TLS, HTTP(S)"``).
The Events Integration push writes the same event with the same snake_case names
(Cato's ``EventFieldName`` list) but typed: numbers, booleans, arrays. So that
``output.encoding`` gives the same message for the same event from either path, an API
record becomes the push feed's event: the fields below get their JSON type back, the
rest stay text, and entity values (``{"id", "name", "type"}``) stay objects.

Which fields are which: numbers and booleans as Elastic's Cato integration converts
them (``cato_networks`` event pipeline: ``convert`` to long or boolean), ``time`` as
epoch ms (its ``UNIX_MS`` date), ``account_id`` a number as in the push feed's samples;
lists as the push feed's samples write arrays (``app_stack``, ``categories``,
``custom_category_id``) and the names that hold several values in Cato's field list.
A value that does not read as its type (``"dest_port": ""``) stays text: nothing is lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Fields the push feed writes as JSON numbers.
INTEGER_FIELDS = frozenset(
    {
        "time",
        "account_id",
        "src_port",
        "dest_port",
        "event_count",
        "application_risk",
        "http_response_code",
        "qos_priority",
        "request_size",
        "response_size",
        "transaction_size",
    }
)
# Fields the push feed writes as JSON booleans.
BOOLEAN_FIELDS = frozenset(
    {"static_host", "is_sanctioned_app", "is_sinkhole", "tcp_acceleration", "tls_inspection"}
)
# Fields the push feed writes as JSON arrays (the API joins them with ", ").
LIST_FIELDS = frozenset(
    {
        "app_stack",
        "categories",
        "custom_category_id",
        "custom_category_name",
        "device_categories",
        "mitre_attack_subtechniques",
        "mitre_attack_tactics",
        "mitre_attack_techniques",
    }
)
LIST_SEPARATOR = ", "
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,18})\Z")
_BOOLEANS = {"true": True, "false": False}


def typed_value(name: str, value: Any) -> Any:
    """*value* of field *name* as the push feed types it (text that does not fit stays text)."""
    if not isinstance(value, str):
        return value  # an entity object, or already typed
    if name in INTEGER_FIELDS:
        return int(value) if _INTEGER.match(value) else value
    if name in BOOLEAN_FIELDS:
        return _BOOLEANS.get(value, value)
    if name in LIST_FIELDS:
        return value.split(LIST_SEPARATOR) if value else []
    return value


_TYPED = INTEGER_FIELDS | BOOLEAN_FIELDS | LIST_FIELDS


def typed_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The push feed's event for an API record's ``fieldsMap`` (its order kept)."""
    event = dict(fields)
    for name in _TYPED.intersection(event):  # a few fields of twenty: 3x faster than each one
        event[name] = typed_value(name, event[name])
    return event


def audit_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An ``auditFeed`` record's ``fieldsMap`` as a JSON event: ``event_type`` "Audit Trail",
    ``time`` its ``insertion_date`` (epoch ms), dates and the account ID as numbers."""
    event: dict[str, Any] = {"event_type": "Audit Trail"}
    for name, value in fields.items():
        if name in ("insertion_date", "creation_date", "account_id") and isinstance(value, str):
            event[name] = int(value) if _INTEGER.match(value) else value
        else:
            event[name] = value
    when = event.get("insertion_date", event.get("creation_date"))
    if isinstance(when, int) and "time" not in event:
        event["time"] = when
    return event
