"""Which objects to mask, per task.

GLAM-O (paper, section 5) feeds the world model a binary mask of the manipulated object(s). An object is named
once and means two things depending on the backend:
  - ultralytics: a class name, used as the text prompt of open-vocabulary models (YOLOE, SAM 3) or matched against
    the class names of a closed-vocabulary model (a YOLO-seg trained on COCO knows "bottle" and "bowl"). A name
    listed twice ("cube,cube") means two instances, each tracked through the episode.
  - groundtruth: a body name in our MuJoCo scenes, looked up by glam_lerobot.sim.render.
"""

from __future__ import annotations

# The manipulated object(s) of each simulated task. pick_place masks the cube (the object moved), not the bowl;
# pass --objects cube,bowl to mask both.
TASK_OBJECTS: dict[str, tuple[str, ...]] = {
    "lift": ("cube",),
    "pick_place": ("cube",),
    "knock_down": ("bottle",),
    "stack_two": ("cube", "cube"),
    "stack_three": ("cube", "cube", "cube"),
}


def parse_list(text: str | None) -> list[str] | None:
    """'cube, bowl' -> ['cube', 'bowl']; None or '' -> None."""
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def objects_for(task: str | None, objects: list[str] | None = None) -> list[str]:
    """The objects to mask: the user's list, else the task's default. Raises ValueError naming what is missing."""
    if objects:
        return list(objects)
    if task is None:
        raise ValueError(
            "the dataset does not say which task it holds (meta/glam.json has no 'task'): pass --objects, "
            f"e.g. --objects cube (defaults exist for {', '.join(TASK_OBJECTS)})"
        )
    if task not in TASK_OBJECTS:
        raise ValueError(
            f"no default objects for task {task!r}: pass --objects (known tasks: {', '.join(TASK_OBJECTS)})"
        )
    return list(TASK_OBJECTS[task])


def classes_of(objects: list[str]) -> list[str]:
    """The distinct class names of a target list, in first-seen order (the text prompt of open-vocabulary models)."""
    return list(dict.fromkeys(objects))
