"""Field normalizers, table-driven: phones, countries, states, emails, names, companies, numbers, domains."""

from __future__ import annotations

import pytest

from leadflow_enrichment import normalize

# (typed, country hint, E.164 or None when not a valid number)
PHONES: list[tuple[str, str | None, str | None]] = [
    ("(415) 555-2671", "US", "+14155552671"),
    ("415.555.2671", "US", "+14155552671"),
    ("+1 415 555 2671", None, "+14155552671"),
    ("1-415-555-2671", "US", "+14155552671"),
    ("001 415 555 2671", None, "+14155552671"),
    ("(212) 736-5000", "US", "+12127365000"),
    ("+1 (617) 253-1000", "DE", "+16172531000"),
    ("650-253-0000", "US", "+16502530000"),
    ("416-979-2020", "CA", "+14169792020"),
    ("+1 604 681 9515", None, "+16046819515"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("+44 20 7946 0958", None, "+442079460958"),
    ("07400 123456", "GB", "+447400123456"),
    ("07700 900123", "GB", None),  # Ofcom's range for fiction
    ("+44 (0) 7400 123456", None, "+447400123456"),
    ("0044 161 496 0000", None, "+441614960000"),
    ("030 901820", "DE", "+4930901820"),
    ("+49 30 901820", None, "+4930901820"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("+49 (0)89 12345678", None, "+498912345678"),
    ("01 42 68 53 00", "FR", "+33142685300"),
    ("+33 1 42 68 53 00", None, "+33142685300"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("020 555 0123", "NL", "+31205550123"),
    ("+31 6 12345678", None, "+31612345678"),
    ("91 123 45 67", "ES", "+34911234567"),
    ("+34 612 34 56 78", None, "+34612345678"),
    ("06 1234 5678", "IT", "+390612345678"),
    ("+39 347 123 4567", None, "+393471234567"),
    ("044 668 18 00", "CH", "+41446681800"),
    ("+41 79 123 45 67", None, "+41791234567"),
    ("08-123 456 78", "SE", "+46812345678"),
    ("+46 70 123 45 67", None, "+46701234567"),
    ("22 12 34 56", "NO", "+4722123456"),
    ("32 12 34 56", "DK", "+4532123456"),
    ("09 1234 567", "FI", "+35891234567"),
    ("01 234 5678", "IE", "+35312345678"),
    ("+353 87 123 4567", None, "+353871234567"),
    ("(02) 9374 4000", "AU", "+61293744000"),
    ("0412 345 678", "AU", "+61412345678"),
    ("+61 3 9999 9999", None, "+61399999999"),
    ("03-234 5678", "NZ", "+6432345678"),
    ("03-1234-5678", "JP", "+81312345678"),
    ("090-1234-5678", "JP", "+819012345678"),
    ("6123 4567", "SG", "+6561234567"),
    ("+65 9123 4567", None, "+6591234567"),
    ("98765 43210", "IN", "+919876543210"),
    ("+91 22 2778 8000", None, "+912227788000"),
    ("(11) 91234-5678", "BR", "+5511912345678"),
    ("+55 21 2345-6789", None, "+552123456789"),
    ("55 1234 5678", "MX", "+525512345678"),
    ("011 4321-1234", "AR", "+541143211234"),
    ("021 123 4567", "ZA", "+27211234567"),
    ("+971 2 234 5678", None, "+97122345678"),
    ("02-312-3456", "KR", "+8223123456"),
    ("010-1234-5678", "KR", "+821012345678"),
    ("2123 4567", "HK", "+85221234567"),
    ("12 345 67 89", "PL", "+48123456789"),
    ("01 234567890", "AT", "+431234567890"),
    ("012 34 56 78", "BE", "+3212345678"),
    ("212 123 4567", "TR", "+902121234567"),
    # Not numbers anyone can dial
    ("555-0100", "US", None),
    ("12345", "GB", None),
    ("not a phone", "US", None),
    ("+1 000 000 0000", None, None),
    ("4155552671", None, None),  # national digits with no country to read them in
]


def test_the_phone_table_has_at_least_fifty_numbers_from_many_countries():
    valid = [p for p in PHONES if p[2] is not None]
    assert len(valid) >= 50
    assert len({p[2][:3] for p in valid}) >= 20


@pytest.mark.parametrize(("typed", "region", "e164"), PHONES)
def test_phone_to_e164_with_country_hint(typed, region, e164):
    assert normalize.normalize_phone(typed, region) == e164


COUNTRIES: list[tuple[str, str | None]] = [
    ("US", "US"), ("us", "US"), ("USA", "US"), ("U.S.A.", "US"), ("U.S.", "US"), ("United States", "US"),
    ("United States of America", "US"), ("america", "US"), ("UK", "GB"), ("U.K.", "GB"), ("GB", "GB"),
    ("GBR", "GB"), ("United Kingdom", "GB"), ("Great Britain", "GB"), ("England", "GB"), ("Scotland", "GB"),
    ("Deutschland", "DE"), ("Germany", "DE"), ("DEU", "DE"), ("de", "DE"), ("France", "FR"), ("FRA", "FR"),
    ("The Netherlands", "NL"), ("Netherlands", "NL"), ("Holland", "NL"), ("España", "ES"), ("Spain", "ES"),
    ("Italia", "IT"), ("Schweiz", "CH"), ("Switzerland", "CH"), ("Österreich", "AT"), ("Sverige", "SE"),
    ("South Korea", "KR"), ("Korea, Republic of", "KR"), ("Russia", "RU"), ("Russian Federation", "RU"),
    ("Czech Republic", "CZ"), ("Czechia", "CZ"), ("Ivory Coast", "CI"), ("Côte d'Ivoire", "CI"),
    ("UAE", "AE"), ("United Arab Emirates", "AE"), ("Vietnam", "VN"), ("Viet Nam", "VN"), ("Brasil", "BR"),
    ("Brazil", "BR"), ("japan", "JP"), ("  CANADA ", "CA"), ("Mexico", "MX"), ("México", "MX"),
    ("Türkiye", "TR"), ("Turkey", "TR"), ("Taiwan", "TW"), ("Hong Kong", "HK"), ("India", "IN"),
    ("IND", "IN"), ("Australia", "AU"), ("New Zealand", "NZ"), ("Ireland", "IE"), ("Bolivia", "BO"),
    ("Iran", "IR"), ("Tanzania", "TZ"), ("the Philippines", "PH"), ("Singapore", "SG"), ("SGP", "SG"),
    ("Atlantis", None), ("", None), ("XX", None), ("Earth", None),
]


@pytest.mark.parametrize(("typed", "code"), COUNTRIES)
def test_country_spellings_to_iso_alpha2(typed, code):
    assert normalize.normalize_country(typed) == code


@pytest.mark.parametrize(("typed", "country", "expected"), [
    ("California", "US", "CA"), ("ca", "US", "CA"), ("New York", "US", "NY"), ("Texas", "US", "TX"),
    ("Ontario", "CA", "ON"), ("Nordrhein-Westfalen", "DE", "NW"), ("Bayern", "DE", "BY"), ("BY", "DE", "BY"),
    ("New South Wales", "AU", "NSW"), ("Somewhere", "US", "Somewhere"), ("Kent", None, "Kent"), ("  ", "US", None),
])
def test_state_to_subdivision_code(typed, country, expected):
    assert normalize.normalize_state(typed, country) == expected


@pytest.mark.parametrize(("typed", "email", "email_type", "role", "corporate_domain"), [
    ("Ada@Acme.COM", "ada@acme.com", "corporate", False, "acme.com"),
    ("  grace.hopper@navy.mil ", "grace.hopper@navy.mil", "corporate", False, "navy.mil"),
    ("linus@mail.kernel.co.uk", "linus@mail.kernel.co.uk", "corporate", False, "kernel.co.uk"),
    ("someone@gmail.com", "someone@gmail.com", "free", False, None),
    ("SOMEONE@Yahoo.co.uk", "someone@yahoo.co.uk", "free", False, None),
    ("x@outlook.com", "x@outlook.com", "free", False, None),
    ("x@protonmail.com", "x@protonmail.com", "free", False, None),
    ("temp@mailinator.com", "temp@mailinator.com", "disposable", False, None),
    ("temp@10minutemail.com", "temp@10minutemail.com", "disposable", False, None),
    ("temp@guerrillamail.com", "temp@guerrillamail.com", "disposable", False, None),
    ("info@acme.com", "info@acme.com", "corporate", True, "acme.com"),
    ("Sales+web@acme.com", "sales+web@acme.com", "corporate", True, "acme.com"),
    ("no-reply@acme.com", "no-reply@acme.com", "corporate", True, "acme.com"),
    ("support@gmail.com", "support@gmail.com", "free", True, None),
    ("not-an-email", None, "invalid", False, None),
    ("ada@", None, "invalid", False, None),
    ("ada@@acme.com", None, "invalid", False, None),
    ("ada lovelace@acme.com", None, "invalid", False, None),
    ("ada@localhost", None, "invalid", False, None),
    ("", None, None, False, None),
    (None, None, None, False, None),
])
def test_email_normalization_and_classification(typed, email, email_type, role, corporate_domain):
    result = normalize.normalize_email(typed)
    assert (result.email, result.email_type, result.is_role_address, result.corporate_domain) == (
        email, email_type, role, corporate_domain)


@pytest.mark.parametrize(("typed", "domain"), [
    ("https://www.acme.com/pricing?x=1", "acme.com"), ("acme.com", "acme.com"), ("WWW.ACME.COM", "acme.com"),
    ("http://shop.acme.co.uk", "acme.co.uk"), ("acme.com.au/", "acme.com.au"), ("blog.example.github.io",
                                                                                "example.github.io"),
    ("ada@sub.acme.de", "acme.de"), ("localhost", None), ("not a url", None), ("", None), (None, None),
])
def test_website_to_registrable_domain(typed, domain):
    assert normalize.registrable_domain(typed) == domain


@pytest.mark.parametrize(("first", "last", "full", "expected"), [
    ("ada", "lovelace", None, ("Ada", "Lovelace", None)),
    ("ADA", "LOVELACE", None, ("Ada", "Lovelace", None)),
    ("Ada", "McDonald", None, ("Ada", "McDonald", None)),
    (None, None, "Dr. Grace Hopper", ("Grace", "Hopper", "Dr.")),
    (None, None, "grace brewster murray hopper", ("Grace", "Brewster Murray Hopper", None)),
    (None, None, "Hopper, Grace", ("Grace", "Hopper", None)),
    (None, None, "Mr. John Smith Jr.", ("John", "Smith", "Mr.")),
    ("  Linus ", " Torvalds ", None, ("Linus", "Torvalds", None)),
    ("Cher", None, None, ("Cher", None, None)),
    (None, None, None, (None, None, None)),
])
def test_person_names_split_with_honorifics(first, last, full, expected):
    result = normalize.normalize_name(first, last, full)
    assert (result.first_name, result.last_name, result.salutation) == expected


@pytest.mark.parametrize(("typed", "cleaned", "key"), [
    ("Acme, Inc.", "Acme", "acme"),
    ("ACME INC", "ACME", "acme"),
    ("Acme Corporation", "Acme", "acme"),
    ("Acme Rockets LLC", "Acme Rockets", "acme rockets"),
    ("Globex Ltd.", "Globex", "globex"),
    ("Initech GmbH", "Initech", "initech"),
    ("Siemens AG", "Siemens", "siemens"),
    ("Philips N.V.", "Philips", "philips"),
    ("Tesco PLC", "Tesco", "tesco"),
    ("Canva Pty Ltd", "Canva", "canva"),
    ("Johnson & Johnson", "Johnson & Johnson", "johnson and johnson"),
    ("Procter & Gamble Co.", "Procter & Gamble", "procter and gamble"),
    ("Société Générale S.A.", "Société Générale", "societe generale"),
    ("Inc.", "Inc", "inc"),
    ("  ", None, None),
])
def test_company_suffix_cleanup(typed, cleaned, key):
    assert normalize.clean_company(typed) == cleaned
    assert normalize.company_key(typed) == key


@pytest.mark.parametrize(("typed", "number"), [
    ("1,200", 1200), ("51-200", 51), ("$5M", 5e6), ("250k", 250e3), ("1.5 bn", 1.5e9), ("about 40", 40),
    ("n/a", None), ("", None), (None, None), ("9" * 400, None),
])
def test_numbers_as_typed(typed, number):
    assert normalize.parse_number(typed) == number


@pytest.mark.parametrize(("domain", "expected"), [
    ("gmail.com", True), ("mail.yahoo.com", True), ("mail.acme.com", False), ("mailinator.com", True),
    ("acme.com", False), (None, False), ("", False),
])
def test_free_and_disposable_mail_domains_are_mailbox_providers(domain: str | None, expected: bool) -> None:
    assert normalize.is_mailbox_provider(domain) is expected


def test_a_name_longer_than_any_person_s_is_kept_as_typed_not_parsed() -> None:
    long_full = "Ada " + "van der " * 20 + "Lovelace"
    assert len(long_full) > normalize.MAX_PARSED_NAME_LENGTH
    assert normalize.normalize_name(None, None, long_full) == normalize.NameResult(
        "Ada", long_full.removeprefix("Ada "), None)
    assert normalize.normalize_name("MR ADA", "X" * 200, None) == normalize.NameResult("MR ADA", "X" * 200, None)
