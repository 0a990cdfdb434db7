"""normalize_name skips nameparser's parse for a first and last name that provably hold no title; over a
corpus of names in several scripts and cases, and every vocabulary word nameparser reads a name by in
every position, the shortcut reads each name exactly as the parse does."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator

import pytest
from nameparser import HumanName, Lexicon
from nameparser.config import CONSTANTS

from leadflow_enrichment import normalize

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "John", "Mary", "Jean", "Anne", "Mohammed", "Wei", "Priya", "Olu", "Chidi",
    "Fatima", "Yuki", "Lars", "Sean", "José", "María", "Zoë", "Björn", "François", "Łukasz", "Søren", "Ágnes",
    "İsmail", "I\u015f\u0131l",  # Turkish: dotted capital, dotless small i
    "Jean-Luc", "Anne-Marie", "Mary Kate", "D'Andre", "Ka'ena", "Γιάννης", "Νίκος",
    "Иван", "Ольга", "Пётр", "Анна-Мария", "Արամ", "გიორგი", "محمد", "דוד", "明", "さくら", "민준",
    "प्रिया", "สมชาย",
)
LAST_NAMES = (
    "Lovelace", "Hopper", "Smith", "McDonald", "MacLeod", "O'Brien", "O'Neill", "D'Angelo", "d'Alembert",
    "van der Berg", "van Rossum", "de la Cruz", "von Neumann", "Berners-Lee", "Smith-Jones", "García",
    "Öberg", "Müller", "Strauß", "Nguyễn", "Łukasiewicz", "Ørsted", "Dvořák", "Παπαδόπουλος", "Иванов",
    "Петрова-Водкина", "Գրիգորյան", "ბერიძე", "الحسن", "כהן", "王", "山田", "김", "Nakamura", "Okafor",
    "Adeyemi", "Patel", "Chen", "Haddad", "Johnson-Smith Jr", "Ng", "Li",
)
CASES: tuple[Callable[[str], str], ...] = (str, str.upper, str.lower)
# Both as typed, both in capitals, both in lower case, and the mixtures a form gets.
CASE_PAIRS = ((str, str), (str.upper, str.upper), (str.lower, str.lower), (str.upper, str), (str, str.lower))

_lexicon = Lexicon.default()
TITLE_VOCABULARY = (_lexicon.titles | _lexicon.given_name_titles | _lexicon.after_given_titles
                    | set(CONSTANTS.titles) | set(CONSTANTS.first_name_titles))
# Every vocabulary nameparser reads a name's words by, titles first among them.
VOCABULARY = sorted(TITLE_VOCABULARY | _lexicon.conjunctions | _lexicon.particles | _lexicon.suffix_words
                    | _lexicon.suffix_acronyms | _lexicon.maiden_markers | _lexicon.bound_given_names
                    | {word for entry in TITLE_VOCABULARY for word in entry.split()})


def _vocabulary_pairs() -> Iterator[tuple[str, str]]:
    """Each word first, last and inside the name, in each case, also glued to a name by a hyphen or an
    apostrophe."""
    names = itertools.cycle(itertools.product(FIRST_NAMES, LAST_NAMES))
    for index, word in enumerate(VOCABULARY):
        first, last = next(names)
        placed = ((word, last), (first, word), (f"{first} {word}", last), (first, f"{word} {last}"),
                  (first, f"{last}-{word}"), (f"{word}'{first}", last))
        for position, (given, family) in enumerate(placed):
            case = CASES[(index + position) % len(CASES)]
            yield case(given), case(family)


def _name_pairs() -> Iterator[tuple[str, str]]:
    for (first, last), (first_case, last_case) in itertools.product(
            itertools.product(FIRST_NAMES, LAST_NAMES), CASE_PAIRS):
        yield first_case(first), last_case(last)


def test_the_corpus_is_large():
    assert len(list(_name_pairs())) + len(list(_vocabulary_pairs())) >= 20_000


def test_every_title_word_in_any_case_anywhere_takes_the_parse():
    for entry, case in itertools.product(TITLE_VOCABULARY, CASES):
        for word in {entry, *entry.split()}:
            assert normalize._may_read_a_title(f"{case(word)} Smith"), word
            assert normalize._may_read_a_title(f"Ada {case(word)}"), word
            assert normalize._may_read_a_title(f"Ada {case(word)} Smith"), word
            if word.isalpha():
                assert normalize._may_read_a_title(f"Ada Smith-{case(word)}"), word
                assert normalize._may_read_a_title(f"Ada {case(word)}'Smith"), word


@pytest.mark.parametrize("source", [
    "Dr. Ada Smith", "Ada Smith PhD.", "Ada Smith, Jr", "Ada 'Bo' Smith", "Ada (Bo) Smith", "Ada Smith3",
    "Ada -Smith", "Ada Smith-", "Ada O''Brien", "Ada Smith'", "'Ada Smith", "Ada «Bo» Smith", "Ada Smith_",
    "김 민준", "王 明", "山田 さくら", "محمد الحسن", "प्रिया Patel", "Ada\tSmith", "Ada  Smith",
])
def test_a_name_with_punctuation_or_in_an_uncased_script_takes_the_parse(source):
    assert normalize._may_read_a_title(source)


@pytest.mark.parametrize(("first", "last"), [
    ("Ada", "Lovelace"), ("ADA", "LOVELACE"), ("ada", "lovelace"), ("Jean-Luc", "Picard"), ("Ada", "O'Neill"),
    ("Guido", "van Rossum"), ("Zoë", "Öberg"), ("María", "García"), ("Иван", "Петров"), ("Mary Kate", "Smith Jr"),
])
def test_common_names_take_the_shortcut(first, last):
    assert not normalize._may_read_a_title(f"{first} {last}")


def test_the_shortcut_reads_every_name_of_the_corpus_as_the_parse_does(monkeypatch):
    parse_name = normalize._parse_name
    # A name the shortcut refuses goes to _parse_name as it always went (cleaned, which _parse_name does
    # first anyway): recorded and answered with None rather than parsed, so the corpus parses only the
    # names the two paths could differ on.
    handed: list[tuple[str | None, str | None, str | None]] = []
    monkeypatch.setattr(normalize, "_parse_name", lambda *typed: handed.append(typed))
    # Pure, and used by both paths alike: remembered so each one-case word is parsed once.
    monkeypatch.setattr(normalize, "_recase", functools.lru_cache(maxsize=None)(normalize._recase))
    admitted = 0
    for first, last in itertools.chain(_name_pairs(), _vocabulary_pairs()):
        fast = normalize.normalize_name(first, last, None)
        if normalize._may_read_a_title(normalize.clean(f"{first} {last}") or ""):
            assert fast is None and handed.pop() == (normalize.clean(first), normalize.clean(last), None)
            continue
        admitted += 1
        slow = parse_name(first, last, None)
        assert fast == slow, (first, last)
        # The slow path's salutation is the parse's title: none was found where the shortcut is taken.
        assert slow.salutation is None, (first, last)
    assert admitted >= 10_000
    assert not handed


def test_the_parse_finds_no_title_in_a_name_the_shortcut_takes():
    """The claim above asked of HumanName itself, over every third name of the corpus."""
    sample = itertools.islice(itertools.chain(_name_pairs(), _vocabulary_pairs()), 0, None, 3)
    for first, last in sample:
        source = " ".join(f"{first} {last}".split())
        if not normalize._may_read_a_title(source):
            assert HumanName(source).title == "", source
