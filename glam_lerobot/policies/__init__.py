"""Stage 2 policies as LeRobot plugins: `glam_mip` (latent MIP + action decoder, GLAM Eq. 8) and `mip` (the BC
baseline). `register` is what the `lerobot_policy_glam` plugin distribution imports; the rest follows LeRobot's
configuration_/modeling_/processor_ folder convention so `lerobot-train --policy.type=glam_mip` finds it."""
