"""signals.markers: one parser for trial markers, strings and the simulator's JSON onsets, offline and live."""

import json

import pytest

from clients.simulator import TrialMarker
from signals.markers import MarkerError, TrialMarkerParser, TrialSegment, parse_onset, trial_segments


def _onset(trial, label, phase=None):
    return TrialMarker(0.0, trial, label, phase).to_json()  # the simulator's own writer


def test_string_convention():
    markers = [
        (1.0, "trial_start:happy"),
        (2.0, "noise"),
        (5.0, "trial_end"),
        (6.0, "trial_start"),
        (9.0, "trial_end"),
    ]
    assert trial_segments(markers) == [TrialSegment(1.0, 5.0, "happy"), TrialSegment(6.0, 9.0, None)]
    custom = trial_segments(
        [(0.0, "S_sad"), (3.0, "E")], start_pattern=r"^S_(?P<label>\w+)$", end_pattern="^E$"
    )
    assert custom == [TrialSegment(0.0, 3.0, "sad")]


@pytest.mark.parametrize(
    ("markers", "match"),
    [
        ([(1.0, "trial_start:a"), (2.0, "trial_start:b")], "trial start 'trial_start:b' at 2.000 s comes before the "
         "trial started at 1.000 s has ended; every start needs an end marker first."),
        ([(1.0, "trial_end")], "trial end 'trial_end' at 1.000 s has no matching start marker before it."),
        ([(19.0, "trial_start:a")], "the trial started at 19.000 s has no end marker."),
    ],
)  # fmt: skip
def test_string_errors(markers, match):
    with pytest.raises(MarkerError) as err:
        trial_segments(markers, end_of_data=30.0)
    assert str(err.value) == match


def test_simulator_onsets_end_at_the_next_onset_the_end_marker_or_the_data():
    """A JSON onset trial ends at the next onset, at trial_end, at the end of data, or after onset_trial_s."""
    markers = [(0.0, _onset(15, "neutral", "calibration")), (4.0, _onset(16, "positive", "calibration")),
               (8.0, _onset(17, "negative", "test")), (10.0, "trial_end")]  # fmt: skip
    assert trial_segments(markers, end_of_data=20.0) == [
        TrialSegment(0.0, 4.0, "neutral", "calibration"),
        TrialSegment(4.0, 8.0, "positive", "calibration"),
        TrialSegment(8.0, 10.0, "negative", "test"),
    ]
    assert trial_segments(markers[:2], end_of_data=6.5)[-1] == TrialSegment(
        4.0, 6.5, "positive", "calibration"
    )
    assert trial_segments(markers[:2], onset_trial_s=3.0)[0] == TrialSegment(
        0.0, 3.0, "neutral", "calibration"
    )
    with pytest.raises(MarkerError, match="has no end: give the end of the data or onset_trial_s"):
        trial_segments(markers[:1])
    # A string start ends an open onset trial; an onset ends an open string trial.
    mixed = [(0.0, _onset(1, "a")), (2.0, "trial_start:b"), (5.0, _onset(2, "c"))]
    assert trial_segments(mixed, end_of_data=6.0) == [
        TrialSegment(0.0, 2.0, "a"),
        TrialSegment(2.0, 5.0, "b"),
        TrialSegment(5.0, 6.0, "c"),
    ]


def test_live_pushes_give_each_segment_when_it_closes():
    """Pushed one by one, markers yield the batch result; onset_trial_s closes a trial at the next marker after it."""
    markers = [(0.0, _onset(1, "a")), (4.0, _onset(2, "b")), (20.0, "trial_start:c"), (23.0, "trial_end")]
    parser = TrialMarkerParser(onset_trial_s=6.0)
    got = [parser.push(t, text) for t, text in markers]
    assert got == [
        [],
        [TrialSegment(0.0, 4.0, "a")],
        [TrialSegment(4.0, 10.0, "b")],
        [TrialSegment(20.0, 23.0, "c")],
    ]
    assert parser.open_segment is None and parser.close() == []
    assert [s for g in got for s in g] == trial_segments(markers, onset_trial_s=6.0)
    parser.push(30.0, _onset(3, "a"))
    assert parser.open_segment == (30.0, "a")


def test_parse_onset_ignores_other_texts():
    assert parse_onset(_onset(3, "happy", "test")) == (3, "happy", "test")
    assert parse_onset(_onset(3, "happy")) == (3, "happy", None)
    for text in ("trial_start:a", "{not json", "[1]", json.dumps({"label": "x"}), json.dumps({"trial": 1}),
                 json.dumps({"trial": "1", "label": "x"}), json.dumps({"trial": True, "label": "x"}),
                 json.dumps({"trial": 1, "label": "x", "phase": "warm-up"})):  # fmt: skip
        assert parse_onset(text) is None
    with pytest.raises(ValueError, match="invalid marker pattern"):
        TrialMarkerParser("(")
    with pytest.raises(ValueError, match="onset_trial_s must be > 0"):
        TrialMarkerParser(onset_trial_s=0)
