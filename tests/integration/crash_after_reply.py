"""A `surge-worker` that kills itself (SIGKILL) right after the intake stage stored its
first reply and before it could ack the message: the crash the composer must survive."""

from __future__ import annotations

import os
import signal
from typing import Any

from surge_workers import intake, replies


def main() -> None:
    real = replies.publish_reply

    async def publish_then_die(js: Any, prefix: str, reply: replies.Reply) -> Any:
        published = await real(js, prefix, reply)
        await js._nc.flush()  # the reply is stored; the ack is never sent
        os.kill(os.getpid(), signal.SIGKILL)
        return published

    intake.publish_reply = publish_then_die  # type: ignore[assignment]
    from surge_workers.cli import worker_main

    worker_main()


if __name__ == "__main__":
    main()
