"""Deforum schedules: the grammar, interpolation and expressions against hand-computed
values, and hostile or malformed input refused with the field and the position."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from kandanim.importers.schedules import ScheduleError, compile_expression, parse_schedule


def values(text: str, frames: int = 10, seed: float = 0.0) -> np.ndarray:
    return parse_schedule(text, "field", max_frames=frames, seed=seed).values(frames, seed)


def test_numbers_are_joined_linearly_and_held_outside_the_keys() -> None:
    assert values("0: (0), 4: (2)", 6).tolist() == [0, 0.5, 1, 1.5, 2, 2]
    # no key at frame 0: the first value holds back to frame 0 (Deforum would crash)
    assert values("2: (3), 4: (5)", 6).tolist() == [3, 3, 3, 4, 5, 5]


def test_an_expression_runs_every_frame_until_the_next_key() -> None:
    # t*2 on frames 0…3, then the number 20 at frame 4 holds (last key)
    assert values("0: (t*2), 4: (20)", 6).tolist() == [0, 2, 4, 6, 20, 20]
    # a number, then an expression: linear from the number to the expression's first value
    assert values("0: (0), 4: (t)", 6).tolist() == [0, 1, 2, 3, 4, 5]
    # numbers inside an expression segment do not interpolate it away (spacewalk-style)
    assert values("0: (0), 2: (10*t), 4: (0)", 6).tolist() == [0, 10, 20, 30, 0, 0]


def test_variables_and_functions() -> None:
    expected = [1.0025 + 0.002 * math.sin(1.25 * 3.14 * t / 30) for t in range(5)]
    assert np.allclose(values("0: (1.0025+0.002*sin(1.25*3.14*t/30))", 5), expected)
    assert values("0: (max_f)", 4).tolist() == [3, 3, 3, 3]
    assert values("0: (s + t)", 3, seed=40).tolist() == [40, 41, 42]
    assert values("0: (abs(t-2) + floor(t/2) + round(2.6) + (t>1)*1.0)", 4).tolist() == [
        2 + 0 + 3, 1 + 0 + 3, 0 + 1 + 3 + 1, 1 + 1 + 3 + 1]
    assert values("0: (1e-3*t), 2: (5.68e-05)", 3).tolist() == [0, 0.001, 5.68e-05]
    assert values("0:(-7%3), 1: (7/2), 2: (2**-1)", 3).tolist() == [2, 3.5, 0.5]


def test_keys_may_be_quoted_expressions_and_later_duplicates_win() -> None:
    assert values('0: (0), "max_f-2": (8)', 10).tolist()[-3:] == [8, 8, 8]
    assert values("0: (0), 'max_f/2': (4)", 9).tolist()[:5] == [0, 1, 2, 3, 4]
    assert values("0: (1), 0: (2)", 2).tolist() == [2, 2]


def test_keys_outside_the_video_are_reported_and_ignored() -> None:
    schedule = parse_schedule("0: (0), 3: (3), 7: (100)", "zoom", max_frames=5)
    assert schedule.ignored(5) == [7]
    assert schedule.values(5).tolist() == [0, 1, 2, 3, 3]


def test_spaces_and_a_trailing_comma_are_tolerated() -> None:
    assert values("0:(0),    1:(0.50),   2:(1) , ", 3).tolist() == [0, 0.5, 1]


@pytest.mark.parametrize("text", [
    "0: (__import__('os').system('echo hacked'))",
    "0: ((1).__class__)",
    "0: (9**9**9)",
    "0: (10**10**10 + t)",
    "0: ('a' * 10**9)",
    "0: (open('/etc/passwd'))",
    "0: ([1] * 10**9)",
    "0: ({'a': 1})",
    "0: (t.real)",
    "0: (exec)",
    "0: (" + "t+" * 3000 + "1)",
    "0: (" + "(" * 500 + "1" + ")" * 500 + "+t)",
    "0: (f'{t}')",
    "0: (sin(t) if t else cos)",
])
def test_hostile_expressions_are_refused_before_anything_runs(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, "translation_x", max_frames=100)  # parsing only: nothing runs
    assert caught.value.field == "translation_x"
    assert caught.value.message.startswith("translation_x: ")
    assert time.perf_counter() - started < 5  # a hang guard, not a speed target


def test_runaway_values_fail_with_the_frame() -> None:
    with pytest.raises(ScheduleError, match=r"field: character 1: '\(t\*\*t\*\*t\)' fails at frame 5"):
        values("0: (t**t**t)")
    with pytest.raises(ScheduleError, match="division by zero"):
        values("0: (1/(t-3))")


def test_a_double_colon_pair_is_refused_at_the_second_colon() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("0: (1), 5: 0: (t*2)", "rotation_3d_x", max_frames=10)
    error = caught.value
    assert error.offset == "0: (1), 5: 0: (t*2)".index(":", 10)  # the second ':' (0-based)
    assert "rotation_3d_x: character 13: malformed pair '5: 0: (t*2)'" in error.message
    assert "reads this pair as the value '0'" in (error.hint or "")


@pytest.mark.parametrize(("text", "reason"), [
    ("0 (1)", "a key without a value"),
    ("0: (1), 10: ()", "a key without a value"),
    ("0: (1 +* 2)", "not a valid expression"),
    ("0: (where(t>5, 1, 0))", "splits a schedule at every comma"),
    ("0: (min(t))", "takes 2 arguments"),
    ("0: (pi * q)", "unknown name 'q'"),
    ("0: (sinn(t))", "'sinn\\(…\\)' is not an allowed function — did you mean 'sin'"),
    ("x: (1)", "bad key 'x'"),
])
def test_malformed_schedules_name_the_problem(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason):
        parse_schedule(text, "angle", max_frames=10)


def test_each_expression_is_parsed_once() -> None:
    expression = compile_expression("sin(t) * max_f", ("t", "max_f", "s"))
    tree = expression.tree
    results = [expression.evaluate(t=float(t), max_f=2.0, s=0.0) for t in range(3)]
    assert expression.tree is tree
    assert np.allclose(results, [0, 2 * math.sin(1), 2 * math.sin(2)])
    assert expression.names == {"t", "max_f"}


def test_a_costly_animation_is_refused_before_any_expression_runs() -> None:
    from kandanim.importers.schedules import check_budget

    heavy = "0: (" + "+".join(["sin(t)"] * 100) + ")"  # ~700 parts, on every frame
    schedules = [parse_schedule(heavy, "translation_x", max_frames=20_000)]
    with pytest.raises(ScheduleError, match="translation_x: its expressions would be evaluated"):
        check_budget(schedules, 20_000)
    check_budget(schedules, 100)  # the same expression over a short video is fine
