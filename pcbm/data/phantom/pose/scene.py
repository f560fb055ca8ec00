"""A probe-pose scene: one fetus, every standard pose known exactly, any pose rendered as a frame.

Example:
    >>> import numpy as np
    >>> scene = PoseScene.sample(np.random.default_rng(0), style="default", size=96)
    >>> f = scene.render(scene.standard_pose("trans_thalamic"), np.random.default_rng(1))
    >>> f.image.shape, f.properties["csp_visible"], f.standard_for("trans_thalamic")
    ((96, 96), 1.0, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pcbm.concepts.measure import derive_properties
from pcbm.concepts.ontology import VISUAL_CONCEPT_NAMES, get_plane
from pcbm.data.phantom.pose.draw import draw_section
from pcbm.data.phantom.pose.fetus import HEART_LEVEL, TV_LEVEL, Fetus, sample_fetus
from pcbm.data.phantom.pose.geometry import POSE_DIMS, Pose, probe_frame
from pcbm.data.phantom.render import Geometry, draw_screen, geometry, render
from pcbm.errors import look_up

#: the planes the pose phantom knows the standard pose of
POSE_PLANES: tuple[str, ...] = ("trans_thalamic", "trans_ventricular", "trans_cerebellar", "abdomen", "femur", "thorax")
_GROUP = {"trans_thalamic": "head", "trans_ventricular": "head", "trans_cerebellar": "head",
          "abdomen": "abdomen", "thorax": "thorax", "femur": "femur"}


@dataclass
class PoseFrame:
    """One rendered frame: image, masks, measured properties (as any phantom sample), and its pose."""

    image: np.ndarray  # (H, W) uint8
    masks: dict[str, np.ndarray]  # name -> (H, W) bool
    properties: dict[str, float | None]
    pixel_spacing_mm: float
    pose: Pose
    fov: np.ndarray

    def standard_for(self, plane: str) -> bool:
        """Whether the measured properties meet every ISUOG criterion of ``plane``."""
        return bool(get_plane(plane).check(self.properties)[0])


@dataclass(frozen=True)
class PoseScene:
    """A fetus in a scanner's sector (style, size)."""

    fetus: Fetus
    geom: Geometry
    style: str

    @classmethod
    def sample(cls, rng: np.random.Generator, style: str = "default", size: int = 256, ga: float | None = None) -> PoseScene:
        """A new fetus under a named scanner style."""
        geom = geometry(style, int(size))
        return cls(sample_fetus(geom, rng, ga), geom, style)

    def standard_pose(self, plane: str) -> Pose:
        """The exact pose of ``plane``'s standard section of this fetus (one of :data:`POSE_PLANES`)."""
        look_up(plane, POSE_PLANES, "pose-phantom plane")
        f, depth = self.fetus, self.fetus.depths[_GROUP[plane]]
        head = f.head
        if plane == "trans_thalamic":
            return Pose(head.center[2], head.center[0], 0.0, 0.0, depth)
        if plane == "trans_ventricular":
            return Pose(head.center[2] + TV_LEVEL * head.semi[2], head.center[0], 0.0, 0.0, depth)
        if plane == "trans_cerebellar":  # the tilt-free plane through the CSP and the vermis
            p, q = f.ellipsoids["csp"].center, f.ellipsoids["vermis"].center
            th = math.atan((q[2] - p[2]) / (q[0] - p[0]))
            x0 = head.center[0]
            return Pose(p[2] - math.tan(th) * (p[0] - x0), x0, 0.0, math.degrees(th), depth)
        if plane == "abdomen":
            c = f.ellipsoids["trunk"].center
            return Pose(c[2], c[0], 0.0, 0.0, depth)
        if plane == "thorax":
            c = f.ellipsoids["trunk"].center
            return Pose(c[2] + HEART_LEVEL * f.trunk_radius, c[0], 0.0, 0.0, depth)
        rod = f.rods["femur"]
        d, mid = rod.q - rod.p, (rod.p + rod.q) / 2
        return Pose(mid[2], mid[0], 0.0, math.degrees(math.atan(d[2] / d[0])), depth)

    def target_point(self, plane: str) -> np.ndarray:
        """(3,) the point of the fetus ``plane``'s standard section is centred on (world mm)."""
        f, head = self.fetus, self.fetus.head
        if plane == "trans_thalamic":
            return head.center
        if plane == "trans_ventricular":
            return head.center + head.axes_rows[2] * TV_LEVEL * head.semi[2]
        if plane == "trans_cerebellar":
            return (f.ellipsoids["csp"].center + f.ellipsoids["vermis"].center) / 2
        if plane == "abdomen":
            return f.ellipsoids["trunk"].center
        if plane == "thorax":
            return f.ellipsoids["trunk"].center + np.array([0.0, 0.0, HEART_LEVEL * f.trunk_radius])
        rod = f.rods["femur"]
        return (rod.p + rod.q) / 2

    def plane_offset(self, pose: Pose, plane: str) -> np.ndarray:
        """(4,) how far ``pose``'s section is from ``plane``'s standard one, seen at the plane's centre:
        the centre's distance from the section (mm, signed), its sideways shift in the image against the
        standard view (mm), and the tilt and rotation still to turn (degrees). A tilt moves the section
        at depth, so this (not :meth:`offset`) is what a move should reduce."""
        look_up(plane, POSE_PLANES, "pose-phantom plane")
        p, std = self.target_point(plane), self.standard_pose(plane)
        fr, fs = probe_frame(pose), probe_frame(std)
        dist = float(fr.normal @ (p - fr.origin))
        shift = float(fr.to_plane(p)[0] - fs.to_plane(p)[0])
        return np.array([dist, shift, std.tilt - pose.tilt, std.rotation - pose.rotation])

    def offset(self, pose: Pose, plane: str) -> np.ndarray:
        """(4,) the move (along mm, across mm, tilt deg, rotation deg) from ``pose`` to ``plane``'s standard pose."""
        return self.standard_pose(plane).vector() - pose.vector()

    def render(self, pose: Pose, rng: np.random.Generator, noise: np.ndarray | None = None) -> PoseFrame:
        """Render the section at ``pose`` through the B-mode pipeline; properties measured from its masks."""
        geom = self.geom
        spacing = pose.depth / geom.depth_px
        cv = draw_section(self.fetus, probe_frame(pose), geom, spacing)
        img = render(cv.layers, geom, rng, depth_mm=pose.depth, gain_db=self.fetus.gain_db, noise=noise)
        ga = self.fetus.ga
        lines = (geom.style.header, f"GA {int(ga)}w{int((ga % 1) * 7)}d  D {pose.depth / 10:.1f}cm  G{50 + self.fetus.gain_db:.0f}")
        draw_screen(img, geom, spacing, lines)
        bool_masks = cv.masks.view(bool)
        masks = {n: bool_masks[i] for i, n in enumerate(VISUAL_CONCEPT_NAMES)}
        props = derive_properties(masks, image=img, pixel_spacing_mm=spacing, field_of_view=geom.fov)
        return PoseFrame(img, masks, props, spacing, pose, geom.fov)


#: half-widths of the box around a standard pose that random starting poses are drawn from
START_BOX = {"along": 30.0, "across": 15.0, "tilt": 25.0, "rotation": 35.0}


def random_pose(scene: PoseScene, plane: str, rng: np.random.Generator, scale: float = 1.0) -> Pose:
    """A pose drawn uniformly in :data:`START_BOX` (times ``scale``) around ``plane``'s standard pose."""
    std = scene.standard_pose(plane)
    values = {d: getattr(std, d) + float(rng.uniform(-1, 1)) * START_BOX[d] * scale for d in POSE_DIMS}
    return Pose(**values, depth=std.depth)
