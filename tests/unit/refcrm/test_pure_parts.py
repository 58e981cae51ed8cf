"""The reference CRM's pure parts: code matching, field validation, the store, the limiter."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcrm.codes import code_key, stored_code
from refcrm.ratelimit import TokenBucket, retry_after_header
from refcrm.store import CodeTaken, CustomerStore
from refcrm.validation import InvalidFields, validate_create, validate_patch

VIETNAMESE = "ĐđẤấẦầẬậỄễỆệỨứỮữỰựƠơƯưÂâĂăÊêÔô"
code_text = st.text(alphabet=string.ascii_letters + string.digits + VIETNAMESE + "-_.",
                    min_size=1, max_size=20)
padding = st.text(alphabet=" \t\n\u00a0\u3000", max_size=3)


# ------------------------------------------------------------------ codes
@given(code_text, padding, padding)
def test_code_key_ignores_spaces_and_normal_form(code: str, left: str, right: str) -> None:
    for form in ("NFC", "NFD"):
        assert code_key(left + unicodedata.normalize(form, code) + right) == code_key(code)


@given(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=20))
def test_code_key_ignores_ascii_case(code: str) -> None:
    assert code_key(code.upper()) == code_key(code.lower()) == code_key(code)


@given(st.text(max_size=30))
def test_code_key_is_idempotent_and_stored_code_is_nfc_stripped(code: str) -> None:
    assert code_key(code_key(code)) == code_key(code)
    stored = stored_code(code)
    assert stored == stored.strip()
    assert unicodedata.is_normalized("NFC", stored)
    assert code_key(stored) == code_key(code)


def test_code_key_examples() -> None:
    assert code_key("kh001 ") == code_key("KH001")
    assert code_key(unicodedata.normalize("NFD", "Đức")) == code_key("ĐỨC".lower()) == "đức"
    assert code_key("KH001") != code_key("KH0O1")


# ------------------------------------------------------------- validation
TAX_ORACLE = re.compile(r"^[0-9]{10}(-[0-9]{3})?\Z", re.ASCII)


@given(st.from_regex(r"\A[0-9]{10}(-[0-9]{3})?\Z", fullmatch=True))
def test_well_formed_tax_codes_are_accepted(tax_code: str) -> None:
    assert validate_create({"code": "K", "name": "N", "tax_code": tax_code})["tax_code"] == tax_code


@given(st.text(alphabet="0123456789-a \u0660", max_size=16))
def test_tax_code_follows_the_rule_exactly(tax_code: str) -> None:
    accepted = True
    try:
        validate_create({"code": "K", "name": "N", "tax_code": tax_code})
    except InvalidFields as exc:
        accepted = False
        assert [e.field for e in exc.errors] == ["tax_code"]
    assert accepted == bool(TAX_ORACLE.match(tax_code))


@given(st.text(alphabet="ab@ .", max_size=8))
def test_email_needs_one_at_with_text_both_sides(email: str) -> None:
    local, _, domain = email.partition("@")
    expected = email.count("@") == 1 and bool(local.strip()) and bool(domain.strip())
    try:
        validate_patch({"email": email})
    except InvalidFields:
        assert not expected
    else:
        assert expected


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                         children, max_size=3),
    max_leaves=6,
)
fields = st.sampled_from(
    ["code", "name", "tax_code", "address", "phone", "email", "contact_name", "branch_code",
     "external_ref", "id", "other"]
)


@given(st.dictionaries(fields, json_value, max_size=6) | json_value)
@settings(max_examples=300)
def test_validation_only_ever_answers_values_or_invalid_fields(body: Any) -> None:
    for validate in (validate_create, validate_patch):
        try:
            values = validate(body)
        except InvalidFields as exc:
            assert exc.errors
            assert all(e.reason for e in exc.errors)
        else:
            assert isinstance(body, dict)
            assert set(values) == set(body)
            assert all(v is None or isinstance(v, str) for v in values.values())


@pytest.mark.parametrize(
    ("field", "limit"),
    [("code", 64), ("name", 400), ("address", 32_000), ("phone", 50), ("contact_name", 255),
     ("branch_code", 32)],
)
def test_length_limits(field: str, limit: int) -> None:
    base = {"code": "K", "name": "N"}
    assert validate_create({**base, field: "x" * limit})[field] == "x" * limit
    with pytest.raises(InvalidFields) as caught:
        validate_create({**base, field: "x" * (limit + 1)})
    assert caught.value.errors[0].field == field


# ------------------------------------------------------------------ store
@given(st.lists(st.tuples(code_text, padding), min_size=1, max_size=25))
@settings(max_examples=60, deadline=None)
def test_store_never_holds_two_records_with_matching_codes(codes: list[tuple[str, str]]) -> None:
    store = CustomerStore(":memory:")
    try:
        for code, pad in codes:
            value = pad + unicodedata.normalize("NFD", code) + pad
            try:
                store.create({"code": stored_code(value), "name": "n"})
            except CodeTaken as exc:
                assert exc.existing_id is not None
                assert store.get(exc.existing_id) is not None
        records = store.page(1, 500).items
        keys = [code_key(r["code"]) for r in records]
        assert len(keys) == len(set(keys)) == len({code_key(c) for c, _ in codes})
    finally:
        store.close()


def test_store_update_stamps_a_strictly_later_updated_at() -> None:
    store = CustomerStore(":memory:")
    record = store.create({"code": "K1", "name": "n"})
    stamps = [record["updated_at"]]
    for _ in range(50):
        updated = store.update(record["id"], {})
        assert updated is not None
        stamps.append(updated["updated_at"])
    assert stamps == sorted(set(stamps))
    assert store.update(999, {}) is None
    store.close()


# ---------------------------------------------------------------- limiter
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_rate_per_second_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4, clock)
    assert [bucket.take() for _ in range(4)] == [None] * 4
    wait = bucket.take()
    assert wait == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() is None
    assert bucket.take() is not None
    bucket.set_rate(0)
    assert all(bucket.take() is None for _ in range(100))


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"
