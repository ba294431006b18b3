"""Outgoing account mail (verification links, notices) behind one small interface.

The only transport today is `LogMailer`: it writes each message to the log (where a developer
copies the link) and keeps the last ones in memory for tests. A deployment that needs real
mail plugs an SMTP or API sender in behind the same `send()`; nothing else changes.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    body: str
    link: str | None = None  # the action link, if the message carries one


class Mailer(ABC):
    """Sends one account message; the app holds one (state part `Mailer`)."""

    @abstractmethod
    async def send(self, message: Message) -> None: ...


class LogMailer(Mailer):
    """Development transport: the message goes to the log; the last 200 stay in `outbox`."""

    def __init__(self, keep: int = 200) -> None:
        self.outbox: deque[Message] = deque(maxlen=keep)

    async def send(self, message: Message) -> None:
        self.outbox.append(message)
        logger.warning(
            "account mail (log transport: not sent)",
            extra={"mail_to": message.to, "mail_subject": message.subject, "link": message.link},
        )

    def last_to(self, address: str) -> Message | None:
        """The newest message to `address` (tests and local development)."""
        for message in reversed(self.outbox):
            if message.to == address:
                return message
        return None
