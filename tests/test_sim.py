"""The simulated worlds: models from the Gen3 facts, seeded placements, experts, masks, Gymnasium envs, replay."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from glam_lerobot import schema
from glam_lerobot.ingest.kinova_fk import forward_kinematics
from glam_lerobot.sim import EMBODIMENTS, MASK_OBJECTS, TASKS, models, scene, tasks
from glam_lerobot.sim.env import make_env
from glam_lerobot.sim.experts import Arm, KinovaController, run_expert
from glam_lerobot.sim.render import Cameras, object_bodies, render_object_masks
from glam_lerobot.sim.replay import rollout_actions
from glam_lerobot.sim.world import SimWorld


def test_the_gen3_model_follows_the_published_dh_table_and_urdf_limits():
    import mujoco  # after glam_lerobot, which picks the headless GL backend mujoco reads at import

    world = SimWorld("lift", "kinova")
    m = world.model
    ik = world.iks[0]
    base = m.body("arm0/base").pos
    rng = np.random.default_rng(0)
    for q in rng.uniform(-2.2, 2.2, size=(50, 7)):
        pos, rot = ik.forward(q)
        dh_pos, dh_rot = forward_kinematics(q, tcp_offset=models.PINCH_DEPTH)
        np.testing.assert_allclose(pos, dh_pos + base, atol=5e-4)
        np.testing.assert_allclose(rot[:, 2], dh_rot[:, 2], atol=2e-3)  # the approach axis
    limits = {j: tuple(m.jnt_range[m.joint(f"arm0/joint_{j}").id]) for j in (2, 4, 6)}
    assert limits == {2: (-2.41, 2.41), 4: (-2.66, 2.66), 6: (-2.23, 2.23)}
    assert not any(m.jnt_limited[m.joint(f"arm0/joint_{j}").id] for j in (1, 3, 5, 7))
    assert m.ngeom and all(t != mujoco.mjtGeom.mjGEOM_MESH for t in m.geom_type)  # primitives only
    assert all(m.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED for a in world.joint_act[0])  # position servos


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_gripper_command_one_closes_and_zero_opens_to_85_mm(embodiment):
    world = SimWorld("lift", embodiment)
    world.reset(0)
    arm = Arm(world, 0)
    for grip, expected in ((1.0, 0.0), (0.0, schema.GRIPPER_MAX_OPENING)):
        targets = [(arm.pos, arm.rot, grip)]
        for _ in range(5):
            if embodiment == "kinova":
                world.step_kinova(KinovaController(world).action(targets))
            else:
                world.step_umi(targets)
        assert world.ee_pose()[9] == pytest.approx(expected, abs=2e-3)


def test_the_same_seed_places_the_objects_identically_for_both_embodiments():
    for task in TASKS:
        starts = []
        for embodiment in EMBODIMENTS:
            world = SimWorld(task, embodiment)
            world.reset(7)
            starts.append(world.object_positions())
        for name in starts[0]:
            np.testing.assert_allclose(starts[0][name], starts[1][name], atol=1e-6)
    assert tasks.sample_placement("stack_two", 7) != tasks.sample_placement("stack_two", 8)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_the_scripted_expert_solves_the_task_and_doing_nothing_does_not(task, embodiment):
    world = SimWorld(task, embodiment)
    assert run_expert(world, 11)
    world.reset(11)
    assert not world.success()
    for _ in range(10):  # standing still at home does not solve it either
        if embodiment == "kinova":
            world.step_kinova(np.concatenate([np.r_[q, 0.0] for q in world.home_q]))
        else:
            world.step_umi([Arm(world, a).target() for a in range(world.arms)])
    assert not world.success()


def test_the_bottle_survives_a_push_from_above_and_falls_when_struck_from_the_side():
    world = SimWorld("knock_down", "umi")
    world.reset(3)
    b = world.object_positions()["bottle"]
    arm = Arm(world, 0)
    palm = 0.063  # the UMI body's underside, above the pinch point, presses on the bottle's top (fingers open)
    for offset in (0.0, 0.02):  # centred and off-centre
        steps = [
            *arm.move([b[0] + offset, b[1], 0.35], grip=0.0),
            *arm.move([b[0] + offset, b[1], scene.BOTTLE_HEIGHT - palm - 0.015], speed=0.1),
            *arm.hold(5),
            *arm.move([b[0] + offset, b[1], 0.35]),
        ]
        for t in steps:
            world.step_umi([t])
        assert tasks._up_z(world.object_quats()["bottle"]) > 0.98  # pressed down on: still upright
        assert not world.success()
    b = world.object_positions()["bottle"]
    steps = [
        *arm.move([b[0] - 0.13, b[1], 0.13], grip=1.0),
        *arm.move([b[0] + 0.05, b[1], 0.13], speed=0.3),
        *arm.move([b[0] - 0.08, b[1], 0.25]),
        *arm.hold(6),
    ]
    for t in steps:
        world.step_umi([t])
    assert world.success()


def test_object_positions_from_recorded_qpos_match_the_simulator():
    world = SimWorld("stack_two", "kinova")
    world.reset(5)
    qpos = world.data.qpos[None].astype(np.float32)
    for name, pos in tasks.object_positions("stack_two", "kinova", qpos).items():
        np.testing.assert_allclose(pos[0], world.object_positions()[name], atol=1e-6)
    with pytest.raises(ValueError, match="nq"):
        tasks.object_positions("stack_two", "umi", np.zeros((1, 3)))


def test_masks_rerendered_from_qpos_equal_the_live_masks_and_cover_the_red_cube():
    world = SimWorld("stack_two", "kinova")
    world.reset(2)
    cams = Cameras(world.model, 64)
    live = cams.masks(world.data, object_bodies(world.model, ["cube_red"]))
    rgb = cams.rgb(world.data)
    cams.close()
    again = render_object_masks("stack_two", "kinova", world.data.qpos[None], ["cube_red"], image_size=64)
    for cam in schema.CAMERAS:
        assert again[cam].shape == (1, 64, 64)
        np.testing.assert_array_equal(again[cam][0], live[cam])
        assert live[cam].sum() > 3
        red = rgb[cam][live[cam]].astype(int)
        assert (red[:, 0] > red[:, 1] + 40).mean() > 0.8  # the masked pixels are the red cube's
    with pytest.raises(ValueError, match="no object"):
        render_object_masks("stack_two", "kinova", world.data.qpos[None], ["cube_purple"], image_size=32)
    assert set(MASK_OBJECTS) == set(TASKS)


def test_one_read_rendering_gives_mujoco_renderers_pixels_and_masks_over_an_episode():
    import mujoco

    world = SimWorld("stack_two", "kinova")
    cams, reference = Cameras(world.model, 48), mujoco.Renderer(world.model, 48, 48)
    bodies = object_bodies(world.model, MASK_OBJECTS["stack_two"])
    is_object = np.isin(world.model.geom_bodyid, bodies)
    seen, differ = [], []

    def check(w, action):
        images, masks = cams.render(w.data, bodies)
        for cam in schema.CAMERAS:
            reference.update_scene(w.data, camera=cam)
            image = reference.render()
            reference.enable_segmentation_rendering()
            seg = reference.render()
            reference.disable_segmentation_rendering()
            expected = (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & is_object[np.maximum(seg[..., 0], 0)]
            expected &= seg[..., 0] >= 0
            np.testing.assert_array_equal(masks[cam], expected)
            # drawn at another place in the framebuffer, the odd edge pixel rasterises differently
            differ.append((images[cam] != image).any(-1).mean())
            seen.append(masks[cam].sum())

    run_expert(world, 1, on_step=check)
    cams.close()
    assert min(seen) > 0 and max(seen) > 2 * min(seen)  # the objects are in view and the masks follow them
    assert np.mean(differ) < 1e-3 and max(differ) < 5e-3


def test_gymnasium_env_runs_the_expert_actions_to_success():
    env = gym.make("gym_glam_kinova/lift", image_size=48, masks=True)
    assert env.spec.max_episode_steps == tasks.TASK_SPECS["lift"].max_steps
    obs, info = env.reset(seed=4)
    assert obs["pixels"]["overhead"].shape == (48, 48, 3) and obs["pixels"]["front"].dtype == np.uint8
    assert obs["agent_pos"].shape == (8,) and obs["ee_pose"].shape == (10,)
    assert set(np.unique(obs["masks"]["front"])) <= {0, 255}
    # the expert's actions for the same seed, recorded on a separate world
    actions = []
    run_expert(SimWorld("lift", "kinova"), 4, on_step=lambda w, a: actions.append(a))
    terminated = False
    for a in actions:
        assert env.action_space.contains(a)
        obs, reward, terminated, truncated, info = env.step(a)
        if terminated:
            break
    assert terminated and info["is_success"] and reward == 1.0
    env.close()


def test_time_limit_truncates_and_random_actions_do_not_succeed():
    env = make_env("lift", image_size=32)
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert not terminated
    assert steps == env._max_episode_steps and not info["is_success"]
    with pytest.raises(ValueError, match="unknown task"):
        make_env("juggle")


def test_umi_env_follows_end_effector_targets():
    env = make_env("lift", "umi", image_size=32)
    obs, _ = env.reset(seed=0)
    assert "agent_pos" not in obs
    target = obs["ee_pose"].copy()
    target[:3] += [0.05, -0.03, -0.05]
    for _ in range(4):
        obs, *_ = env.step(target)
    np.testing.assert_allclose(obs["ee_pose"][:3], target[:3], atol=5e-3)


def test_rollout_actions_reproduces_an_expert_run_and_a_changed_gripper_fails():
    actions = []
    world = SimWorld("stack_two", "kinova")
    assert run_expert(world, 9, on_step=lambda w, a: actions.append(a))
    actions = np.stack(actions)
    out = rollout_actions("stack_two", 9, actions, image_size=32)
    assert out["success"]
    np.testing.assert_allclose(out["object_positions"]["cube_red"][-1], world.object_positions()["cube_red"], atol=1e-9)
    assert out["frames"]["front"].shape == (len(actions) + 1, 32, 32, 3)
    never_closes = actions.copy()
    never_closes[:, 7] = 0.0
    assert not rollout_actions("stack_two", 9, never_closes, image_size=None)["success"]
    with pytest.raises(ValueError, match="shape"):
        rollout_actions("stack_two", 9, actions[:, :7])


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_two_arm_episodes_match_the_dataset_features(embodiment):
    from glam_lerobot.sim.record import dataset_features, record_episode

    success, frames = record_episode("stack_three", embodiment, 3, image_size=32, masks=True)
    feats = dataset_features("stack_three", embodiment, image_size=32, masks=True)
    assert success and set(frames) == set(feats)
    for key, value in frames.items():
        assert value.shape[1:] == tuple(feats[key]["shape"]), key
    assert frames[schema.EE_POSE].shape[1] == 20  # two arms (or two floating grippers), 10 each
    # both grippers closed on a cube at some point: opening well below the 85 mm stroke
    assert frames[schema.EE_POSE][:, 9].min() < 0.06 and frames[schema.EE_POSE][:, 19].min() < 0.06
