"""Send huggingface_hub's one hard-coded huggingface.co request to HF_ENDPOINT.

huggingface_hub 1.x (pinned by LeRobot 0.6.1) validates a card's YAML (`RepoCard.validate`, called by
`DatasetCard.push_to_hub`, hence by `LeRobotDataset.push_to_hub`) by posting to the literal
"https://huggingface.co/api/validate-yaml", ignoring HF_ENDPOINT; 2.x uses the endpoint. With a self-hosted or
test Hub that request would leave the machine (or fail offline). `install()` adds a request hook to the client
huggingface_hub builds, through its supported `set_client_factory`, that rewrites exactly that URL. It does
nothing when HF_ENDPOINT is the public Hub or huggingface_hub is 2.x.
"""

from __future__ import annotations

from urllib.parse import urlsplit

PUBLIC = "https://huggingface.co"
HARD_CODED = (f"{PUBLIC}/api/validate-yaml",)
_installed = False


def install() -> bool:
    """Idempotent. Returns True when the rewrite is active."""
    global _installed
    import huggingface_hub
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT.rstrip("/")
    if _installed:
        return True
    if endpoint == PUBLIC or int(huggingface_hub.__version__.split(".")[0]) >= 2:
        return False
    from huggingface_hub.utils import _http

    target = urlsplit(endpoint)
    inner = _http._GLOBAL_CLIENT_FACTORY  # keep whatever factory is configured, add one hook in front

    def rewrite(request) -> None:
        if str(request.url).startswith(HARD_CODED):
            request.url = request.url.copy_with(scheme=target.scheme, host=target.hostname, port=target.port)
            request.headers["Host"] = target.netloc

    def factory():
        client = inner()
        client.event_hooks["request"] = [rewrite, *client.event_hooks["request"]]
        return client

    huggingface_hub.set_client_factory(factory)
    _installed = True
    return True
