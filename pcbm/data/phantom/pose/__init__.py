"""The probe-pose phantom: a 3D fetus cut by the probe's plane, rendered through the B-mode pipeline.

A :class:`PoseScene` holds one fetus (head with CSP, thalami, lateral ventricles, cerebellum and
falx; trunk with stomach, umbilical vein, kidneys, spine and heart; a femur in its thigh) in a
scanner style's sector. A :class:`Pose` (along, across, tilt, rotation, depth) gives a section:
each shape is cut analytically (an ellipsoid gives an ellipse, a rod a segment or a dot), drawn
with the 2D phantom's tissues and masks and rendered as any phantom scene; properties are measured
from the masks by :func:`pcbm.concepts.measure.derive_properties`. The standard pose of each plane
in :data:`POSE_PLANES` is known exactly, so the offset from any pose to each plane is too.

Example:
    >>> import numpy as np
    >>> scene = PoseScene.sample(np.random.default_rng(3), size=96)
    >>> pose = scene.standard_pose("femur").moved("along", 12.0)
    >>> [round(float(x), 1) for x in scene.offset(pose, "femur")]
    [-12.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from pcbm.data.phantom.pose.geometry import POSE_DIMS, Ellipsoid, Pose, Rod, probe_frame, section_ellipse, section_rod
from pcbm.data.phantom.pose.scene import POSE_PLANES, START_BOX, PoseFrame, PoseScene, random_pose

__all__ = ["POSE_DIMS", "POSE_PLANES", "START_BOX", "Ellipsoid", "Pose", "PoseFrame", "PoseScene", "Rod",
           "probe_frame", "random_pose", "section_ellipse", "section_rod"]
