"""The field contract: value types, unknown names and kinds, from the model's feature spec."""

from __future__ import annotations

import numpy as np
import pytest

from crmrisk.model.features import FeatureEncoder, FeatureSpec, FieldRole
from crmrisk.stream.field_contract import FieldContract

SPEC = FeatureSpec(
    "credit",
    (
        FieldRole("pay_status", "categorical"),
        FieldRole("pay_status", "numeric"),
        FieldRole("bill_amt", "numeric"),
        FieldRole("channel", "categorical"),
    ),
    (FieldRole("AGE", "numeric"), FieldRole("SEX", "categorical")),
    min_count=1,
)


@pytest.fixture(scope="module")
def encoder() -> FeatureEncoder:
    events = [{"pay_status": i % 3, "bill_amt": 10.0 * i, "channel": "web"} for i in range(20)]
    profiles = [{"AGE": 30 + i, "SEX": "f"} for i in range(5)]
    return FeatureEncoder.fit(SPEC, ["statement"] * 20, events, profiles)


def _contract(encoder, policy="strict", unknown="count") -> FieldContract:
    return FieldContract.of(encoder, policy, unknown, "LIMIT_BAL")


def test_check__well_typed_events_pass_untouched(encoder):
    fields = [{"pay_status": 1, "bill_amt": 10.5, "channel": "web"}, {"bill_amt": None}]
    verdict = _contract(encoder).check(["statement"] * 2, fields, profile=False)
    assert not verdict.rejected and not verdict.fixed and not verdict.coerced
    assert not verdict.unknown_fields and not verdict.unknown_kinds


@pytest.mark.parametrize(
    ("value", "shown"),
    [("abc", "'abc'"), (True, "true"), (False, "false"), ("nan", "'nan'"), ("inf", "'inf'")],
)
def test_check__strict_rejects_a_wrong_type_naming_field_value_and_expected_type(
    encoder, value, shown
):
    fields = [{"pay_status": 0, "bill_amt": 1.0}, {"pay_status": 0, "bill_amt": value}]
    verdict = _contract(encoder).check(["statement"] * 2, fields, profile=False)
    assert list(verdict.rejected) == [1]
    reason, error = verdict.rejected[1]
    assert reason == "invalid_field_value"
    assert error.startswith(f"fields.bill_amt: {shown} is not a number")
    assert "numeric" in error and "credit" in error
    assert not verdict.coerced


def test_check__a_long_bad_value_is_cut_in_the_message(encoder):
    verdict = _contract(encoder).check(["statement"], [{"bill_amt": "x" * 5000}], profile=False)
    error = verdict.rejected[0][1]
    assert len(error) < 300 and "(5002 characters)" in error


def test_check__a_field_numeric_and_categorical_must_be_a_number(encoder):
    fields = [{"pay_status": "??", "bill_amt": "abc"}]
    verdict = _contract(encoder).check(["statement"], fields, profile=False)
    assert verdict.rejected[0] == (
        "invalid_field_value",
        "fields.pay_status: '??' is not a number; fields.bill_amt: 'abc' is not a number "
        "(credit's model encodes it as numeric: send a JSON number, or null when missing)",
    )


def test_check__coerce_encodes_a_wrong_type_as_missing_and_counts_it(encoder):
    fields = [{"pay_status": "??", "bill_amt": True, "channel": "web"}]
    verdict = _contract(encoder, "coerce").check(["statement"], fields, profile=False)
    assert not verdict.rejected
    assert verdict.fixed == {0: {"pay_status": None, "bill_amt": None, "channel": "web"}}
    assert verdict.coerced == {("pay_status", "missing"): 1, ("bill_amt", "missing"): 1}
    assert fields == [{"pay_status": "??", "bill_amt": True, "channel": "web"}]  # not mutated
    # ... and missing encodes like a missing value, not like the bad one
    np.testing.assert_array_equal(
        encoder.encode_event("statement", verdict.fixed[0]),
        encoder.encode_event("statement", {"channel": "web"}),
    )


@pytest.mark.parametrize("policy", ["strict", "coerce"])
def test_check__numeric_text_is_its_number_and_blank_text_missing_counted(encoder, policy):
    fields = [{"bill_amt": "12.5"}, {"bill_amt": " 7 "}, {"bill_amt": "  "}, {"bill_amt": 3}]
    verdict = _contract(encoder, policy).check(["statement"] * 4, fields, profile=False)
    assert not verdict.rejected
    assert verdict.fixed == {0: {"bill_amt": 12.5}, 1: {"bill_amt": 7.0}, 2: {"bill_amt": None}}
    assert verdict.coerced == {("bill_amt", "number"): 2, ("bill_amt", "missing"): 1}


def test_check__categorical_fields_take_any_scalar(encoder):
    fields = [{"channel": v} for v in ("web", 2, 2.5, True, None, "")]
    verdict = _contract(encoder).check(["statement"] * len(fields), fields, profile=False)
    assert not verdict.rejected and not verdict.fixed and not verdict.coerced


def test_check__profiles_are_held_to_the_profile_fields(encoder):
    fields = [{"AGE": "old", "SEX": "f", "LIMIT_BAL": 5000}, {"AGE": 40, "bill_amt": 1}]
    verdict = _contract(encoder).check(["profile"] * 2, fields, profile=True)
    assert verdict.rejected == {
        0: ("invalid_field_value", verdict.rejected[0][1])
    }  # the exposure field is known
    assert "fields.AGE: 'old'" in verdict.rejected[0][1]
    assert verdict.unknown_fields == {"bill_amt": 1}  # an event field in a profile


def test_check__unknown_names_and_kinds_are_counted_not_rejected_by_default(encoder):
    fields = [{"bill_amt": 1.0, **{f"f{i}": i for i in range(500)}}, {"bill_amt": 2.0}]
    verdict = _contract(encoder).check(["statement", "martian"], fields, profile=False)
    assert not verdict.rejected
    assert len(verdict.unknown_fields) == 500 and verdict.unknown_fields["f7"] == 1
    assert verdict.unknown_kinds == {"martian": 1}


def test_check__reject_dead_letters_unknown_names_and_kinds(encoder):
    fields = [{"bill_amt": 1.0, **{f"f{i}": i for i in range(500)}}, {"bill_amt": 2.0}, {}]
    verdict = _contract(encoder, unknown="reject").check(
        ["statement", "martian", "statement"], fields, profile=False
    )
    assert sorted(verdict.rejected) == [0, 1]
    reason, error = verdict.rejected[0]
    assert reason == "unknown_field"
    assert "'f0', 'f1', 'f2', 'f3', 'f4' and 495 more unknown to credit's model" in error
    assert verdict.rejected[1] == (
        "unknown_kind",
        "kind: 'martian' unknown to credit's model (known: ['profile', 'statement'])",
    )


def test_check__a_rejected_row_is_not_also_fixed(encoder):
    fields = [{"bill_amt": "12.5", "pay_status": "??"}]
    verdict = _contract(encoder).check(["statement"], fields, profile=False)
    assert list(verdict.rejected) == [0] and verdict.fixed == {}


def test_contract__refuses_an_unknown_policy(encoder):
    with pytest.raises(ValueError, match="field policy"):
        FieldContract.of(encoder, "lenient", "count", None)
    with pytest.raises(ValueError, match="unknown policy"):
        FieldContract.of(encoder, "strict", "ignore", None)
