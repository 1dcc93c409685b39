"""Camera conventions (SPEC §4): the signs every effect and the warp rely on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kandanim.camera import (
    Pose,
    angles_from_rotation,
    intrinsics,
    pose_from_matrix,
    relative_move,
    rotation_from_angles,
)

angle = st.floats(-179.0, 179.0)
pitch = st.floats(-89.0, 89.0)


def project(point_cam: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pixel (u, v) of a point in camera coordinates (OpenCV axes, v grows downward)."""
    uvw = k @ point_cam
    return uvw[:2] / uvw[2]


def moved(previous: Pose, current: Pose, point_prev: np.ndarray) -> np.ndarray:
    rotation, translation = relative_move(previous, current)
    return rotation @ point_prev + translation


def test_yaw_right_moves_a_point_ahead_to_the_left() -> None:
    point = moved(Pose(), Pose(yaw=10), np.array([0.0, 0.0, 5.0]))
    assert point[0] < -0.5  # camera x: the content slides left when the camera turns right
    assert point[2] > 0


def test_truck_right_moves_content_left_with_parallax() -> None:
    near = moved(Pose(), Pose(x=0.1), np.array([0.0, 0.0, 1.0]))
    far = moved(Pose(), Pose(x=0.1), np.array([0.0, 0.0, 10.0]))
    k = intrinsics(640, 640, 40.0)
    shift_near = project(near, k)[0] - k[0, 2]
    shift_far = project(far, k)[0] - k[0, 2]
    assert shift_near < shift_far < 0
    assert shift_near == pytest.approx(10 * shift_far)


def test_pedestal_up_moves_content_down_on_screen() -> None:
    point = moved(Pose(), Pose(y=0.1), np.array([0.0, 0.0, 3.0]))
    assert project(point, intrinsics(640, 640, 40.0))[1] > 319.5


def test_tilt_up_moves_content_down_on_screen() -> None:
    point = moved(Pose(), Pose(pitch=5), np.array([0.0, 0.0, 3.0]))
    assert project(point, intrinsics(640, 640, 40.0))[1] > 319.5


def test_positive_roll_turns_the_picture_counter_clockwise() -> None:
    # a point right of centre rises on screen (v decreases): counter-clockwise
    point = moved(Pose(), Pose(roll=10), np.array([1.0, 0.0, 5.0]))
    u, v = project(point, intrinsics(640, 640, 40.0))
    assert v < 319.5 and u > 319.5


def test_rotation_from_angles_axes() -> None:
    forward = np.array([0.0, 0.0, 1.0])
    assert (rotation_from_angles(30, 0, 0) @ forward)[0] > 0  # yaw right looks right
    assert (rotation_from_angles(0, 30, 0) @ forward)[1] < 0  # pitch up looks up (-y)
    up = np.array([0.0, -1.0, 0.0])
    assert (rotation_from_angles(0, 0, 30) @ up)[0] > 0  # roll clockwise: top goes right


@given(angle, pitch, angle)
def test_angles_from_rotation_inverts_rotation_from_angles(
    yaw: float, p: float, roll: float
) -> None:
    back = angles_from_rotation(rotation_from_angles(yaw, p, roll))
    assert np.allclose(back, (yaw, p, roll), atol=1e-6)


@given(angle, pitch, angle)
def test_rotations_are_proper(yaw: float, p: float, roll: float) -> None:
    r = rotation_from_angles(yaw, p, roll)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


@given(angle, pitch, angle, st.floats(-5, 5), st.floats(-5, 5), st.floats(-5, 5))
def test_pose_round_trips_through_matrices(
    yaw: float, p: float, roll: float, x: float, y: float, z: float
) -> None:
    pose = Pose(x, y, z, yaw, p, roll)
    back = pose_from_matrix(pose.world_from_cam_rotation, pose.position_cv)
    assert np.allclose(
        [back.x, back.y, back.z, back.yaw, back.pitch, back.roll],
        [x, y, z, yaw, p, roll],
        atol=1e-6,
    )


def test_relative_move_of_identical_poses_is_identity() -> None:
    pose = Pose(0.3, -0.2, 1.0, 20, -10, 5)
    rotation, translation = relative_move(pose, pose)
    assert np.allclose(rotation, np.eye(3)) and np.allclose(translation, 0)


@pytest.mark.parametrize("size", [(832, 448), (640, 640), (448, 832), (64, 64)])
def test_intrinsics_have_square_pixels_and_vertical_fov(size: tuple[int, int]) -> None:
    width, height = size
    k = intrinsics(width, height, 40.0)
    assert k[0, 0] == k[1, 1]
    assert (k[0, 2], k[1, 2]) == ((width - 1) / 2, (height - 1) / 2)
    # a ray 20° above the axis lands on the top edge of the picture
    top = project(np.array([0.0, -math.tan(math.radians(20)), 1.0]), k)
    assert top[1] == pytest.approx(k[1, 2] - height / 2)


def test_same_move_shifts_landscape_and_square_frames_alike() -> None:
    point = moved(Pose(), Pose(x=0.1, y=0.1), np.array([0.0, 0.0, 2.0]))
    shifts = []
    for width in (832, 640):
        k = intrinsics(width, 448, 40.0)
        shifts.append(project(point, k) - k[:2, 2])
    assert np.allclose(shifts[0], shifts[1])
    assert shifts[0][0] == pytest.approx(-shifts[0][1])  # x and y moves of a size shift alike
