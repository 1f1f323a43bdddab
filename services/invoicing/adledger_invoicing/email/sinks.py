"""Where a rendered e-mail goes (rule I8: sending is an adapter): a file sink locally, or the log.

The send is a side effect outside the database transaction that records the e-mail and its
`EmailSent`. It is made idempotent by `email_id`: the file sink writes `<email_id>.eml`
atomically (a temporary file, fsync, then rename over the name), and the message's bytes are a
function of the request alone. So a crash after the write and before the commit makes the
redelivered request write the same file again under the same name: still one e-mail, never a
second. The log sink cannot take a line back: after such a crash the e-mail is logged twice
(with the same email_id), which is acceptable for a log and is why tests read the file sink.
A real mail provider would be given the email_id as its idempotency key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from adledger_libs.logs import get_logger

from adledger_invoicing.email.message import OutgoingEmail, file_name_for

log = get_logger(__name__)


class EmailSender(Protocol):
    """Hands one e-mail over; sending the same email_id again must not send a second e-mail."""

    def send(self, email: OutgoingEmail) -> str:
        """Send it and say where it went (`file:<path>`, `log`)."""
        ...


class FileSink:
    """One `.eml` file per email_id in a directory that tests read."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, email_id: str) -> Path:
        return self.directory / file_name_for(email_id)

    def send(self, email: OutgoingEmail) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / email.file_name
        descriptor, temporary = tempfile.mkstemp(prefix=".sending-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(email.content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        log.info("email_written", email_id=email.email_id, template=email.template, path=str(target))
        return f"file:{target}"

    def sent(self) -> list[Path]:
        """The e-mails written so far (temporary files excluded)."""
        if not self.directory.is_dir():
            return []
        return sorted(path for path in self.directory.glob("*.eml") if not path.name.startswith(".sending-"))


class LogSink:
    """Writes the e-mail to the service log (a crash before the commit may log it twice)."""

    def send(self, email: OutgoingEmail) -> str:
        log.info(
            "email_sent",
            email_id=email.email_id,
            template=email.template,
            recipient=email.recipient,
            subject=email.subject,
            content=email.content.decode("utf-8", errors="replace"),
        )
        return "log"
