"""Money for people, in integer micros only (M1): shown as `USD 1,234.56`, typed as `1234.56`."""

from __future__ import annotations

import re

MICROS = 1_000_000
#: Up to a trillion units with up to six decimals: well inside the platform's bound (2^63 − 1 micros).
_AMOUNT = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$")


class AmountError(ValueError):
    pass


def parse_micros(text: str, *, allow_zero: bool = False) -> int:
    """`12.5` → 12_500_000; no floats on the way."""
    cleaned = text.strip().replace(",", "")
    found = _AMOUNT.match(cleaned)
    if not found:
        raise AmountError(f"{text!r} is not an amount (digits, optionally a point and up to 6 decimals)")
    units, fraction = found.group(1), (found.group(2) or "")
    micros = int(units) * MICROS + int(fraction.ljust(6, "0") or "0")
    if micros == 0 and not allow_zero:
        raise AmountError("the amount must be more than zero")
    return micros


def money(micros: int | None, currency: str = "") -> str:
    """12_500_000 → `12.50`; micros below a cent are shown (`0.000001`)."""
    if micros is None:
        return "—"
    sign = "-" if micros < 0 else ""
    units, rest = divmod(abs(micros), MICROS)
    fraction = f"{rest:06d}".rstrip("0").ljust(2, "0")
    text = f"{sign}{units:,}.{fraction}"
    return f"{currency} {text}".strip()
