"""The knob table and validation against it: typing, ranges, messages that echo the value, every bad field at once."""

import math

import pytest

from app import params as P


def test_every_knob_is_well_formed():
    for knob in P.KNOBS:
        assert knob.label and knob.help, knob.name
        if knob.type in ("int", "float"):
            assert knob.min <= knob.default <= knob.max, knob.name
        if knob.type == "choice":
            assert knob.default in knob.choices, knob.name
            assert set(knob.choice_labels) == set(knob.choices), knob.name
            assert set(knob.choice_phrases or {}) <= set(knob.choices), knob.name
        assert P.coerce(knob, knob.default) == knob.default, knob.name


def test_request_fields_are_knobs():
    for fields in (P.PRIVACY_FIELDS, P.CALIBRATE_FIELDS, P.RUN_FIELDS):
        assert set(fields) <= set(P.KNOB_BY_NAME)


@pytest.mark.parametrize("name, value, typed", [
    ("epochs", 3.0, 3), ("learning_rate", 1, 1.0), ("private", False, False), ("accountant", "pld", "pld")])
def test_coerce_types_good_values(name, value, typed):
    result = P.coerce(P.KNOB_BY_NAME[name], value)
    assert result == typed and type(result) is type(typed)


@pytest.mark.parametrize("name, value, fragment", [
    ("epochs", 2.5, "must be a whole number, got 2.5"),
    ("epochs", True, "must be a number, got True"),
    ("private", 1, "must be true or false, got 1"),
    ("accountant", "RDP", "must be one of rdp, pld; got 'RDP'"),
    ("learning_rate", math.nan, "must be a finite number, got nan"),
    ("batch_size", 0, "must be between 1 and 4096, got 0"),
    ("mode", "x" * 100, "got '" + "x" * 56 + "..."),
])
def test_coerce_rejects_with_the_value_in_the_message(name, value, fragment):
    with pytest.raises(ValueError) as caught:
        P.coerce(P.KNOB_BY_NAME[name], value)
    assert fragment in str(caught.value)


def test_validate_fills_defaults_and_reports_every_bad_field():
    assert P.validate({}, P.PRIVACY_FIELDS) == P.defaults(P.PRIVACY_FIELDS)
    with pytest.raises(P.ParamError) as caught:
        P.validate({"epochs": 0, "delta": "small", "colour": "red"}, P.PRIVACY_FIELDS)
    assert set(caught.value.errors) == {"epochs", "delta", "colour"}
    assert "not a known field" in caught.value.errors["colour"]


def test_validate_checks_the_batch_against_the_dataset():
    with pytest.raises(P.ParamError) as caught:
        P.validate({"batch_size": 512, "dataset_size": 500}, P.PRIVACY_FIELDS)
    assert "must not exceed dataset_size (500), got 512" in caught.value.errors["batch_size"]


def test_validate_refuses_a_body_that_is_not_an_object():
    with pytest.raises(P.ParamError) as caught:
        P.validate([1, 2], P.RUN_FIELDS)
    assert caught.value.errors == {"body": "must be a JSON object, got list"}


def test_the_solve_searches_the_noise_sliders_range():
    low, high = P.noise_search_range()
    knob = P.KNOB_BY_NAME["noise_multiplier"]
    assert 0 < low < knob.slider_min and high == knob.max


def test_table_is_json_ready_and_drops_empty_fields():
    rows = {row["name"]: row for row in P.table()}
    assert rows["sampling"]["choice_phrases"]["shuffle"] == "shuffled batches"
    assert "choice_labels" not in rows["epochs"] and "choices" not in rows["epochs"]


def test_a_simulated_run_takes_real_only_knobs_at_their_fitted_value(monkeypatch):
    knob = P.Knob("momentum", "float", 0.5, "Momentum", "SGD momentum.", min=0.0, max=0.99, scale="linear",
                  simulated_as=0.0)
    monkeypatch.setitem(P.KNOB_BY_NAME, "momentum", knob)
    fields = ("mode", "momentum")
    assert P.validate({"mode": "simulate"}, fields)["momentum"] == 0.0
    assert P.validate({"mode": "simulate", "momentum": 0.0}, fields)["momentum"] == 0.0
    assert P.validate({"mode": "real"}, fields)["momentum"] == 0.5
    with pytest.raises(P.ParamError) as caught:
        P.validate({"mode": "simulate", "momentum": 0.9}, fields)
    assert caught.value.errors == {"momentum": "is for real runs only: the simulator is fitted to momentum 0.0, got "
                                               "0.9; use mode real, or leave it at 0.0"}
