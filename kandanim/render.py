"""The render loop: baked plan + engine → frames, in order, one at a time.

It reads only the plan (it never interpolates keyframes) and knows the engine protocol,
not diffusers. Each *stream* is one continuous image sequence following the camera: a
scene, or a chain of scenes joined by `morph`. During a `dissolve` two streams run side by
side and the output cross-fades them.

Per stream and frame: depth of the previous clean frame → forward warp by the frame's
camera move → `engine.repair` (fill + img2img) → colour coherence. Under cadence N the
stream diffuses every Nth frame and the frames between are warps of the two neighbouring
diffused frames, blended by time.

Engines that do not repaint frames (`anchored`: the preview) never warp a warped frame:
each frame is sampled once from a sharp anchor (`kandanim.anchors`), so detail does not
compound away. Either way the depth of a scene moved by an effect is scaled once, at its
first frame, so that the subject in the middle sits at `spec.FOCUS_DISTANCE`, the distance
the effects' orbits pivot around (a pure `camera:` scene keeps [near, far] as written).
Sharpening (`sharpen`) is applied to the emitted frame only, never fed back into the loop.

The loop's whole state between frames is `RenderState`, small enough to checkpoint after
every clean frame, so an interrupted render resumes bit-identically (see `resume.py`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from kandanim.anchors import (
    Anchor,
    AnchorWarper,
    Layer,
    closest_anchor,
    focus_scale,
    kept_anchors,
)
from kandanim.camera import Pose, intrinsics, relative_move
from kandanim.coherence import ColourReference, unsharp
from kandanim.depth import DepthTracker
from kandanim.engines.base import Conditioning, Engine
from kandanim.fill import ClassicalFiller
from kandanim.plan import FramePlan, Plan
from kandanim.spec import FOCUS_DISTANCE
from kandanim.warp import forward_warp

MIN_DEPTH_SCALE, MAX_DEPTH_SCALE = 0.5, 4.0
"""Bounds of the focus scaling: a far horizon in the middle must not shrink the world
until the camera flies through the foreground."""

DEPTH_SMOOTHING = 0.5  # weight of the past in the depth tracker's moving average


@dataclass(frozen=True)
class StreamSpan:
    """Frames [first, last] of one continuous image stream and the scenes it runs through."""

    scenes: tuple[int, ...]
    first: int
    last: int

    def covers(self, index: int) -> bool:
        return self.first <= index <= self.last


def stream_spans(plan: Plan, *, morph: bool = True) -> list[StreamSpan]:
    """Split the video into streams. A `morph` joins two scenes into one stream (one camera,
    embeddings slerped); `dissolve` and `cut` start a new one. Without morph support the
    engine gets dissolves instead."""
    spans: list[StreamSpan] = []
    for scene in plan.scenes:
        first = scene.start
        if scene.transition_frames:
            first = min(f.index for f in plan.frames if f.blend_to == scene.index)
        last = scene.stop - 1
        outgoing = [f.index for f in plan.frames if f.blend_from == scene.index]
        if outgoing:
            last = max(outgoing)
        joins_previous = morph and scene.index > 0 and scene.transition_in == "morph"
        if joins_previous and scene.transition_frames:
            previous = spans.pop()
            spans.append(StreamSpan(previous.scenes + (scene.index,), previous.first, last))
        else:
            spans.append(StreamSpan((scene.index,), first, last))
    return spans


@dataclass
class StreamState:
    """A stream at a clean point: its last diffused frame and what the next step needs."""

    span: StreamSpan
    position: int  # index of the last emitted frame
    frame: np.ndarray  # that frame (clean: diffused, colour-matched)
    pose: Pose
    colour_reference: np.ndarray | None
    tracker: dict[str, object]
    anchors: tuple[Anchor, ...] = ()  # anchored engines: sharp frames to sample from
    depth_scale: float = float("nan")  # set at the stream's first depth (focus scaling)


@dataclass
class RenderState:
    """Everything needed to continue after frame `next_index - 1`."""

    next_index: int = 0
    streams: dict[int, StreamState] = field(default_factory=dict)  # key: span.first

    @property
    def clean(self) -> bool:
        return all(s.position == self.next_index - 1 for s in self.streams.values())


class _Stream:
    """One running stream: emits its image for each frame of its span, with lookahead
    under cadence."""

    def __init__(self, renderer: Renderer, state: StreamState) -> None:
        self.renderer = renderer
        self.state = state
        self.tracker = renderer.make_tracker(state.span, state.position)
        if state.tracker:  # a resumed stream; a new one starts with a fresh tracker
            self.tracker.load_state(state.tracker)
        else:
            state.tracker = self.tracker.state()
        self.pending: dict[int, np.ndarray] = {}
        self.clean_depth: np.ndarray | None = None

    def image_for(self, frame: FramePlan) -> np.ndarray:
        """The stream's picture at `frame`, as emitted (sharpened when asked)."""
        return self.emitted(self._clean_image_for(frame), frame)

    def emitted(self, image: np.ndarray, frame: FramePlan) -> np.ndarray:
        """Sharpening happens here, on the way out, so it never compounds."""
        sharpen = self.renderer.plan.scenes[self.scene_at(frame)].sharpen
        return unsharp(image, sharpen) if sharpen > 0 else image

    def _clean_image_for(self, frame: FramePlan) -> np.ndarray:
        if self.renderer.anchored:
            return self._from_anchor(frame)
        if frame.index in self.pending:
            return self.pending.pop(frame.index)
        target = self._next_diffused(frame.index)
        clean = self._advance(target)
        if target == frame.index:
            return clean
        return self.pending.pop(frame.index)

    def _from_anchor(self, frame: FramePlan) -> np.ndarray:
        """One resample of the closest anchor (see `kandanim.anchors`)."""
        r = self.renderer
        start = self.state
        image = self._built_in_view(frame)
        anchors = list(start.anchors)
        if image is None:
            anchors = anchors or [self._first_anchor(start)]
            warper = r.anchor_warper(frame.fov)
            warped = warper.warp(closest_anchor(anchors, frame.pose), frame.pose)
            image = warped.image
            if warped.next_anchor is not None:
                anchors = kept_anchors([*anchors, warped.next_anchor])
                warper.forget({a.key for a in anchors})
        self.state = StreamState(
            start.span, frame.index, image, frame.pose, start.colour_reference,
            start.tracker, tuple(anchors), start.depth_scale,
        )
        return image

    def _built_in_view(self, frame: FramePlan) -> np.ndarray | None:
        """The engine's own world seen from this frame's pose, when it has one."""
        view = getattr(self.renderer.engine, "view", None)
        if view is None:
            return None
        plan = self.renderer.plan
        scene = plan.scenes[self.state.span.scenes[0]]
        rotation, translation = relative_move(plan.frames[self.state.span.first].pose,
                                              frame.pose)
        return view(scene, rotation, translation)

    def _first_anchor(self, state: StreamState) -> Anchor:
        """The stream's first frame as an anchor, with its depth (focus-scaled)."""
        depth = self._depth(state)  # also fixes state.depth_scale
        return Anchor(f"{state.span.first}.0", Layer(state.frame, depth), state.pose)

    def _next_diffused(self, index: int) -> int:
        frames = self.renderer.plan.frames
        for j in range(index, self.state.span.last + 1):
            if frames[j].diffuse:
                return j
        return self.state.span.last

    def _advance(self, target: int) -> np.ndarray:
        """Diffuse frame `target` from the current clean frame; queue the frames between."""
        r = self.renderer
        start = self.state
        depth = self.clean_depth if self.clean_depth is not None else self._depth(start)
        self.clean_depth = None
        # the checkpoint holds the tracker as it is *before* the new clean frame's depth,
        # so a resumed run recomputes that depth exactly as this run does
        tracker_state = self.tracker.state()
        frame = r.plan.frames[target]
        warped = r.warp(start.frame, depth, start.pose, frame)
        scene = r.plan.scenes[self.scene_at(frame)]
        image = r.engine.repair(warped.image, warped.holes, frame, scene, self.conditioning(frame))
        image = self._finish(image, frame)
        self.state = StreamState(
            start.span, target, image, frame.pose, self._reference_after(frame, image),
            tracker_state, (), start.depth_scale,
        )
        between = range(start.position + 1, target)
        if between:
            # depth is computed once per diffused frame: the frames between reuse it
            self.clean_depth = self._depth(self.state)
            for index in between:
                self.pending[index] = r.interpolate(
                    (start.frame, depth, start.pose), (image, self.clean_depth, frame.pose),
                    r.plan.frames[index], (index - start.position) / (target - start.position),
                )
        return image

    def _depth(self, state: StreamState) -> np.ndarray:
        """Depth of a clean frame, mapped with that frame's own [near, far], times the
        stream's focus scale (fixed at its first depth: `state.depth_scale`). Effects are
        authored around the focus distance, so a scene moved by one is scaled to put its
        subject there; a pure `camera:` scene keeps its depth in [near, far] as written."""
        own = self.renderer.plan.frames[state.position]
        self.tracker.set_range(own.near, own.far)
        depth = self.tracker(state.frame)
        if np.isnan(state.depth_scale):
            state.depth_scale = 1.0
            if self.renderer.plan.scenes[state.span.scenes[0]].effect is not None:
                scale = focus_scale(depth, FOCUS_DISTANCE)
                state.depth_scale = min(max(scale, MIN_DEPTH_SCALE), MAX_DEPTH_SCALE)
        if state.depth_scale != 1.0:
            depth = depth * np.float32(state.depth_scale)
        return depth

    def scene_at(self, frame: FramePlan) -> int:
        scenes = self.state.span.scenes
        if frame.scene in scenes:
            return frame.scene
        # a dissolve: this stream runs on past its own scene (or starts before it)
        return scenes[-1] if frame.index > self.state.span.first else scenes[0]

    def conditioning(self, frame: FramePlan) -> Conditioning:
        scenes = self.state.span.scenes
        if frame.blend_from in scenes and frame.blend_to in scenes:
            return [(frame.blend_from, 1.0 - frame.transition), (frame.blend_to, frame.transition)]
        return [(self.scene_at(frame), 1.0)]

    def _finish(self, image: np.ndarray, frame: FramePlan) -> np.ndarray:
        scene = self.renderer.plan.scenes[self.scene_at(frame)]
        reference = self.state.colour_reference
        if scene.colour_coherence and reference is not None:
            matched = self.renderer.colour_reference(reference).match(image)
            weight = self._morph_weight(frame)
            image = matched if weight == 0.0 else _mix(matched, image, weight)
        return image

    def _morph_weight(self, frame: FramePlan) -> float:
        """Inside a morph the colour reference fades out as the new scene fades in."""
        scenes = self.state.span.scenes
        if frame.blend_from in scenes and frame.blend_to in scenes:
            return frame.transition
        return 0.0

    def _reference_after(self, frame: FramePlan, image: np.ndarray) -> np.ndarray | None:
        """At the end of a morph window the new scene takes its own colour reference."""
        scenes = self.state.span.scenes
        plan = self.renderer.plan
        nxt = frame.index + 1
        if (
            frame.blend_to in scenes
            and frame.blend_from in scenes
            and (nxt >= len(plan.frames) or plan.frames[nxt].blend_to != frame.blend_to)
        ):
            return image
        return self.state.colour_reference


class Renderer:
    """Runs a plan through an engine. Iterate `frames()` to get (index, image) in order."""

    def __init__(self, plan: Plan, engine: Engine, state: RenderState | None = None) -> None:
        self.plan = plan
        self.engine = engine
        self.spans = stream_spans(plan, morph=supports_morph(engine))
        self.state = state or RenderState()
        self.streams: dict[int, _Stream] = {
            key: _Stream(self, s) for key, s in self.state.streams.items()
        }
        self.filler = ClassicalFiller()
        self.anchored = bool(getattr(engine, "anchored", False))
        self._anchor_warpers: dict[float, AnchorWarper] = {}
        self._intrinsics: dict[float, np.ndarray] = {}
        self._colour_references: dict[int, tuple[np.ndarray, ColourReference]] = {}

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        for frame in self.plan.frames[self.state.next_index :]:
            yield frame.index, self._render(frame)

    def _render(self, frame: FramePlan) -> np.ndarray:
        images: list[np.ndarray] = []
        for span in self._active(frame.index):
            stream = self.streams.get(span.first)
            if stream is None:
                source = images[-1] if images else None
                stream = self._start(span, frame, source)
            started_here = stream.state.position == frame.index
            if started_here:
                images.append(stream.emitted(stream.state.frame, frame))
            else:
                images.append(stream.image_for(frame))
        for key in [k for k, s in self.streams.items() if s.state.span.last <= frame.index]:
            del self.streams[key]
        self.state = RenderState(
            frame.index + 1, {k: s.state for k, s in self.streams.items()}
        )
        if len(images) == 1:
            return images[0]
        return _mix(images[0], images[1], frame.transition)

    def _active(self, index: int) -> list[StreamSpan]:
        return [span for span in self.spans if span.covers(index)]

    def _start(self, span: StreamSpan, frame: FramePlan, source: np.ndarray | None) -> _Stream:
        scene = self.plan.scenes[span.scenes[0]]
        image = self.engine.first_frame(scene, frame, source)
        reference = image if scene.colour_coherence else None
        stream = _Stream(self, StreamState(span, frame.index, image, frame.pose, reference, {}))
        self.streams[span.first] = stream
        return stream

    def make_tracker(self, span: StreamSpan, index: int) -> DepthTracker:
        frame = self.plan.frames[index]
        scene = self.plan.scenes[span.scenes[0]]
        estimator = self.engine.depth_estimator(scene.depth)
        return DepthTracker(estimator, frame.near, frame.far, smoothing=DEPTH_SMOOTHING)

    def anchor_warper(self, fov: float) -> AnchorWarper:
        if fov not in self._anchor_warpers:
            self._anchor_warpers[fov] = AnchorWarper(
                self.intrinsics(fov), self.plan.width, self.plan.height
            )
        return self._anchor_warpers[fov]

    def colour_reference(self, reference: np.ndarray) -> ColourReference:
        """The reference's histograms, computed once per reference frame."""
        cached = self._colour_references.get(id(reference))
        if cached is None or cached[0] is not reference:
            cached = (reference, ColourReference(reference))
            self._colour_references = {id(reference): cached}  # one scene at a time is typical
        return cached[1]

    def intrinsics(self, fov: float) -> np.ndarray:
        if fov not in self._intrinsics:
            self._intrinsics[fov] = intrinsics(self.plan.width, self.plan.height, fov)
        return self._intrinsics[fov]

    def warp(self, image: np.ndarray, depth: np.ndarray, pose: Pose, frame: FramePlan):
        rotation, translation = relative_move(pose, frame.pose)
        return forward_warp(image, depth, self.intrinsics(frame.fov), rotation, translation)

    def interpolate(
        self,
        before: tuple[np.ndarray, np.ndarray, Pose],
        after: tuple[np.ndarray, np.ndarray, Pose],
        frame: FramePlan,
        weight: float,
    ) -> np.ndarray:
        """A frame between two diffused ones: both warped to its pose, blended by time;
        a hole in one is taken from the other, holes in both are filled classically."""
        a = self.warp(before[0], before[1], before[2], frame)
        b = self.warp(after[0], after[1], after[2], frame)
        w = np.where(a.holes, 1.0, np.where(b.holes, 0.0, weight)).astype(np.float32)
        blended = a.image * (1.0 - w[..., None]) + b.image * w[..., None]
        image = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        both = a.holes & b.holes
        return self.filler.fill(image, both) if both.any() else image


REVEAL_ANGLE = 40.0
"""Degrees a photo's camera may turn before most of the view has to be invented."""


def reveal_notices(plan: Plan, engine: Engine) -> list[str]:
    """One notice per render naming the scenes whose camera turns so far from their
    photo that the view shows more than the photo holds, for engines that cannot invent
    content (SPEC §7: a full turn on a photo says so once)."""
    if not getattr(engine, "anchored", False):
        return []
    turned: list[str] = []
    for scene in plan.scenes:
        if scene.init_image is None:
            continue
        frames = [f for f in plan.frames if f.scene == scene.index]
        widest = max(_turn_degrees(frames[0].pose, f.pose) for f in frames)
        if widest > REVEAL_ANGLE:
            travelled = sum(_turn_degrees(a.pose, b.pose) for a, b in itertools.pairwise(frames))
            turned.append(f"scene {scene.index + 1} (it turns {travelled:.0f}°)")
    if not turned:
        return []
    notice = (
        f"the camera turns further than the photo reaches in {', '.join(turned)}: the "
        f"{engine.name} engine continues the picture past its edges by mirroring it, "
        "blurred; diffusion (--engine kandinsky) paints what lies beyond"
    )
    return [notice]


def _turn_degrees(a: Pose, b: Pose) -> float:
    rotation, _ = relative_move(a, b)
    cosine = (float(np.trace(rotation)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def supports_morph(engine: Engine) -> bool:
    """Engines without prompt embeddings (preview) render a morph as a dissolve."""
    return bool(getattr(engine, "supports_morph", False))


def _mix(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight)·a + weight·b, rounded, uint8."""
    mixed = a.astype(np.float32) * (1.0 - weight) + b.astype(np.float32) * weight
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)

