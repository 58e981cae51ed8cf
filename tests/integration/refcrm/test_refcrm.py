"""The reference CRM over real HTTP: every route and status code of docs/contract.md.

The service is started as the stack starts it, ``python -m refcrm
--fault-injection``, on a free port with its own SQLite file, once for the
module. Codes are unique per test so tests do not depend on each other.
"""

from __future__ import annotations

import secrets
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.refcrm_service import NORMAL, TOKEN, Service, code

MAPPED = ("code", "name", "tax_code", "address", "phone", "email", "contact_name", "branch_code")
LATENCY_MS = 1500


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("refcrm") / "crm" / "crm.sqlite3"


@pytest.fixture(scope="module")
def service(db_path: Path) -> Iterator[Service]:
    svc = Service(db_path, db_path.parent.parent / "refcrm.log", "--fault-injection")
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def crm(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(autouse=True)
def normal_service(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test ends with the faults back to normal, even when it fails."""
    yield
    if "crm" in request.fixturenames:
        client: httpx.Client = request.getfixturevalue("crm")
        assert client.post("/admin/faults", json=NORMAL).status_code == 200


def create(crm: httpx.Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("code", code())
    fields.setdefault("name", f"Customer {fields['code']}")
    reply = crm.post("/api/customers", json=fields)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def writes(crm: httpx.Client) -> int:
    return int(crm.get("/admin/stats").json()["writes"])


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# ------------------------------------------------------------ health, auth
def test_healthz_needs_no_token(service: Service) -> None:
    with service.client(token=None) as anonymous:
        reply = anonymous.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/customers?code=X", None),
        ("GET", "/api/customers?page=1", None),
        ("GET", "/api/customers/1", None),
        ("POST", "/api/customers", {"code": "NOAUTH", "name": "x"}),
        ("PATCH", "/api/customers/1", {"name": "x"}),
        ("GET", "/admin/stats", None),
        ("GET", "/admin/faults", None),
        ("POST", "/admin/faults", {"down": True}),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_401_without_the_right_bearer_token(
    service: Service, crm: httpx.Client, method: str, path: str, body: Any,
    authorization: str | None,
) -> None:
    before = writes(crm)
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=service.url, timeout=10) as anonymous:
        reply = anonymous.request(method, path, json=body, headers=headers)
    assert reply.status_code == 401, reply.text
    assert "detail" in reply.json()
    assert writes(crm) == before
    assert crm.get("/admin/faults").json()["down"] is False
    assert TOKEN not in service.log_path.read_text()


# ---------------------------------------------------------------- records
def test_post_creates_a_record_with_every_field(crm: httpx.Client) -> None:
    k = code("KH")
    fields = {
        "code": k, "name": "Công ty TNHH Minh Anh", "tax_code": "0101234567-001",
        "address": "12 Hàng Bài, Hoàn Kiếm, Hà Nội", "phone": "024 3826 1234",
        "email": "ketoan@minhanh.vn", "contact_name": "Trần Thị Hoa", "branch_code": "HN",
        "external_ref": "default:42",
    }
    reply = crm.post("/api/customers", json=fields)
    assert reply.status_code == 201, reply.text
    record = reply.json()
    assert {k: record[k] for k in fields} == fields
    assert isinstance(record["id"], int)
    assert record["created_at"] == record["updated_at"]
    assert reply.headers["Location"] == f"/api/customers/{record['id']}"
    assert crm.get(f"/api/customers/{record['id']}").json() == record


def test_optional_fields_default_to_null(crm: httpx.Client) -> None:
    record = create(crm)
    assert all(record[name] is None for name in MAPPED if name not in ("code", "name"))
    assert record["external_ref"] is None


def test_code_is_stored_nfc_and_stripped(crm: httpx.Client) -> None:
    k = code("ĐỨC")
    record = create(crm, code=f"  {nfd(k)}\t")
    assert record["code"] == unicodedata.normalize("NFC", k)


def test_get_unknown_id_is_404(crm: httpx.Client) -> None:
    reply = crm.get("/api/customers/987654321")
    assert reply.status_code == 404
    assert "detail" in reply.json()


def test_find_by_code_matches_case_spaces_and_nfd(crm: httpx.Client) -> None:
    k = code("Ấ")
    record = create(crm, code=k)
    for query in (k, k.lower(), f"  {k.upper()} ", nfd(k), nfd(k.lower())):
        reply = crm.get("/api/customers", params={"code": query})
        assert reply.status_code == 200
        assert reply.json()["items"] == [record], query
    assert crm.get("/api/customers", params={"code": code("NONE")}).json()["items"] == []
    assert crm.get("/api/customers", params={"code": ""}).json()["items"] == []


def test_find_by_external_ref_is_exact(crm: httpx.Client) -> None:
    ref = f"t{secrets.token_hex(4)}:42"
    first = create(crm, external_ref=ref)
    create(crm, external_ref=f"{ref}0")  # a prefix match is not a match
    second = create(crm, external_ref=ref)
    reply = crm.get("/api/customers", params={"external_ref": ref})
    assert reply.status_code == 200
    assert reply.json() == {"items": [first, second]}
    assert crm.get("/api/customers", params={"external_ref": "none:0"}).json()["items"] == []


def test_find_by_codes_matches_each_code_and_caps_at_100(crm: httpx.Client) -> None:
    a, b = create(crm, code=code("A")), create(crm, code=code("B"))
    query = ",".join([a["code"].lower(), f" {b['code']} ", code("NONE")])
    reply = crm.get("/api/customers", params={"codes": query})
    assert reply.status_code == 200
    assert reply.json() == {"items": [a, b]}
    many = ",".join(code("X") for _ in range(101))
    reply = crm.get("/api/customers", params={"codes": many})
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == "codes"


@pytest.mark.parametrize(
    "variant",
    [str.lower, lambda k: f"  {k} ", lambda k: f"\t{k.lower()}\n", nfd],
    ids=["case", "spaces", "case+spaces", "nfd"],
)
def test_post_duplicate_code_is_409_naming_the_existing_record(
    crm: httpx.Client, variant: Any
) -> None:
    k = code("DUPÉ")
    existing = create(crm, code=k)
    before = writes(crm)
    reply = crm.post("/api/customers", json={"code": variant(k), "name": "Sales"})
    assert reply.status_code == 409, reply.text
    body = reply.json()
    assert body["existing_id"] == existing["id"]
    assert str(existing["id"]) in body["detail"]
    assert body["errors"][0]["field"] == "code"
    assert writes(crm) == before
    assert crm.get("/api/customers", params={"code": k}).json()["items"] == [existing]


def test_nfc_post_after_nfd_post_is_409(crm: httpx.Client) -> None:
    k = code("NGUYỄN")
    create(crm, code=nfd(k))
    assert crm.post("/api/customers", json={"code": k, "name": "x"}).status_code == 409


def test_concurrent_creates_of_one_code_make_one_record(crm: httpx.Client) -> None:
    k = code("RACE")
    variants = [k, k.lower(), f" {k} ", nfd(k)] * 5
    statuses: list[int] = []
    lock = threading.Lock()

    def post(value: str) -> None:
        with httpx.Client(base_url=crm.base_url, headers=crm.headers, timeout=15) as own:
            status = own.post("/api/customers", json={"code": value, "name": "x"}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=post, args=(v,)) for v in variants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * (len(variants) - 1)
    assert len(crm.get("/api/customers", params={"code": k}).json()["items"]) == 1


def test_patch_changes_fields_and_stamps_updated_at(crm: httpx.Client) -> None:
    record = create(crm, phone="1")
    reply = crm.patch(
        f"/api/customers/{record['id']}",
        json={"name": "Renamed", "phone": None, "external_ref": "default:7"},
    )
    assert reply.status_code == 200, reply.text
    patched = reply.json()
    assert patched["name"] == "Renamed"
    assert patched["phone"] is None
    assert patched["external_ref"] == "default:7"
    assert patched["code"] == record["code"]
    assert patched["created_at"] == record["created_at"]
    assert patched["updated_at"] > record["updated_at"]
    assert crm.get(f"/api/customers/{record['id']}").json() == patched


@pytest.mark.parametrize("body", [{}, "same values"], ids=["empty", "same-values"])
def test_noop_patch_still_changes_updated_at_and_counts_as_a_write(
    crm: httpx.Client, body: Any
) -> None:
    record = create(crm, email="a@b.vn")
    if body == "same values":
        body = {name: record[name] for name in (*MAPPED, "external_ref")}
    before = writes(crm)
    stamps = [record["updated_at"]]
    for _ in range(3):
        reply = crm.patch(f"/api/customers/{record['id']}", json=body)
        assert reply.status_code == 200
        stamps.append(reply.json()["updated_at"])
        assert {k: reply.json()[k] for k in MAPPED} == {k: record[k] for k in MAPPED}
    assert stamps == sorted(set(stamps)), "each accepted PATCH needs a later updated_at"
    assert writes(crm) == before + 3


def test_patch_unknown_id_is_404(crm: httpx.Client) -> None:
    before = writes(crm)
    assert crm.patch("/api/customers/987654321", json={"name": "x"}).status_code == 404
    assert writes(crm) == before


def test_patch_rename_into_an_existing_code_is_409(crm: httpx.Client) -> None:
    taken = create(crm, code=code("TAKEN"))
    record = create(crm)
    for variant in (taken["code"], taken["code"].lower(), f" {nfd(taken['code'])} "):
        reply = crm.patch(f"/api/customers/{record['id']}", json={"code": variant})
        assert reply.status_code == 409, reply.text
        assert reply.json()["existing_id"] == taken["id"]
    assert crm.get(f"/api/customers/{record['id']}").json()["code"] == record["code"]


def test_patch_rename_to_a_free_code_frees_the_old_one(crm: httpx.Client) -> None:
    old, new = code("OLD"), code("NEW")
    record = create(crm, code=old)
    reply = crm.patch(f"/api/customers/{record['id']}", json={"code": f" {new} "})
    assert reply.status_code == 200
    assert reply.json()["code"] == new
    assert crm.get("/api/customers", params={"code": new}).json()["items"][0]["id"] == record["id"]
    assert crm.get("/api/customers", params={"code": old}).json()["items"] == []
    create(crm, code=old)  # free again


def test_patch_may_recase_its_own_code(crm: httpx.Client) -> None:
    record = create(crm, code=code("case"))
    reply = crm.patch(f"/api/customers/{record['id']}", json={"code": record["code"].lower()})
    assert reply.status_code == 200
    assert reply.json()["code"] == record["code"].lower()


def test_no_delete_route_on_the_api(crm: httpx.Client) -> None:
    record = create(crm)
    assert crm.delete(f"/api/customers/{record['id']}").status_code == 405
    assert crm.get(f"/api/customers/{record['id']}").status_code == 200


def test_admin_delete_for_test_cleanup(crm: httpx.Client) -> None:
    record = create(crm)
    assert crm.delete(f"/admin/customers/{record['id']}").status_code == 204
    assert crm.get(f"/api/customers/{record['id']}").status_code == 404
    assert crm.delete(f"/admin/customers/{record['id']}").status_code == 404


# ------------------------------------------------------------- validation
INVALID_CREATES: list[tuple[str, dict[str, Any]]] = [
    ("code", {"code": ""}),
    ("code", {"code": "   "}),
    ("code", {"code": "K" * 65}),
    ("code", {"code": None}),
    ("code", {"code": 123}),
    ("name", {"name": ""}),
    ("name", {"name": " \t"}),
    ("name", {"name": "n" * 401}),
    ("name", {"name": ["a"]}),
    ("tax_code", {"tax_code": "123"}),
    ("tax_code", {"tax_code": "01012345678"}),
    ("tax_code", {"tax_code": "010123456"}),
    ("tax_code", {"tax_code": "0101234567-01"}),
    ("tax_code", {"tax_code": "0101234567-0011"}),
    ("tax_code", {"tax_code": "010123456a"}),
    ("tax_code", {"tax_code": "0101234567 001"}),
    ("tax_code", {"tax_code": "٠١٠١٢٣٤٥٦٧"}),  # digits, but not 0-9
    ("tax_code", {"tax_code": 101234567}),
    ("email", {"email": "ketoan"}),
    ("email", {"email": "a@@b.vn"}),
    ("email", {"email": "a@b@c"}),
    ("email", {"email": "@b.vn"}),
    ("email", {"email": "a@"}),
    ("email", {"email": True}),
    ("address", {"address": "a" * 32_001}),
    ("phone", {"phone": "1" * 51}),
    ("phone", {"phone": 2438261234}),
    ("contact_name", {"contact_name": "c" * 256}),
    ("branch_code", {"branch_code": "B" * 33}),
    ("external_ref", {"external_ref": 42}),
    ("colour", {"colour": "red"}),
    ("id", {"id": 5}),
    ("updated_at", {"updated_at": "2020-01-01T00:00:00Z"}),
]


@pytest.mark.parametrize(("field", "overrides"), INVALID_CREATES)
def test_post_invalid_field_is_422_naming_field_and_reason(
    crm: httpx.Client, field: str, overrides: dict[str, Any]
) -> None:
    body = {"code": code("BAD"), "name": "Valid name", **overrides}
    before = writes(crm)
    reply = crm.post("/api/customers", json=body)
    assert reply.status_code == 422, reply.text
    errors = reply.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert errors[0]["reason"]
    assert writes(crm) == before


@pytest.mark.parametrize("missing", ["code", "name"])
def test_post_without_a_required_field_is_422(crm: httpx.Client, missing: str) -> None:
    body = {"code": code(), "name": "n"}
    del body[missing]
    reply = crm.post("/api/customers", json=body)
    assert reply.status_code == 422
    assert reply.json()["errors"][0] == {"field": missing, "reason": "is required"}


@pytest.mark.parametrize(("field", "overrides"), INVALID_CREATES)
def test_patch_invalid_field_is_422(
    crm: httpx.Client, field: str, overrides: dict[str, Any]
) -> None:
    record = create(crm)
    reply = crm.patch(f"/api/customers/{record['id']}", json=overrides)
    assert reply.status_code == 422, reply.text
    assert [e["field"] for e in reply.json()["errors"]] == [field]
    assert crm.get(f"/api/customers/{record['id']}").json() == record


def test_every_invalid_field_is_reported_at_once(crm: httpx.Client) -> None:
    reply = crm.post(
        "/api/customers", json={"code": "", "name": "n", "tax_code": "1", "email": "x"}
    )
    assert reply.status_code == 422
    assert {e["field"] for e in reply.json()["errors"]} == {"code", "tax_code", "email"}


def test_values_at_the_limits_are_accepted(crm: httpx.Client) -> None:
    k = code("MAX")
    record = create(
        crm, code=k + "K" * (64 - len(k)), name="n" * 400, tax_code="0101234567",
        address="a" * 32_000, phone="1" * 50, email="a@b", contact_name="c" * 255,
        branch_code="B" * 32,
    )
    assert len(record["code"]) == 64
    patched = crm.patch(f"/api/customers/{record['id']}", json={"tax_code": "0101234567-999"})
    assert patched.status_code == 200
    assert patched.json()["tax_code"] == "0101234567-999"


def test_code_length_counts_the_stored_nfc_form(crm: httpx.Client) -> None:
    # 64 NFC characters are 128 code points in NFD: still accepted
    k = "Ế" * 54 + code("")
    assert len(k) == 64
    assert crm.post("/api/customers", json={"code": nfd(k), "name": "n"}).status_code == 201


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_malformed_json_is_400_with_a_reason(crm: httpx.Client, method: str) -> None:
    record = create(crm)
    path = "/api/customers" if method == "POST" else f"/api/customers/{record['id']}"
    for raw in (b"{bad", b"", b"\xff\xfe"):
        reply = crm.request(
            method, path, content=raw, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 400, (raw, reply.text)
        assert "malformed JSON" in reply.json()["errors"][0]["reason"]


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"3", b"null"])
def test_body_that_is_not_an_object_is_422(crm: httpx.Client, raw: bytes) -> None:
    reply = crm.post("/api/customers", content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] is None


# ----------------------------------------------------------------- paging
def test_paging_walks_every_record_once_in_id_order(crm: httpx.Client) -> None:
    for _ in range(5):
        create(crm)
    total = crm.get("/admin/stats").json()["customers"]
    ids: list[int] = []
    page: int | None = 1
    pages = 0
    while page is not None:
        reply = crm.get("/api/customers", params={"page": page, "page_size": 3})
        assert reply.status_code == 200
        body = reply.json()
        pages += 1
        if body["next_page"] is not None:
            assert body["next_page"] == page + 1
            assert len(body["items"]) == 3
        else:
            assert 1 <= len(body["items"]) <= 3
        ids += [item["id"] for item in body["items"]]
        page = body["next_page"]
    assert ids == sorted(set(ids))
    assert len(ids) == total
    assert pages == -(-total // 3)


def test_paging_defaults_and_past_the_end(crm: httpx.Client) -> None:
    create(crm)
    body = crm.get("/api/customers").json()
    assert body["items"] and "next_page" in body
    past = crm.get("/api/customers", params={"page": 100_000, "page_size": 10}).json()
    assert past == {"items": [], "next_page": None}
    capped = crm.get("/api/customers", params={"page": 1, "page_size": 100_000})
    assert capped.status_code == 200
    assert len(capped.json()["items"]) <= 500


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page": 0}, "page"), ({"page": "x"}, "page"), ({"page_size": 0}, "page_size"),
     ({"page_size": "-3"}, "page_size")],
)
def test_bad_paging_parameters_are_422(
    crm: httpx.Client, params: dict[str, Any], field: str
) -> None:
    reply = crm.get("/api/customers", params=params)
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == field


# ------------------------------------------------------------------ faults
def test_faults_state_starts_normal_and_empty_post_changes_nothing(crm: httpx.Client) -> None:
    assert crm.get("/admin/faults").json() == NORMAL
    assert crm.post("/admin/faults", json={"latency_ms": 5}).json()["latency_ms"] == 5
    reply = crm.post("/admin/faults", json={})
    assert reply.status_code == 200
    assert reply.json() == {**NORMAL, "latency_ms": 5}
    assert crm.post("/admin/faults", json={"down": True}).json() == {
        **NORMAL, "latency_ms": 5, "down": True,
    }
    restored = crm.post(
        "/admin/faults",
        json={"down": False, "error_rate": 0, "latency_ms": 0, "rate_limit_per_s": 0},
    )
    assert restored.json() == NORMAL


@pytest.mark.parametrize(
    "body",
    [{"error_rate": 1.5}, {"error_rate": -0.1}, {"error_rate": "half"}, {"down": "yes"},
     {"latency_ms": -1}, {"latency_ms": 1.5}, {"rate_limit_per_s": -2},
     {"rate_limit_per_s": True}, {"flood": True}, []],
)
def test_invalid_faults_are_422_and_change_nothing(crm: httpx.Client, body: Any) -> None:
    reply = crm.post("/admin/faults", json=body)
    assert reply.status_code == 422, reply.text
    assert crm.get("/admin/faults").json() == NORMAL


def test_down_answers_503_and_admin_stays_reachable(service: Service, crm: httpx.Client) -> None:
    record = create(crm)
    before = writes(crm)
    crm.post("/admin/faults", json={"down": True})
    for method, path, body in [
        ("GET", f"/api/customers/{record['id']}", None),
        ("GET", "/api/customers?code=X", None),
        ("POST", "/api/customers", {"code": code(), "name": "x"}),
        ("PATCH", f"/api/customers/{record['id']}", {"name": "y"}),
    ]:
        reply = crm.request(method, path, json=body)
        assert reply.status_code == 503, (method, path, reply.text)
        assert int(reply.headers["Retry-After"]) >= 1
    assert crm.get("/admin/faults").json()["down"] is True
    assert crm.get("/admin/stats").status_code == 200
    with service.client(token=None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
    assert writes(crm) == before
    crm.post("/admin/faults", json={"down": False})
    assert crm.get(f"/api/customers/{record['id']}").json()["name"] == record["name"]


def test_rate_limit_answers_429_with_retry_after(crm: httpx.Client) -> None:
    crm.post("/admin/faults", json={"rate_limit_per_s": 2})
    statuses, retry_after = [], []
    for _ in range(8):
        reply = crm.get("/api/customers", params={"code": "X"})
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            retry_after.append(int(reply.headers["Retry-After"]))
    assert 200 in statuses
    assert 429 in statuses
    assert set(statuses) == {200, 429}
    assert all(seconds >= 1 for seconds in retry_after)
    time.sleep(max(retry_after))
    assert crm.get("/api/customers", params={"code": "X"}).status_code == 200
    # admin is not limited
    assert all(crm.get("/admin/faults").status_code == 200 for _ in range(10))
    crm.post("/admin/faults", json={"rate_limit_per_s": 0})
    assert all(crm.get("/api/customers?code=X").status_code == 200 for _ in range(30))


def test_rate_limit_spans_every_api_route(crm: httpx.Client) -> None:
    record = create(crm)
    crm.post("/admin/faults", json={"rate_limit_per_s": 1})
    statuses = [
        crm.get(f"/api/customers/{record['id']}").status_code,
        crm.patch(f"/api/customers/{record['id']}", json={}).status_code,
        crm.post("/api/customers", json={"code": code(), "name": "x"}).status_code,
    ]
    assert statuses[0] == 200
    assert statuses[1:] == [429, 429]


def test_latency_delays_every_api_call(crm: httpx.Client) -> None:
    # a delay far above a local call's time, so a busy machine cannot pass for one
    crm.post("/admin/faults", json={"latency_ms": LATENCY_MS})
    for method, path, body in [
        ("GET", "/api/customers?code=X", None),
        ("POST", "/api/customers", {"code": code(), "name": "x"}),
    ]:
        started = time.monotonic()
        reply = crm.request(method, path, json=body)
        assert reply.status_code < 300
        assert time.monotonic() - started >= LATENCY_MS / 1000
    started = time.monotonic()
    crm.get("/admin/faults")
    assert time.monotonic() - started < LATENCY_MS / 1000, "/admin is not delayed"
    crm.post("/admin/faults", json={"latency_ms": 0})
    started = time.monotonic()
    crm.get("/api/customers?code=X")
    assert time.monotonic() - started < LATENCY_MS / 1000


def test_error_rate_one_answers_5xx_and_writes_nothing(crm: httpx.Client) -> None:
    record = create(crm)
    before = writes(crm)
    crm.post("/admin/faults", json={"error_rate": 1.0})
    k = code()
    replies = [
        crm.get(f"/api/customers/{record['id']}"),
        crm.post("/api/customers", json={"code": k, "name": "x"}),
        crm.patch(f"/api/customers/{record['id']}", json={"name": "changed"}),
        *[crm.get("/api/customers?code=X") for _ in range(10)],
    ]
    assert all(500 <= r.status_code < 600 for r in replies), [r.status_code for r in replies]
    crm.post("/admin/faults", json={"error_rate": 0})
    assert writes(crm) == before
    assert crm.get("/api/customers", params={"code": k}).json()["items"] == []
    assert crm.get(f"/api/customers/{record['id']}").json()["name"] == record["name"]


def test_error_rate_half_fails_about_half(crm: httpx.Client) -> None:
    crm.post("/admin/faults", json={"error_rate": 0.5})
    statuses = [crm.get("/api/customers?code=X").status_code for _ in range(200)]
    failures = sum(s >= 500 for s in statuses)
    assert set(statuses) <= {200, 500}
    assert 50 < failures < 150


def test_lost_reply_commits_the_write_but_answers_502(crm: httpx.Client) -> None:
    k = code("LOST")
    crm.post("/admin/faults", json={"lost_reply_rate": 1.0})
    reply = crm.post("/api/customers", json={"code": k, "name": "x"})
    assert reply.status_code == 502
    assert crm.get("/api/customers", params={"code": k}).status_code == 200  # reads pass
    crm.post("/admin/faults", json={"lost_reply_rate": 0})
    assert len(crm.get("/api/customers", params={"code": k}).json()["items"]) == 1


# ------------------------------------------------------------------ stats
def test_stats_count_only_accepted_writes(crm: httpx.Client) -> None:
    before = crm.get("/admin/stats").json()
    record = create(crm)
    crm.patch(f"/api/customers/{record['id']}", json={"name": "n2"})
    crm.post("/api/customers", json={"code": record["code"], "name": "dup"})  # 409
    crm.post("/api/customers", json={"code": "", "name": "bad"})  # 422
    crm.patch("/api/customers/987654321", json={"name": "x"})  # 404
    crm.get(f"/api/customers/{record['id']}")
    after = crm.get("/admin/stats").json()
    delta = {key: after[key] - before[key] for key in before if isinstance(before[key], int)}
    assert delta["writes"] == 2
    assert delta["creates"] == 1
    assert delta["updates"] == 1
    assert delta["conflicts"] == 1
    assert delta["rejected"] == 1
    assert delta["not_found"] == 1
    assert delta["reads"] == 1
    assert delta["customers"] == 1
    assert after["fault_injection"] is True


def test_requests_are_logged_without_the_token(service: Service, crm: httpx.Client) -> None:
    k = code("LOG")
    create(crm, code=k)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = service.log_path.read_text()
        if "POST /api/customers 201" in text:
            break
        time.sleep(0.1)
    logged = [line for line in text.splitlines() if "POST /api/customers 201" in line]
    assert logged, text
    assert logged[-1].rstrip().endswith("ms"), logged[-1]  # with the time it took
    assert TOKEN not in text


# ------------------------------------------- a second process, same database
def test_without_fault_injection_admin_faults_is_404_and_data_persists(
    db_path: Path, crm: httpx.Client
) -> None:
    record = create(crm)
    other = Service(db_path, db_path.parent.parent / "plain.log", "--rate-limit-per-s", "1")
    try:
        with other.client() as plain:
            assert plain.get("/admin/faults").status_code == 404
            assert plain.post("/admin/faults", json={"down": True}).status_code == 404
            assert plain.delete(f"/admin/customers/{record['id']}").status_code == 404
            stats = plain.get("/admin/stats")
            assert stats.status_code == 200
            assert stats.json()["fault_injection"] is False
            assert plain.get(f"/api/customers/{record['id']}").json() == record
            limited = plain.get(f"/api/customers/{record['id']}")
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) >= 1
    finally:
        other.stop()
