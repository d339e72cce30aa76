"""Dataset and model cards: rendered from the data itself, readable by huggingface_hub's own card parser."""

from __future__ import annotations

import json

from glam_lerobot import cards, provenance


def test_dataset_card_names_sources_revision_columns_and_models(make_tiny_dataset, tmp_path):
    raw = tmp_path / "episode_0.hdf5"
    raw.write_bytes(b"raw teleop bytes")
    root = make_tiny_dataset(
        "kinova_stack",
        episodes=2,
        frames=3,
        glam_meta={
            "embodiment": "kinova_gen3",
            "arms": 1,
            "task": "stack_two",
            "source": {
                "format": "hdf5-robomimic",
                "files": provenance.file_records([raw]),
                "command": "glam-lerobot ingest hdf5 episode_0.hdf5",
            },
            "revision": "masks-v1",
            "parent": {"repo_id": "test-user/kinova_stack", "revision": "main", "commit": "a" * 40},
            "history": [
                {
                    "command": "glam-lerobot masks sim",
                    "columns": ["mask.overhead", "mask.front"],
                    "model": "mujoco-segmentation",
                }
            ],
        },
    )
    path = cards.write_dataset_card(root)
    text = path.read_text()
    assert path == root / "README.md"

    from huggingface_hub import DatasetCard

    card = DatasetCard(text)
    assert card.data.license == "apache-2.0"
    assert "LeRobot" in card.data.tags and "kinova_gen3" in card.data.tags
    assert card.data.configs == [{"config_name": "default", "data_files": "data/*/*.parquet"}]
    info = json.loads((root / "meta" / "info.json").read_text())
    assert f"| Episodes | {info['total_episodes']} |" in text and f"| Frames | {info['total_frames']} |" in text
    assert "| Embodiment | kinova_gen3 (1 arm) |" in text and "| Task | stack_two |" in text
    assert "`test-user/kinova_stack@main (commit aaaaaaaaaaaa)`" in text
    assert provenance.sha256(raw) in text and "hdf5-robomimic" in text
    assert "mask.overhead, mask.front by mujoco-segmentation" in text
    assert "| `action` | float32 | 8 | policy output |" in text
    assert "| `observation.images.front` | video | 32x32x3 | camera (policy input) |" in text
    assert 'revision="masks-v1"' in text
    assert "arXiv:2606.21672" in text


def test_dataset_card_without_glam_metadata(make_tiny_dataset):
    root = make_tiny_dataset("plain", robot=False, episodes=1, frames=2)
    text = cards.write_dataset_card(root).read_text()
    assert "| Robot actions | no (auxiliary data: observations only) |" in text
    assert "none (this is an original)" in text


def test_model_card_lists_training_mixture_and_config(tmp_path):
    folder = tmp_path / "wm"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0")
    config = {
        "name": "glam-stack-two",
        "latent_dim": 8,
        "input": "masks",
        "steps": 200,
        "mixture": {
            "name": "m",
            "target": [{"repo_id": "me/kinova", "revision": "main"}],
            "auxiliary": [{"repo_id": "me/umi", "revision": "masks-v1"}],
        },
    }
    text = cards.write_model_card(folder, config, repo_id="me/glam-stack-two").read_text()

    from huggingface_hub import ModelCard

    card = ModelCard(text)
    assert card.data.library_name == "glam-lerobot"
    assert card.data.datasets == ["me/kinova", "me/umi"]
    assert "| `me/umi` | masks-v1 | auxiliary |" in text
    assert "| `latent_dim` | 8 |" in text and "`model.safetensors`" in text
    assert "glam-lerobot pull me/glam-stack-two" in text


def test_dataset_card_says_what_is_simulated_the_units_and_what_was_dropped(sim_mixture, make_tiny_dataset):
    text = cards.dataset_card_text(sim_mixture.parent / "kinova")
    assert "| Data | simulated: mujoco, task lift, embodiment kinova, episode seeds 0-1 |" in text
    assert "gripper opening (m)" in text.split("`observation.state`")[1].splitlines()[0]
    assert "gripper command 0..1 (1 = closed)" in text.split("| `action` |")[1].splitlines()[0]
    assert "No input episode was dropped." in text

    bad = "bags/c_back.mcap: episode 2: field '/joint_states': header stamps go backwards at t=0.4 s"
    root = make_tiny_dataset("ingested", glam_meta={"source": {"format": "rosbag"}, "write": {"bad": [bad]}})
    text = cards.dataset_card_text(root)
    assert "| Data | recorded (rosbag) |" in text
    assert "1 input episode(s) were left out" in text and f"- {bad}" in text
