"""Job titles as people type them → seniority and function."""

from __future__ import annotations

import pytest

from leadflow_enrichment.titles import FUNCTIONS, SENIORITIES, classify_title

TITLES: list[tuple[str, str, str]] = [
    # C-level and owners
    ("CEO", "c_level", "executive"),
    ("Chief Executive Officer", "c_level", "executive"),
    ("CEO & Co-Founder", "c_level", "executive"),
    ("Founder", "c_level", "executive"),
    ("Co-founder and CTO", "c_level", "engineering"),
    ("CTO", "c_level", "engineering"),
    ("Chief Technology Officer", "c_level", "engineering"),
    ("CFO", "c_level", "finance"),
    ("Chief Financial Officer", "c_level", "finance"),
    ("COO", "c_level", "operations"),
    ("Chief Operating Officer", "c_level", "operations"),
    ("CMO", "c_level", "marketing"),
    ("Chief Marketing Officer", "c_level", "marketing"),
    ("CIO", "c_level", "it"),
    ("Chief Information Officer", "c_level", "it"),
    ("CISO", "c_level", "it"),
    ("Chief Information Security Officer", "c_level", "it"),
    ("Chief Revenue Officer", "c_level", "sales"),
    ("CRO", "c_level", "sales"),
    ("Chief People Officer", "c_level", "hr"),
    ("CHRO", "c_level", "hr"),
    ("President", "c_level", "executive"),
    ("President & CEO", "c_level", "executive"),
    ("Owner", "c_level", "executive"),
    ("Business Owner", "c_level", "executive"),
    ("Managing Director", "c_level", "executive"),
    ("Managing Partner", "c_level", "executive"),
    ("Partner", "c_level", "executive"),
    ("Chairman of the Board", "c_level", "executive"),
    ("Executive Director", "c_level", "executive"),
    ("General Manager", "c_level", "executive"),
    # VPs
    ("VP Marketing", "vp", "marketing"),
    ("Vice President of Sales", "vp", "sales"),
    ("VP, Engineering", "vp", "engineering"),
    ("SVP Finance", "vp", "finance"),
    ("EVP, Operations", "vp", "operations"),
    ("AVP Information Technology", "vp", "it"),
    ("Senior Vice President, Human Resources", "vp", "hr"),
    ("VP of People", "vp", "hr"),
    ("Vice-President Business Development", "vp", "sales"),
    ("VP Sales & Marketing", "vp", "sales"),
    ("VP Product", "vp", "engineering"),
    ("Vice President, Demand Generation", "vp", "marketing"),
    ("VP Customer Success", "vp", "sales"),
    # Directors and heads
    ("Director of Marketing", "director", "marketing"),
    ("Marketing Director", "director", "marketing"),
    ("Sr. Director, Demand Gen", "director", "marketing"),
    ("Director of Engineering", "director", "engineering"),
    ("Head of IT", "director", "it"),
    ("Head of Growth", "director", "marketing"),
    ("Head of Sales", "director", "sales"),
    ("Director, Financial Planning & Analysis", "director", "finance"),
    ("Director of Human Resources", "director", "hr"),
    ("HR Director", "director", "hr"),
    ("Director of Operations", "director", "operations"),
    ("Head of Talent Acquisition", "director", "hr"),
    ("Director IT Infrastructure", "director", "it"),
    ("Sales Director EMEA", "director", "sales"),
    ("Head of Product", "director", "engineering"),
    ("Director of Supply Chain", "director", "operations"),
    # Managers and leads
    ("Marketing Manager", "manager", "marketing"),
    ("Sr. Marketing Mgr", "manager", "marketing"),
    ("Product Marketing Manager", "manager", "marketing"),
    ("Engineering Manager", "manager", "engineering"),
    ("Sales Manager", "manager", "sales"),
    ("Regional Sales Manager", "manager", "sales"),
    ("Account Manager", "manager", "sales"),
    ("IT Manager", "manager", "it"),
    ("Finance Manager", "manager", "finance"),
    ("HR Manager", "manager", "hr"),
    ("Office Manager", "manager", "operations"),
    ("Operations Manager", "manager", "operations"),
    ("Project Manager", "manager", "operations"),
    ("Product Manager", "manager", "engineering"),
    ("Team Lead, Customer Support", "manager", "other"),
    ("Tech Lead", "manager", "engineering"),
    ("Content Marketing Lead", "manager", "marketing"),
    ("Recruiting Manager", "manager", "hr"),
    ("Payroll Supervisor", "manager", "hr"),
    ("Warehouse Supervisor", "manager", "operations"),
    ("Social Media Manager", "manager", "marketing"),
    # Individual contributors
    ("Software Engineer", "individual_contributor", "engineering"),
    ("Senior Software Engineer", "individual_contributor", "engineering"),
    ("Sr. Backend Developer", "individual_contributor", "engineering"),
    ("Full Stack Developer", "individual_contributor", "engineering"),
    ("DevOps Engineer", "individual_contributor", "engineering"),
    ("Data Scientist", "individual_contributor", "engineering"),
    ("Solutions Architect", "individual_contributor", "engineering"),
    ("QA Analyst", "individual_contributor", "engineering"),
    ("SWE II", "individual_contributor", "engineering"),
    ("Account Executive", "individual_contributor", "sales"),
    ("Senior Account Executive", "individual_contributor", "sales"),
    ("SDR", "individual_contributor", "sales"),
    ("Business Development Representative", "individual_contributor", "sales"),
    ("Inside Sales Representative", "individual_contributor", "sales"),
    ("Sales Engineer", "individual_contributor", "sales"),
    ("Marketing Coordinator", "individual_contributor", "marketing"),
    ("Content Writer", "individual_contributor", "marketing"),
    ("SEO Specialist", "individual_contributor", "marketing"),
    ("Growth Marketer", "individual_contributor", "marketing"),
    ("Accountant", "individual_contributor", "finance"),
    ("Senior Financial Analyst", "individual_contributor", "finance"),
    ("Staff Accountant", "individual_contributor", "finance"),
    ("Tax Associate", "individual_contributor", "finance"),
    ("Bookkeeper", "individual_contributor", "finance"),
    ("System Administrator", "individual_contributor", "it"),
    ("Sysadmin", "individual_contributor", "it"),
    ("Network Engineer", "individual_contributor", "it"),
    ("Help Desk Technician", "individual_contributor", "it"),
    ("Security Analyst", "individual_contributor", "it"),
    ("Database Administrator", "individual_contributor", "it"),
    ("Recruiter", "individual_contributor", "hr"),
    ("HR Generalist", "individual_contributor", "hr"),
    ("Talent Acquisition Specialist", "individual_contributor", "hr"),
    ("Logistics Coordinator", "individual_contributor", "operations"),
    ("Procurement Specialist", "individual_contributor", "operations"),
    ("Buyer, Purchasing", "individual_contributor", "operations"),
    ("Executive Assistant to the CEO", "individual_contributor", "executive"),
    ("Consultant", "individual_contributor", "other"),
    ("Nurse", "individual_contributor", "other"),
    ("Teacher", "individual_contributor", "other"),
    ("Attorney", "individual_contributor", "other"),
    # Students and others
    ("Student", "student", "other"),
    ("Marketing Intern", "student", "marketing"),
    ("Software Engineering Intern", "student", "engineering"),
    ("PhD Candidate", "student", "other"),
    ("Graduate Assistant", "student", "other"),
    ("Trainee Accountant", "student", "finance"),
    ("Retired", "other", "other"),
    ("Unemployed", "other", "other"),
    ("N/A", "other", "other"),
]


def test_the_table_covers_at_least_a_hundred_titles():
    assert len(TITLES) >= 100
    assert len({t for t, _, _ in TITLES}) == len(TITLES)


@pytest.mark.parametrize(("title", "seniority", "function"), TITLES)
def test_title_maps_to_seniority_and_function(title, seniority, function):
    result = classify_title(title)
    assert (result.seniority, result.function) == (seniority, function)
    assert result.seniority in SENIORITIES
    assert result.function in FUNCTIONS


def test_title_is_kept_with_whitespace_collapsed():
    assert classify_title("  VP   of Sales ").title == "VP of Sales"


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_title_has_no_seniority_or_function(blank):
    result = classify_title(blank)
    assert (result.title, result.seniority, result.function) == (None, None, None)
