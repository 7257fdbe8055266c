"""Unit tests for tests.support.cato_api: the local stand-in for Cato's eventsFeed/auditFeed API.

Each test talks HTTPS to a real server on 127.0.0.1 that trusts nothing but its own per-run CA;
the server's clock is frozen and moved by hand, so windows and expiries are exact.
"""

from __future__ import annotations

import gzip
import http.client
import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cato_api import (
    AUDIT_FEED_QUERY,
    DAY,
    DEFAULT_ACCOUNT,
    DEFAULT_API_KEY,
    EVENTS_FEED_QUERY,
    GRAPHQL_PATH,
    CatoApiServer,
    CatoClock,
    Gap,
    make_audit_record,
    make_event,
    parse_time_frame,
)

ACCOUNT = DEFAULT_ACCOUNT
RATE_LIMIT_SNIFF = b'{"errors":[{"message":"rate limit for operation:'  # what Cato's own scripts compare


@pytest.fixture
def api() -> Iterator[CatoApiServer]:
    with CatoApiServer(clock=CatoClock(frozen=True)) as server:
        yield server


def feed(api: CatoApiServer, marker: str | None, *, account: str = ACCOUNT, **kw: Any) -> dict[str, Any]:
    variables: dict[str, Any] = {"accountIDs": [account]}
    if marker is not None:
        variables["marker"] = marker
    status, body = api.query(EVENTS_FEED_QUERY, variables, **kw)
    assert status == 200
    return body  # type: ignore[no-any-return]


def page(body: dict[str, Any]) -> tuple[int, str, list[dict[str, Any]]]:
    data = body["data"]["eventsFeed"]
    records = [r for account in data["accounts"] for r in (account["records"] or [])]
    return data["fetchedCount"], data["marker"], records


def baseline(api: CatoApiServer, account: str = ACCOUNT) -> str:
    count, marker, _ = page(feed(api, "", account=account))
    assert count == 0 and marker
    return marker


def post_raw(api: CatoApiServer, payload: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", api.port, timeout=10, context=api.client_context())
    try:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        conn.request("POST", GRAPHQL_PATH, body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# ---- eventsFeed: pages and markers ------------------------------------------------------------


def test_pages_of_3000_then_a_short_page_then_the_empty_marker(api: CatoApiServer) -> None:
    """7000 queued events come back as 3000, 3000 and 1000, then fetchedCount 0 with marker ""."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event(src_port=i) for i in range(7000)])
    counts, ports = [], []
    while True:
        count, new_marker, records = page(feed(api, marker))
        counts.append(count)
        ports += [int(r["fieldsMap"]["src_port"]) for r in records]
        assert len(records) == count
        if not new_marker:
            break
        marker = new_marker
    assert counts == [3000, 3000, 1000, 0]
    assert ports == list(range(7000))


def test_empty_request_marker_reads_only_events_queued_after_it(api: CatoApiServer) -> None:
    """An empty marker starts from now: what was queued before it is not returned, what came after is."""
    api.add_events(ACCOUNT, [make_event(rule_name="before")] * 5)
    count, marker, records = page(feed(api, ""))
    assert (count, records) == (0, []) and marker
    count, _, _ = page(feed(api, None))  # an absent marker is the same as an empty one
    assert count == 0
    api.add_events(ACCOUNT, [make_event(rule_name="after")] * 2)
    count, _, records = page(feed(api, marker))
    assert count == 2 and {r["fieldsMap"]["rule_name"] for r in records} == {"after"}


def test_empty_marker_start_oldest_gives_the_pre_2025_behaviour() -> None:
    """With empty_marker_start="oldest" an empty marker reads the events already queued."""
    with CatoApiServer(empty_marker_start="oldest") as api:
        api.add_events(ACCOUNT, [make_event()] * 3)
        count, marker, _ = page(feed(api, ""))
        assert count == 3 and marker


def test_rereading_the_same_marker_returns_the_same_page(api: CatoApiServer) -> None:
    """Reading is not consuming: the same marker gives the same records and the same next marker."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event(src_port=i) for i in range(10)])
    first, second = page(feed(api, marker)), page(feed(api, marker))
    assert first == second and first[0] == 10
    assert [r["fieldsMap"]["event_id"] for r in first[2]] == [r["fieldsMap"]["event_id"] for r in second[2]]


def test_drained_marker_stays_valid_and_sees_later_events(api: CatoApiServer) -> None:
    """After the empty answer the client keeps its last marker, which then returns what arrives later."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event()])
    _, marker, _ = page(feed(api, marker))
    assert page(feed(api, marker))[:2] == (0, "")
    api.add_events(ACCOUNT, [make_event(rule_name="late")])
    count, _, records = page(feed(api, marker))
    assert count == 1 and records[0]["fieldsMap"]["rule_name"] == "late"


def test_records_have_the_documented_shape_and_text_values(api: CatoApiServer) -> None:
    """fieldsMap values are text (numbers, booleans, lists joined with ", "), time and ids filled in."""
    marker = baseline(api)
    entity = {"id": "1000033", "name": "branch-1"}
    api.add_events(ACCOUNT, [make_event(time=1772448191810, src_site=entity)])
    query = """query q($accountIDs: [ID!], $marker: String) {
        eventsFeed(accountIDs: $accountIDs, marker: $marker) {
          marker fetchedCount accounts { id errorString records { time fieldsMap flatFields } } } }"""
    status, body = api.query(query, {"accountIDs": [int(ACCOUNT)], "marker": marker})
    account = body["data"]["eventsFeed"]["accounts"][0]
    assert status == 200 and account["id"] == ACCOUNT and account["errorString"] == ""
    record = account["records"][0]
    fields = record["fieldsMap"]
    assert record["time"] == "2026-03-02T10:43:11Z" == fields["time_str"]
    assert fields["time"] == "1772448191810" and fields["account_id"] == ACCOUNT
    assert fields["app_stack"] == "TCP, TLS, HTTP(S)" and fields["categories"] == "Malware"
    assert fields["event_count"] == "1" and fields["static_host"] == "false" and fields["dest_port"] == "443"
    assert len(fields["event_id"]) == 16 and fields["internalId"] == fields["event_id"]
    assert fields["src_site"] == entity
    flat = dict(record["flatFields"])
    assert flat["src_site"] == json.dumps(entity, separators=(",", ":"))
    assert flat["src_ip"] == fields["src_ip"]


def test_inline_arguments_gzip_filters_and_field_names(api: CatoApiServer) -> None:
    """The toolbox's inline query (no variables) works, is gzipped on request, and filters apply."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event(event_type="Security"), make_event(event_type="Connectivity"),
                             make_event(event_type="Security", event_sub_type="DNS Protection")])
    query = (
        f'{{\n  eventsFeed(accountIDs:[{ACCOUNT}]\n    marker:"{marker}"\n'
        '    filters:[{fieldName:event_type,operator:in,values:["Security"]},])\n'
        "  {\n    marker\n    fetchedCount\n    accounts {\n      id\n      records(fieldNames:[event_type, "
        "event_sub_type]) {\n        time\n        fieldsMap\n      }\n    }\n  }\n}"
    )
    headers = {"x-api-key": DEFAULT_API_KEY, "Accept-Encoding": "gzip, deflate, br"}
    status, resp_headers, raw = post_raw(api, {"query": query}, headers)
    assert status == 200 and resp_headers["content-encoding"] == "gzip" and raw[:2] == b"\x1f\x8b"
    data = json.loads(gzip.decompress(raw))["data"]["eventsFeed"]
    assert data["fetchedCount"] == 2
    assert [r["fieldsMap"] for r in data["accounts"][0]["records"]] == [
        {"event_type": "Security", "event_sub_type": "Internet Firewall"},
        {"event_type": "Security", "event_sub_type": "DNS Protection"},
    ]
    _, bad = api.query('{ eventsFeed(filters:[{fieldName:action, operator:is, values:["x"]}]) { marker } }')
    assert bad["data"] is None and "EventFeedFilterFieldName" in bad["errors"][0]["message"]


def test_several_accounts_share_one_page_fairly() -> None:
    """With two accounts the 3000 records of a page are split between those that have events."""
    with CatoApiServer({"k": ["1", "2"]}, page_size=10) as api:
        status, body = api.query(EVENTS_FEED_QUERY, {"accountIDs": ["1", "2"], "marker": ""}, api_key="k")
        marker = body["data"]["eventsFeed"]["marker"]
        api.add_events("1", [make_event()] * 20)
        api.add_events("2", [make_event()] * 3)
        status, body = api.query(EVENTS_FEED_QUERY, {"accountIDs": ["1", "2"], "marker": marker}, api_key="k")
        data = body["data"]["eventsFeed"]
        assert status == 200 and data["fetchedCount"] == 10
        assert [len(a["records"]) for a in data["accounts"]] == [7, 3]


# ---- errors inside HTTP 200 ---------------------------------------------------------------------


def test_rate_limit_after_100_calls_in_a_minute_then_recovery(api: CatoApiServer) -> None:
    """The 101st eventsFeed call within 60 s is refused in an HTTP 200, for every key of the account."""
    api.add_key("second-key", [ACCOUNT])
    marker = baseline(api)
    for _ in range(99):
        assert "errors" not in feed(api, marker)
    headers = {"x-api-key": "second-key"}
    payload = {"query": EVENTS_FEED_QUERY, "variables": {"accountIDs": [ACCOUNT], "marker": marker}}
    status, _, raw = post_raw(api, payload, headers)
    assert status == 200 and raw.startswith(RATE_LIMIT_SNIFF)
    body = json.loads(raw)
    assert body == {"errors": [{"message": "rate limit for operation: eventsFeed", "path": ["eventsFeed"]}],
                    "data": {"eventsFeed": None}}
    assert api.rate_limited[(ACCOUNT, "eventsFeed")] == 1 and api.call_count(ACCOUNT) == 101
    status, audit = api.query(AUDIT_FEED_QUERY, {"timeFrame": "last.P1D"})  # another query, its own counter
    assert "errors" not in audit
    api.clock.advance(59)
    assert "errors" in feed(api, marker)
    api.clock.advance(1.5)  # the first counted call is now more than 60 s old
    assert "errors" not in feed(api, marker)


def test_audit_feed_rate_limit_is_5_a_minute(api: CatoApiServer) -> None:
    """auditFeed allows 5 calls a minute per account, then answers the rate-limit error."""
    for _ in range(5):
        assert "errors" not in api.query(AUDIT_FEED_QUERY, {"timeFrame": "last.PT1H"})[1]
    status, body = api.query(AUDIT_FEED_QUERY, {"timeFrame": "last.PT1H"})
    assert status == 200 and body["errors"][0]["message"] == "rate limit for operation: auditFeed"
    assert body["data"] == {"auditFeed": None}


def test_bad_or_missing_key_is_permission_denied_in_http_200(api: CatoApiServer) -> None:
    """A wrong key and a missing x-api-key both get "permission denied" with eventsFeed null."""
    expected = {"errors": [{"message": "permission denied", "path": ["eventsFeed"],
                            "extensions": {"code": "Code104"}}], "data": {"eventsFeed": None}}
    for key in ("not-a-key", None):
        status, body = api.query(EVENTS_FEED_QUERY, {"accountIDs": [ACCOUNT], "marker": ""}, api_key=key)
        assert (status, body) == (200, expected)
    api.revoke_key(DEFAULT_API_KEY)
    assert feed(api, "") == expected
    assert api.call_count(ACCOUNT) == 0  # unauthenticated calls count against no account


def test_account_not_allowed_gets_an_error_string_while_others_are_served(api: CatoApiServer) -> None:
    """An account the key may not read has errorString "permission denied" and records null."""
    variables = {"accountIDs": [ACCOUNT, "99999"], "marker": ""}
    status, body = api.query(EVENTS_FEED_QUERY, variables)
    marker = body["data"]["eventsFeed"]["marker"]
    api.add_events(ACCOUNT, [make_event()])
    api.add_events("99999", [make_event()])
    status, body = api.query(EVENTS_FEED_QUERY, {**variables, "marker": marker})
    data = body["data"]["eventsFeed"]
    assert status == 200 and "errors" not in body and data["fetchedCount"] == 1
    assert data["accounts"][0]["errorString"] == "" and len(data["accounts"][0]["records"]) == 1
    assert data["accounts"][1] == {"id": "99999", "errorString": "permission denied", "records": None}


def test_a_chosen_error_string_blocks_one_account_without_moving_it(api: CatoApiServer) -> None:
    """set_account_error answers that account with its errorString, keeps its place, serves the rest."""
    api.add_key(DEFAULT_API_KEY, ["777"])
    variables = {"accountIDs": [ACCOUNT, "777"], "marker": ""}
    marker = api.query(EVENTS_FEED_QUERY, variables)[1]["data"]["eventsFeed"]["marker"]
    api.add_events(ACCOUNT, [make_event()])
    api.add_events("777", [make_event(rule_name="held")])
    api.set_account_error("777", "rate limit for operation: eventsFeed")
    data = api.query(EVENTS_FEED_QUERY, {**variables, "marker": marker})[1]["data"]["eventsFeed"]
    assert data["fetchedCount"] == 1 and data["accounts"][1] == {
        "id": "777", "errorString": "rate limit for operation: eventsFeed", "records": None}
    api.set_account_error("777", None)
    data = api.query(EVENTS_FEED_QUERY, {**variables, "marker": data["marker"]})[1]["data"]["eventsFeed"]
    assert data["fetchedCount"] == 1 and data["accounts"][1]["records"][0]["fieldsMap"]["rule_name"] == "held"


def test_marker_unused_for_3_days_has_expired(api: CatoApiServer) -> None:
    """A marker used within 3 days stays valid; one left unused longer gets a top-level error."""
    marker = baseline(api)
    api.clock.advance(3 * DAY - 60)
    assert page(feed(api, marker))[:2] == (0, "")  # still valid, and now used again
    api.clock.advance(3 * DAY + 1)
    body = feed(api, marker)
    assert body == {"errors": [{"message": "marker expired", "path": ["eventsFeed"]}],
                    "data": {"eventsFeed": None}}
    assert api.expired_markers == [marker]
    assert feed(api, "bogus")["errors"][0]["message"] == "invalid marker"


def test_expired_marker_reset_mode_restarts_from_now_silently() -> None:
    """With expired_marker="reset" an expired marker silently starts from now: queued events are lost."""
    with CatoApiServer(expired_marker="reset", clock=CatoClock(frozen=True)) as api:
        marker = baseline(api)
        api.add_events(ACCOUNT, [make_event()] * 4)
        api.clock.advance(4 * DAY)
        count, new_marker, _ = page(feed(api, marker))
        assert count == 0 and new_marker not in ("", marker) and api.expired_markers == [marker]
        assert [(g.first_missing_seq, g.missing) for g in api.gaps] == [(0, 4)]
        api.add_events(ACCOUNT, [make_event(rule_name="new")])
        count, _, records = page(feed(api, new_marker))
        assert count == 1 and records[0]["fieldsMap"]["rule_name"] == "new"


def test_events_are_kept_7_days_and_a_marker_behind_that_records_a_gap() -> None:
    """Events older than 7 days are dropped; a marker pointing at them continues at the oldest kept."""
    with CatoApiServer(marker_ttl_secs=30 * DAY, clock=CatoClock(frozen=True)) as api:
        marker = baseline(api)
        api.add_events(ACCOUNT, [make_event(rule_name="old")] * 3)
        api.clock.advance(6 * DAY)
        api.add_events(ACCOUNT, [make_event(rule_name="new")] * 2)
        assert api.queue_depth(ACCOUNT) == 5
        api.clock.advance(1.5 * DAY)
        assert api.queue_depth(ACCOUNT) == 2
        count, _, records = page(feed(api, marker))
        assert count == 2 and {r["fieldsMap"]["rule_name"] for r in records} == {"new"}
        assert [(g.account_id, g.first_missing_seq, g.missing) for g in api.gaps] == [(ACCOUNT, 0, 3)]
        assert isinstance(api.gaps[0], Gap)


def test_daily_purge_keeps_events_up_to_8_days() -> None:
    """With purge_interval_secs=86400 (Cato's daily sweep) an event can outlive 7 days until the sweep."""
    start = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 3600  # 01:00 UTC
    with CatoApiServer(purge_interval_secs=DAY, clock=CatoClock(start, frozen=True)) as api:
        api.add_events(ACCOUNT, [make_event()])
        api.clock.advance(7 * DAY + 3600)  # 02:00, seven days and one hour later
        assert api.queue_depth(ACCOUNT) == 1
        api.clock.advance(22 * 3600)  # past midnight: the sweep drops it
        assert api.queue_depth(ACCOUNT) == 0


def test_unknown_operation_and_syntax_errors_are_graphql_errors(api: CatoApiServer) -> None:
    """An unknown field, bad syntax, a mutation or a missing timeFrame are GraphQL errors in HTTP 200."""
    cases = {
        "{ accountSnapshot { id } }": 'Cannot query field "accountSnapshot" on type "Query".',
        "{ eventsFeed { marker ": "Syntax Error: Expected Name, found <EOF>.",
        "mutation { eventsFeed { marker } }": 'Cannot query field "eventsFeed" on type "Mutation".',
        "{ auditFeed { marker } }": 'Field "auditFeed" argument "timeFrame" of type "TimeFrame!" is required',
        "{ eventsFeed(limit: 5) { marker } }": 'Unknown argument "limit" on field "Query.eventsFeed".',
        "{ eventsFeed }": 'Field "eventsFeed" of type "EventsFeedData" must have a selection of subfields.',
    }
    for query, message in cases.items():
        status, body = api.query(query)
        assert status == 200 and body["data"] is None, query
        assert body["errors"][0]["message"].startswith(message), body
    status, _, raw = post_raw(api, b"{not json", {"x-api-key": DEFAULT_API_KEY})
    assert status == 400 and b"could not be decoded" in raw
    zipped = gzip.compress(json.dumps({"query": "{ __typename }"}).encode())
    status, _, raw = post_raw(api, zipped, {"x-api-key": DEFAULT_API_KEY, "Content-Encoding": "gzip"})
    assert (status, json.loads(raw)) == (200, {"data": {"__typename": "Query"}})


def test_fragments_aliases_typename_and_operation_name(api: CatoApiServer) -> None:
    """Fragments, aliases, __typename and a chosen operation are served as GraphQL defines them."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event()])
    query = """
      query other { eventsFeed { marker } }
      fragment R on EventRecord { fieldsMap }
      query main($m: String) {
        __typename
        feed: eventsFeed(marker: $m) { __typename next: marker accounts { records { ...R time } } }
      }"""
    status, body = api.query(query, {"m": marker}, operation_name="main")
    data = body["data"]
    assert status == 200 and data["__typename"] == "Query" and data["feed"]["__typename"] == "EventsFeedData"
    record = data["feed"]["accounts"][0]["records"][0]
    assert set(record) == {"fieldsMap", "time"} and data["feed"]["next"]


# ---- auditFeed -------------------------------------------------------------------------------------


def test_audit_feed_pages_with_has_more_and_an_inclusive_marker() -> None:
    """auditFeed pages by hasMore; the next page repeats the boundary record, and so does a drained call."""
    with CatoApiServer(audit_page_size=2, clock=CatoClock(frozen=True)) as api:
        now_ms = int(api.clock.now() * 1000)
        api.add_audit_records(ACCOUNT, [make_audit_record(model_name=f"site-{i}",
                                                          insertion_date=now_ms - (5 - i) * 60_000)
                                        for i in range(5)])
        seen: list[str] = []
        marker, pages = "", 0
        while True:
            status, body = api.query(AUDIT_FEED_QUERY, {"accountIDs": [ACCOUNT], "timeFrame": "last.PT1H",
                                                        "marker": marker})
            data = body["data"]["auditFeed"]
            pages += 1
            assert status == 200 and data["fetchedCount"] == len(data["accounts"][0]["records"])
            for record in data["accounts"][0]["records"]:
                assert record["admin"] == {"id": "31363", "name": "admin@example.com", "type": "admin"}
                assert record["object"]["name"] == record["fieldsMap"]["model_name"]
                if record["fieldsMap"]["model_name"] not in seen:
                    seen.append(record["fieldsMap"]["model_name"])
            assert data["marker"].endswith("_")
            marker = data["marker"]
            if not data["hasMore"]:
                break
            api.clock.advance(13)  # stay under 5 calls a minute
        assert seen == [f"site-{i}" for i in range(5)] and pages == 4
        assert data["to"] == _rfc(api.clock.now()) and data["from"] == _rfc(api.clock.now() - 3600)
        api.clock.advance(13)
        status, body = api.query(AUDIT_FEED_QUERY, {"timeFrame": "last.PT1H", "marker": marker})
        again = body["data"]["auditFeed"]
        assert again["hasMore"] is False and again["marker"] == marker
        assert [r["fieldsMap"]["model_name"] for r in again["accounts"][0]["records"]] == ["site-4"]


def test_audit_feed_time_frame_filters_and_union_fields(api: CatoApiServer) -> None:
    """A utc time frame bounds the records; filters use fieldName {AuditFieldName}; fields is a union."""
    base = 1_780_000_000_000
    api.add_audit_records(ACCOUNT, [
        make_audit_record(change_type="CREATED", insertion_date=base),
        make_audit_record(change_type="DELETED", insertion_date=base + 1000),
        make_audit_record(change_type="CREATED", insertion_date=base + 10 * DAY * 1000),
    ])
    start = parse_time_frame("utc.2026-05-28/{00:00:00--23:59:59}", 0)[0]
    assert start * 1000 <= base < start * 1000 + DAY * 1000
    query = """query q($f: [AuditFieldFilterInput!]) {
      auditFeed(timeFrame: "utc.2026-05-28/{00:00:00--23:59:59}", filters: $f) {
        fetchedCount from to
        accounts { records(fieldNames: [change_type]) { fields { name value { __typename
          ... on StringValue { string } } } } } } }"""
    flt = [{"fieldName": {"AuditFieldName": "change_type"}, "operator": "is", "values": ["CREATED"]}]
    status, body = api.query(query, {"f": flt})
    data = body["data"]["auditFeed"]
    assert status == 200 and data["fetchedCount"] == 1
    assert data["from"] == "2026-05-28T00:00:00Z" and data["to"] == "2026-05-28T23:59:59Z"
    assert data["accounts"][0]["records"][0]["fields"] == [
        {"name": "change_type", "value": {"__typename": "StringValue", "string": "CREATED"}}]
    wrong = [{"fieldNameInput": {"AuditFieldName": "change_type"}, "operator": "is", "values": ["CREATED"]}]
    status, body = api.query(query, {"f": wrong})
    assert body["data"] is None and "fieldNameInput" in body["errors"][0]["message"]


def test_parse_time_frame_forms() -> None:
    """last.<ISO 8601 duration> and the four utc.<range> shapes of the schema parse to (from, to)."""
    now = 1_700_000_000.0
    assert parse_time_frame("last.PT5M", now) == (now - 300, now)
    assert parse_time_frame("last.P1D", now) == (now - DAY, now)
    assert parse_time_frame("last.P1DT2H", now) == (now - DAY - 7200, now)
    t = parse_time_frame
    assert t("utc.2020-02-{11/04:50:00--21/04:50:00}", now) == (1581396600.0, 1582260600.0)
    assert t("utc.2020-02-11/{04:50:15--16:50:15}", now) == (1581396615.0, 1581439815.0)
    assert t("utc.2020-{02-11/04:50:00--04-11/04:50:00}", now)[1] == 1586580600.0
    assert t("utc.{2019-10-01/04:50:00--2020/02-01/04:50:00}", now) == (1569905400.0, 1580532600.0)
    for bad in ("last.", "last.PT", "yesterday", "utc.2020-02-{21/00:00:00--11/00:00:00}"):
        with pytest.raises(ValueError):
            t(bad, now)


# ---- faults, TLS, introspection --------------------------------------------------------------------


def test_injected_5xx_and_resets_then_the_same_page(api: CatoApiServer) -> None:
    """Injected 503/500/502, a reset and a truncated body change nothing: the retry gets the page."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event()] * 3)
    api.fail_next(1, "http_503", retry_after=7)
    api.fail_next(1, "http_500")
    api.fail_next(1, "http_502")
    payload = {"query": EVENTS_FEED_QUERY, "variables": {"accountIDs": [ACCOUNT], "marker": marker}}
    headers = {"x-api-key": DEFAULT_API_KEY}
    status, resp_headers, _ = post_raw(api, payload, headers)
    assert status == 503 and resp_headers["retry-after"] == "7"
    assert [post_raw(api, payload, headers)[0] for _ in range(2)] == [500, 502]
    api.fail_next(1, "reset")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, ssl.SSLError)):
        post_raw(api, payload, headers)
    api.fail_next(1, "truncate")
    with pytest.raises(http.client.IncompleteRead):
        post_raw(api, payload, headers)
    count, _, _ = page(feed(api, marker))
    assert count == 3
    faults = [r.fault for r in api.requests[-6:]]
    assert faults == ["http_503", "http_500", "http_502", "reset", "truncate", None]
    assert api.call_count(ACCOUNT) == 2  # the baseline and the last read: faults replace requests


def test_injected_graphql_error_null_data_rate_limit_and_slow(api: CatoApiServer) -> None:
    """The in-200 faults look like the real errors, and a slow answer still answers."""
    marker = baseline(api)
    api.fail_next(1, "graphql_error", message="internal error")
    assert feed(api, marker) == {"errors": [{"message": "internal error", "path": ["eventsFeed"]}],
                                 "data": {"eventsFeed": None}}
    api.fail_next(1, "null_data")
    assert feed(api, marker) == {"data": {"eventsFeed": None}}
    api.fail_next(1, "rate_limit", operation="auditFeed")  # waits for an auditFeed request
    assert "errors" not in feed(api, marker)
    assert api.query(AUDIT_FEED_QUERY, {"timeFrame": "last.P1D"})[1]["errors"][0]["message"] == (
        "rate limit for operation: auditFeed")
    api.fail_next(1, "slow", delay=0.3)
    with pytest.raises(TimeoutError):
        feed(api, marker, timeout=0.1)
    api.fail_next(1, "slow", delay=0.1)
    assert page(feed(api, marker))[:2] == (0, "")
    with pytest.raises(ValueError):
        api.fail_next(1, "teapot")


def test_tls_is_verified_against_the_per_run_ca(api: CatoApiServer) -> None:
    """A client that does not trust the per-run CA fails the handshake; one that does gets answers."""
    conn = http.client.HTTPSConnection("127.0.0.1", api.port, timeout=5, context=ssl.create_default_context())
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            conn.request("POST", GRAPHQL_PATH, body=b"{}")
    finally:
        conn.close()
    assert api.url == f"https://127.0.0.1:{api.port}/api/v1/graphql2" and api.ca_file.exists()
    conn = http.client.HTTPSConnection("localhost", api.port, timeout=5, context=api.client_context())
    try:
        conn.request("GET", "/api/v1/graphql2")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 405 and resp.getheader("Allow") == "POST"
        conn.request("POST", "/api/v1/graphql", body=b"{}")  # keep-alive: the same connection
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 404
    finally:
        conn.close()


def test_introspection_counts_calls_markers_and_headers(api: CatoApiServer) -> None:
    """Calls per account and query, the markers handed out and the last request's headers are kept."""
    marker = baseline(api)
    api.add_events(ACCOUNT, [make_event()] * 2)
    _, next_marker, _ = page(feed(api, marker, headers={"User-Agent": "forwarder-test/1"}))
    assert page(feed(api, next_marker))[1] == ""
    assert api.call_count(ACCOUNT, "eventsFeed") == 3 and api.call_count(ACCOUNT, "auditFeed") == 0
    assert api.markers_for("eventsFeed") == [marker, next_marker, ""]
    issued = api.markers_issued[1]
    assert issued.fetched == 2 and issued.accounts == (ACCOUNT,) and issued.positions == {ACCOUNT: 2}
    assert api.last_request_headers["x-api-key"] == DEFAULT_API_KEY
    assert api.requests[-2].headers["user-agent"] == "forwarder-test/1"
    assert api.requests[-1].operations == ("eventsFeed",) and api.requests[-1].status == 200
    assert api.mint_marker([ACCOUNT], "oldest") != api.mint_marker([ACCOUNT], "now")
    assert page(feed(api, api.mint_marker([ACCOUNT], "oldest")))[0] == 2


def _rfc(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
