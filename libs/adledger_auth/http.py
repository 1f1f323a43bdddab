"""The caller as a FastAPI dependency. The edge guard (`adledger_libs.web.EdgeGuard`) verified the
bearer token before the body was read; a route takes `caller: CurrentCaller`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from adledger_auth.callers import Caller
from adledger_libs.web import current_caller

CurrentCaller = Annotated[Caller, Depends(current_caller)]
