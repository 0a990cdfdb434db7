"""Job title → seniority and function, by ordered pattern tables (first match wins for seniority;
the function named earliest in the title wins, so "VP Sales & Marketing" is sales)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SENIORITIES = ("c_level", "vp", "director", "manager", "individual_contributor", "student", "other")
FUNCTIONS = ("marketing", "sales", "engineering", "it", "finance", "operations", "hr", "executive", "other")

# Abbreviations people type, spelled out before matching.
ABBREVIATIONS: dict[str, str] = {
    "sr": "senior", "snr": "senior", "jr": "junior", "mgr": "manager", "mngr": "manager", "dir": "director",
    "svp": "senior vice president", "evp": "executive vice president", "avp": "assistant vice president",
    "vp": "vice president", "mktg": "marketing", "mkt": "marketing", "eng": "engineer", "engr": "engineer",
    "exec": "executive", "asst": "assistant", "assoc": "associate", "acct": "account", "admin": "administrator",
    "hr": "human resources", "swe": "software engineer", "sde": "software engineer",
    "bdr": "business development representative", "sdr": "sales development representative",
    "ae": "account executive", "gm": "general manager", "md": "managing director", "dev": "developer",
    "ops": "operations", "fp&a": "financial planning", "coord": "coordinator",
}

_C_LEVEL_ACRONYMS = r"ceo|cto|cfo|coo|cmo|cio|ciso|cro|cpo|cdo|cco|chro|cso|cao|cno|cxo"

# Matched against expand()'s text (single spaces). Every pattern is a word-bounded alternation of
# literal phrases, so a search is linear in the title: no ".*" between words, no nested or adjacent
# quantifiers that could match the same characters.
SENIORITY_RULES: tuple[tuple[str, str], ...] = (
    # Assistants to executives are not executives.
    (r"\bassistant to\b|\bexecutive assistant\b|\bexecutive secretary\b", "individual_contributor"),
    (r"\b(student|intern|internship|trainee|apprentice|undergraduate|phd candidate|graduate assistant)\b",
     "student"),
    (r"\b(retired|unemployed|none|n ?/? ?a|homemaker|volunteer|looking for work|job seeker)\b", "other"),
    (r"\bvice president\b|\bvice-president\b", "vp"),
    (rf"\b(chief|{_C_LEVEL_ACRONYMS}|president|founder|co-?founder|owner|managing director|"
     r"managing partner|partner|chairman|chairwoman|chairperson|chair|executive director|general manager|"
     r"principal owner|proprietor|entrepreneur)\b", "c_level"),
    (r"\b(director|head of|head|dean)\b", "director"),
    (r"\b(manager|management|supervisor|team lead|lead|leader|foreman|superintendent)\b", "manager"),
)

FUNCTION_RULES: tuple[tuple[str, str], ...] = (
    (r"\b(product marketing|marketing|cmo|brand|growth|demand gen\w*|demand generation|content|seo|sem|communications|"
     r"public relations|social media|campaigns?|digital media|advertising|events|copywriter)\b", "marketing"),
    (r"\b(sales|cro|chief revenue|revenue|account executive|account manager|business development|"
     r"development representative|customer success|partnerships?|channel|key account|inside sales|"
     r"presales|pre-sales|salesperson|commercial)\b", "sales"),
    (r"\b(engineer\w*|developer|software|cto|chief technology|architect|devops|sre|programmer|qa|"
     r"quality assurance|data scientist|machine learning|ml|ai|product|research and development|r&d|"
     r"firmware|frontend|front-end|backend|back-end|full-?stack|mobile|web|scientist|tech|technical|technology)\b",
     "engineering"),
    (r"\b(it|information technology|cio|chief information|ciso|chief information security|sysadmin|"
     r"system administrator|systems administrator|network|helpdesk|help desk|service desk|"
     r"security|cybersecurity|infrastructure|database administrator|dba|it support|desktop support)\b", "it"),
    (r"\b(finance|financial|cfo|chief financial|accountant|accounting|controller|comptroller|treasurer|"
     r"treasury|audit\w*|tax|bookkeeper|investor relations|financial planning|billing|payable|receivable)\b",
     "finance"),
    (r"\b(human resources|people|talent|recruiter|recruiting|recruitment|payroll|chro|learning and "
     r"development|compensation|benefits|hrbp)\b", "hr"),
    (r"\b(operations|coo|chief operating|supply chain|logistics|procurement|purchasing|facilities|"
     r"office manager|project manager|program manager|programme manager|project|program|warehouse|"
     r"fulfillment|administration|administrator|office)\b", "operations"),
    (r"\b(ceo|chief executive|president|founder|co-?founder|owner|managing director|general manager|"
     r"chairman|chairwoman|chair|partner|executive director|proprietor|entrepreneur|board)\b", "executive"),
)

_SENIORITY = tuple((re.compile(p), s) for p, s in SENIORITY_RULES)
_FUNCTION = tuple((re.compile(p), f) for p, f in FUNCTION_RULES)
_EXPAND = re.compile(r"\b(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
                     + r")\b\.?")


@dataclass(frozen=True)
class TitleResult:
    title: str | None
    seniority: str | None
    function: str | None


def expand(title: str) -> str:
    text = " ".join(title.lower().replace(",", " , ").replace("/", " / ").split())
    return _EXPAND.sub(lambda m: ABBREVIATIONS[m.group(1)], text)


def classify_title(raw: str | None) -> TitleResult:
    title = " ".join(raw.split()) if raw else ""
    if not title:
        return TitleResult(None, None, None)
    text = expand(title)
    seniority = next((s for pattern, s in _SENIORITY if pattern.search(text)), "individual_contributor")
    # Earliest mention wins; at one position the longer phrase ("product marketing" over "product").
    found = [(m.start(), -len(m.group(0)), f) for pattern, f in _FUNCTION for m in [pattern.search(text)] if m]
    specific = [hit for hit in found if hit[2] != "executive"]
    function = min(specific)[2] if specific else ("executive" if found else "other")
    return TitleResult(title, seniority, function)
