"""The e-mail adapter of rule I8: templates, rendering and the senders, in one place.

`register_email_adapter(runtime, settings, clock)` wires it on the invoicing service's runtime.
"""

from adledger_invoicing.email.adapter import EmailAdapter, register_email_adapter
from adledger_invoicing.email.settings import EmailSettings
from adledger_invoicing.email.sinks import EmailSender, FileSink, LogSink

__all__ = ["EmailAdapter", "EmailSender", "EmailSettings", "FileSink", "LogSink", "register_email_adapter"]
