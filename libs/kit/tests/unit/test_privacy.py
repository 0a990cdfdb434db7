from fastapi.responses import JSONResponse

from leadflow_kit.privacy import _bind, person_of


def test_a_declaration_binds_only_the_parameters_it_names() -> None:
    assert _bind("lead_id = ANY(:lead_ids)", "a@b.co", ["L1"]) == ("lead_id = ANY($1::text[])", [["L1"]])
    assert _bind("email = :email OR id = ANY(:lead_ids)", "a@b.co", ["L1"]) == (
        "email = $1::text OR id = ANY($2::text[])", ["a@b.co", ["L1"]]
    )


def test_a_request_names_a_person_by_normalized_email_or_lead_ids() -> None:
    assert person_of(" Ada@Example.COM ", []) == ("ada@example.com", [])
    assert person_of(None, ["L1", "", "L2"]) == (None, ["L1", "L2"])
    for nobody in ((None, []), ("  ", [""]), ("a\x00@b.co", []), (None, ["L\x00"])):
        answer = person_of(*nobody)
        assert isinstance(answer, JSONResponse) and answer.status_code == 422
