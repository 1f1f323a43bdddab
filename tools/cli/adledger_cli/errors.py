"""What ends a command without a traceback: something the operator can act on, said in words."""

from __future__ import annotations

#: Exit codes: 0 all is well; 1 the command found a problem (a break in the books, a replay that
#: failed); 2 a usage error (typer's own); 3 the command could not do its work (a broker or
#: database that does not answer, a topic that does not exist).
EXIT_FOUND_PROBLEMS = 1
EXIT_COULD_NOT_RUN = 3


class OperatorError(Exception):
    """The command could not do its work; the message says why."""
