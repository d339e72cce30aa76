"""The simulated Kinova Gen3 and UMI-gripper worlds (MuJoCo): scenes, tasks, scripted experts, recording, envs.

Heavy imports (mujoco) happen in the submodules; this package only names what exists.
"""

from glam_lerobot.sim.tasks import EMBODIMENTS, MASK_OBJECTS, TASKS

__all__ = ["EMBODIMENTS", "MASK_OBJECTS", "TASKS"]
