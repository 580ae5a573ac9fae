"""The address book: where a buyer's parcels may go, validated per country.

Countries are ISO 3166-1 alpha-2 codes checked against `pycountry` (the ISO list, kept
current by its maintainers, with names for the country picker). Phone numbers are
checked with `phonenumbers` (Google's libphonenumber data) as numbers of the address's
country (typed nationally or with its +code) and stored in E.164 so carriers can call them.

Which parts an address needs depends on its country. The rules here are a small table,
not a postal database:
- a postal code is required everywhere except in the countries of `NO_POSTAL_CODE`
  (which have none, or none in general use); where given, it must match the country's
  pattern in `POSTAL_PATTERNS` when there is one, else be 2–10 letters, digits, spaces
  or dashes;
- a region (state, province) is required in `REGION_REQUIRED` (its carriers and customs
  forms ask for it).
Anything outside these rules is accepted as typed; a carrier may still ask for more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
import pycountry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.errors import Invalid, NotFound
from orders.models import Address
from orders.visible_text import check_name

MAX_ADDRESSES = 20  # per account: a book, not a mailing list

# Countries without postal codes in general use (a small table: see the module docstring).
NO_POSTAL_CODE = frozenset(
    "AE AG AO AW BF BI BJ BO BS BW BZ CD CF CG CI CK CM DJ DM ER FJ GA GD GH GM GQ GY HK HM KI KM KN "
    "KP LY ML MO MR MW NR NU QA RW SB SC SL SR ST SY TD TG TK TL TO TV UG VU YE ZW".split())

POSTAL_PATTERNS: dict[str, str] = {
    "KR": r"\d{5}",
    "US": r"\d{5}(-\d{4})?",
    "RU": r"\d{6}",
    "CN": r"\d{6}",
    "VN": r"\d{5,6}",
    "JP": r"\d{3}-?\d{4}",
    "DE": r"\d{5}",
    "FR": r"\d{5}",
    "IN": r"\d{6}",
    "AU": r"\d{4}",
    "CA": r"[A-Z]\d[A-Z] ?\d[A-Z]\d",
    "GB": r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
    "KZ": r"\d{6}|[A-Z]\d{2}[A-Z]\d[A-Z]\d",
    "UZ": r"\d{6}",
    "MN": r"\d{5,6}",
    "TH": r"\d{5}",
    "ID": r"\d{5}",
    "PH": r"\d{4}",
    "MY": r"\d{5}",
    "SG": r"\d{6}",
    "TW": r"\d{3}(\d{2,3})?",
}
_ANY_POSTAL = r"[A-Z0-9][A-Z0-9 -]{0,8}[A-Z0-9]"

REGION_REQUIRED = frozenset({"US", "CA", "AU", "CN", "BR", "MX", "IN"})

LIMITS = {"name": 100, "line1": 200, "line2": 200, "city": 100, "region": 100, "postal_code": 16, "phone": 32}


class AddressNotFound(NotFound):
    code = "address_not_found"


@dataclass(frozen=True)
class AddressIn:
    """An address as the buyer typed it; `checked` returns it validated and normalised."""

    name: str
    line1: str
    city: str
    country: str
    phone: str
    line2: str | None = None
    region: str | None = None
    postal_code: str | None = None


def country_name(code: str) -> str | None:
    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    return found.name if found is not None else None


def countries() -> list[dict[str, str]]:
    """Every ISO 3166-1 country, by name: the address form's list."""
    return sorted(({"code": c.alpha_2, "name": c.name} for c in pycountry.countries), key=lambda c: c["name"])


def check_country(code: str, field: str = "country") -> str:
    code = code.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code) or country_name(code) is None:
        raise Invalid(f"{code[:8]!r} is not an ISO 3166-1 alpha-2 country code such as KR or US", field=field)
    return code


def _text(value: str | None, field: str, *, required: bool) -> str | None:
    value = (value or "").strip() or None
    if value is None:
        if required:
            raise Invalid(f"{field} is required", field=field)
        return None
    if len(value) > LIMITS[field]:
        raise Invalid(f"{field} is at most {LIMITS[field]} characters", field=field)
    check_name(value, field)
    return value


def check_postal_code(country: str, postal_code: str | None) -> str | None:
    code = re.sub(r"\s+", " ", (postal_code or "").strip().upper()) or None
    if country in NO_POSTAL_CODE:
        return code  # kept if given, never required
    if code is None:
        raise Invalid(f"an address in {country_name(country)} needs a postal code", field="postal_code")
    pattern = POSTAL_PATTERNS.get(country, _ANY_POSTAL)
    if not re.fullmatch(pattern, code):
        raise Invalid(f"{code[:16]!r} is not a postal code of {country_name(country)}", field="postal_code")
    return code


def check_phone(country: str, phone: str) -> str:
    """The number in E.164, if it is a valid number of `country` (national or
    international form): the carrier delivering there calls it."""
    if len(phone) > LIMITS["phone"]:
        raise Invalid(f"phone is at most {LIMITS['phone']} characters", field="phone")
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        raise Invalid("phone is not a telephone number", field="phone") from None
    if not phonenumbers.is_valid_number_for_region(number, country):
        raise Invalid(f"{phone!r} is not a valid telephone number for {country_name(country)}", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def checked(address: AddressIn) -> AddressIn:
    """The address validated for its country (Invalid with the field at fault)."""
    country = check_country(address.country)
    name = _text(address.name, "name", required=True)
    line1 = _text(address.line1, "line1", required=True)
    line2 = _text(address.line2, "line2", required=False)
    city = _text(address.city, "city", required=True)
    region = _text(address.region, "region", required=country in REGION_REQUIRED)
    if address.postal_code is not None and len(address.postal_code) > LIMITS["postal_code"]:
        raise Invalid(f"postal_code is at most {LIMITS['postal_code']} characters", field="postal_code")
    postal_code = check_postal_code(country, address.postal_code)
    phone = check_phone(country, (address.phone or "").strip())
    return AddressIn(name=name, line1=line1, line2=line2, city=city, region=region,  # type: ignore[arg-type]
                     postal_code=postal_code, country=country, phone=phone)


def address_public(address: Address) -> dict[str, Any]:
    return {
        "id": address.id,
        "name": address.name,
        "line1": address.line1,
        "line2": address.line2,
        "city": address.city,
        "region": address.region,
        "postal_code": address.postal_code,
        "country": address.country,
        "country_name": country_name(address.country),
        "phone": address.phone,
        "created_at": address.created_at.isoformat(),
        "updated_at": address.updated_at.isoformat(),
    }


async def list_addresses(session: AsyncSession, user_id: int) -> list[Address]:
    return list(await session.scalars(select(Address).where(Address.user_id == user_id).order_by(Address.id)))


async def get_address(session: AsyncSession, user_id: int, address_id: int) -> Address:
    """The owner's address; AddressNotFound for anyone else's (no hint it exists)."""
    address = await session.get(Address, address_id)
    if address is None or address.user_id != user_id:
        raise AddressNotFound(f"no address {address_id}", field="address_id")
    return address


async def add_address(session: AsyncSession, user_id: int, address: AddressIn, at: datetime) -> Address:
    valid = checked(address)
    count = await session.scalar(select(func.count(Address.id)).where(Address.user_id == user_id))
    if (count or 0) >= MAX_ADDRESSES:
        raise Invalid(f"an address book holds at most {MAX_ADDRESSES} addresses; delete one first",
                      field="address")
    row = Address(user_id=user_id, created_at=at, updated_at=at, **valid.__dict__)
    session.add(row)
    await session.flush()
    return row


async def replace_address(session: AsyncSession, user_id: int, address_id: int, address: AddressIn,
                          at: datetime) -> Address:
    """Replace an entry. Orders already checked out keep the copy they took."""
    row = await get_address(session, user_id, address_id)
    valid = checked(address)
    for name, value in valid.__dict__.items():
        setattr(row, name, value)
    row.updated_at = at
    await session.flush()
    return row


async def delete_address(session: AsyncSession, user_id: int, address_id: int) -> None:
    row = await get_address(session, user_id, address_id)
    await session.delete(row)
    await session.flush()
