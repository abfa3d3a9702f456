"""Checks files of Airbyte messages (JSON lines) against airbyte-protocol-models.

Every line must parse as an AirbyteMessage, hold exactly the part its `type` names,
and use no field the protocol does not define (the models accept unknown fields, so
that is checked here by walking the parsed models). Prints {"lines", "types"} as JSON;
on the first bad line, says which file, line and why, and exits 1.
"""

import json
import sys

from airbyte_protocol.models import AirbyteMessage, AirbyteStateBlob
from pydantic import BaseModel

PART = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
    "CONTROL": "control",
}


def strict(model, path):
    """Fails on a field the protocol does not define, anywhere in `model`."""
    if isinstance(model, AirbyteStateBlob):
        return  # the connector's own state: opaque by design
    if isinstance(model, BaseModel):
        unknown = [k for k in model.__dict__ if k not in model.__fields__]
        if unknown:
            raise ValueError(f"{path}: fields the protocol does not define: {unknown}")
        for name in model.__fields__:
            strict(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for i, item in enumerate(model):
            strict(item, f"{path}[{i}]")


def main(paths):
    types = {}
    lines = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                where = f"{path}:{number}"
                try:
                    obj = json.loads(line)
                    msg = AirbyteMessage.parse_obj(obj)
                    kind = msg.type.value
                    present = [k for k in PART.values() if getattr(msg, k, None) is not None]
                    if present != [PART[kind]]:
                        raise ValueError(f"type {kind} but parts {present}")
                    strict(msg, "message")
                except Exception as e:  # noqa: BLE001 - any failure is the line's
                    print(f"{where}: not a valid Airbyte message: {e}\n  {line[:300]}", file=sys.stderr)
                    return 1
                types[kind] = types.get(kind, 0) + 1
                lines += 1
    print(json.dumps({"lines": lines, "types": types}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
