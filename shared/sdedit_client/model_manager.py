"""The server's model manager for the plugins (standard library only): catalogue, downloads, removal, LoRAs.

Calls the routes of docs/stable_diffusion.md ("Getting models"): GET /v1/models/catalogue, POST
/v1/models/pull, GET/DELETE /v1/models/pull/{id}, DELETE /v1/models/{name}, GET /v1/loras. Blocking: call
off the GUI thread.
"""

from typing import Any, Dict, List, Optional

from .errors import InvalidParameter

MAX_LORAS = 8
MAX_LORA_SCALE = 4.0


class ModelManager:
    def __init__(self, client: Any) -> None:
        self.client = client

    def catalogue(self) -> List[Dict[str, Any]]:
        answer = self.client._request("GET", "/v1/models/catalogue")
        return answer if isinstance(answer, list) else []

    def loras(self) -> List[str]:
        answer = self.client._request("GET", "/v1/loras")
        return [str(item.get("id")) for item in answer or [] if isinstance(item, dict) and item.get("id")]

    def pull(self, source: str, name: Optional[str] = None) -> Dict[str, Any]:
        body = {"source": source}
        if name:
            body["name"] = name
        return self.client._request("POST", "/v1/models/pull", body) or {}

    def pull_status(self, pull_id: str) -> Dict[str, Any]:
        return self.client._request("GET", "/v1/models/pull/" + pull_id) or {}

    def cancel_pull(self, pull_id: str) -> Dict[str, Any]:
        return self.client._request("DELETE", "/v1/models/pull/" + pull_id) or {}

    def remove(self, name: str) -> Dict[str, Any]:
        return self.client._request("DELETE", "/v1/models/" + name) or {}


def parse_loras(text: str) -> List[Dict[str, Any]]:
    """The plugins' LoRA field, "name:scale, other" -> [{"id", "scale"}]; one sentence when it is wrong."""
    out: List[Dict[str, Any]] = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, scale_text = part.rpartition(":") if ":" in part else (part, "", "1")
        try:
            scale = float(scale_text)
        except ValueError:
            raise InvalidParameter("The LoRA scale in %r must be a number (1 = as trained), e.g. %s:0.8."
                                   % (part, name or part))
        if not -MAX_LORA_SCALE <= scale <= MAX_LORA_SCALE:
            raise InvalidParameter("The LoRA scale of %s must be from %g to %g." % (name, -MAX_LORA_SCALE, MAX_LORA_SCALE))
        if not name:
            raise InvalidParameter("A LoRA needs a name before its scale: NAME:0.8.")
        if any(item["id"] == name for item in out):
            raise InvalidParameter("The LoRA %s is named twice; give it once." % name)
        out.append({"id": name, "scale": scale})
    if len(out) > MAX_LORAS:
        raise InvalidParameter("At most %d LoRAs can be used at once." % MAX_LORAS)
    return out
