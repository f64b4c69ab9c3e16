"""A separate process that signs through a KeyStack whose audit goes to a shared jsonl log.

Run as ``python _audit_worker.py KEYSTORE LOG NAME COUNT [OPTION=VALUE ...]``: wait
for a line on stdin (a start barrier), then sign COUNT messages with
``local://signer`` and print ``signed I`` after each.  Every audit event
carries the label ``worker=NAME``; the options go to the jsonl sink
(``max_bytes=4096``, ``hmac_key=local://audit-mac`` ...).
"""

from __future__ import annotations

import sys

from aureus_core import KeyStack
from aureus_core.audit import Enrich


def main(keystore: str, log: str, name: str, count: int, options: list[str]) -> None:
    sink: dict[str, object] = {"type": "jsonl", "path": log}
    for option in options:
        key, _, value = option.partition("=")
        sink[key] = int(value) if value.isdigit() else value
    config = {
        "providers": {"local": {"keystore": keystore}},
        "audit": {"sinks": [sink]},
    }
    with KeyStack.from_dict(config, audit_processors=[Enrich({"worker": name})]) as stack:
        sys.stdin.readline()
        for i in range(count):
            stack.sign(f"{name}:{i}".encode(), key="local://signer")
            sys.stdout.write(f"signed {i}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
