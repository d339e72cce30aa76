"""Make `--policy.type=glam_mip` and `--policy.type=mip` known to LeRobot.

Imported by the installed plugin distribution `lerobot_policy_glam` (LeRobot imports every distribution named
`lerobot_policy_*` at start-up). Only the light configuration modules are imported here; LeRobot imports the
modeling_/processor_ modules by naming convention when it needs them.
"""

from glam_lerobot.policies.glam_mip.configuration_glam_mip import GlamMipConfig  # noqa: F401  (registers)
from glam_lerobot.policies.mip.configuration_mip import MipConfig  # noqa: F401  (registers)
from glam_lerobot.policies.toolkit_columns import keep_toolkit_columns

keep_toolkit_columns()
