"""Deforum's 3D warp approach, rebuilt here as the speed baseline for our forward warp.

What deforum-kandinsky does per frame (`anim_frame_warp_3d`), re-implemented from its
description with plain torch matrices instead of pytorch3d:

1. a [-1, 1] grid of pixel positions with the depth map as z forms a point cloud (the
   x, y of the grid are *not* scaled by depth — that is the approach, quirks included);
2. both a FoV perspective camera at the old pose and one at the new pose (pytorch3d's
   `FoVPerspectiveCameras` convention: row vectors, world→view `X·R + T`, then the
   projection matrix and a divide by w) project the cloud to NDC;
3. the offsets `new − old` are subtracted from an identity sampling grid;
4. `torch.nn.functional.grid_sample` (bilinear, border padding) resamples the frame —
   a backward warp, so there is no z-buffer and no disocclusion mask;
5. uint8 numpy in, float tensors inside, uint8 numpy out, all rebuilt every frame.

Used by `bench_warp.py` only; not part of the package.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BORDER_NUDGE = 1.0 / 512 - 0.0001  # Deforum adds this before sampling (rounding bias)


def fov_projection(fov_deg: float, aspect: float, near: float, far: float) -> torch.Tensor:
    """(4, 4) perspective matrix for row vectors (`p_clip = p_view @ P`), pytorch3d-style.

    NDC x spans [-1, 1] across the width, y across the height; w = z (view depth).
    """
    scale_y = 1.0 / math.tan(math.radians(fov_deg) / 2.0)
    matrix = torch.zeros(4, 4, dtype=torch.float32)
    matrix[0, 0] = scale_y / aspect
    matrix[1, 1] = scale_y
    matrix[2, 2] = far / (far - near)
    matrix[3, 2] = -far * near / (far - near)
    matrix[2, 3] = 1.0
    return matrix


def world_to_view(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(4, 4) row-vector transform `X_view = X_world @ R + T`."""
    matrix = torch.eye(4, dtype=torch.float32)
    matrix[:3, :3] = rotation
    matrix[3, :3] = translation
    return matrix


def project(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """NDC (x, y) of (N, 3) points through a (4, 4) row-vector transform, divided by w."""
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1) @ transform
    w = homogeneous[:, 3:4]
    w = torch.where(w.abs() < 1e-8, torch.full_like(w, 1e-8), w)  # as pytorch3d clamps
    return homogeneous[:, :2] / w


def deforum_warp(
    image: np.ndarray,
    depth: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    *,
    fov_deg: float = 40.0,
    near: float = 1.0,
    far: float = 10.0,
) -> np.ndarray:
    """Warp an RGB uint8 (H, W, 3) frame by the move `(rotation, translation)`, Deforum's way.

    `rotation` (3, 3) and `translation` (3,) are the new camera's world→view transform
    in the row-vector convention above; the old camera is the identity.
    """
    height, width = image.shape[:2]
    aspect = width / height
    projection = fov_projection(fov_deg, aspect, near, far)
    old_camera = world_to_view(torch.eye(3), torch.zeros(3)) @ projection
    new_camera = (
        world_to_view(
            torch.as_tensor(rotation, dtype=torch.float32),
            torch.as_tensor(translation, dtype=torch.float32).reshape(3),
        )
        @ projection
    )
    # The point cloud: a [-1, 1] grid (rebuilt every frame, as Deforum does) and depth as z.
    ys, xs = torch.meshgrid(
        torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
    )
    zs = torch.as_tensor(depth, dtype=torch.float32)
    points = torch.stack((xs.flatten(), ys.flatten(), zs.flatten()), dim=1)
    offsets = project(points, new_camera) - project(points, old_camera)
    identity = F.affine_grid(
        torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), [1, 1, height, width],
        align_corners=False,
    )
    grid = identity - offsets.reshape(1, height, width, 2)
    pixels = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
    warped = F.grid_sample(
        pixels + BORDER_NUDGE, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    result = warped.squeeze(0).clamp(0, 255).permute(1, 2, 0).numpy()
    return result.astype(np.uint8)
