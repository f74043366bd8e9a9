"""The one scoring loop validators and estimators share, and the one ``first_line`` of one-line errors."""

from tlbench.plugin.errors import UserError, first_line
from tlbench.plugin.scoring import NotApplicable, Scored, score_each


def test_first_line_names_an_exception_type_and_cuts_long_lines():
    assert first_line(RuntimeError("singular\nsecond line")) == "RuntimeError: singular"
    assert first_line(ValueError("   \n")) == "ValueError"
    assert first_line(ValueError("x" * 300)) == "ValueError: " + "x" * 200
    assert first_line(ValueError("x" * 300), 80, typed=False) == "x" * 80
    assert first_line("\x1b[31m\n  boom \x1b[0m\nmore", None) == "boom"  # text: the line alone, colour codes dropped
    assert first_line("") == "" and first_line(ValueError(""), typed=False) == ""


def test_score_each_keeps_a_finite_number_or_says_why_not():
    def score(name):
        if name == "missing":
            raise NotApplicable("needs held-out source data")
        if name == "user":
            raise UserError("plain H-score refuses n <= d")
        if name == "broken":
            raise RuntimeError("singular\nsecond line")
        return {"ok": 0.5, "nan": float("nan"), "text": "abc"}[name]

    out = score_each(["ok", "missing", "user", "broken", "nan", "text"], score)
    assert list(out) == ["ok", "missing", "user", "broken", "nan", "text"]
    assert out["ok"].value == 0.5 and out["ok"].why is None and out["ok"].seconds >= 0
    assert out["missing"] == Scored(None, "needs held-out source data", applicable=False)
    assert out["user"].why == "plain H-score refuses n <= d" and out["user"].applicable
    assert out["broken"].why == "RuntimeError: singular"
    assert out["nan"].value is None and out["nan"].why == "returned nan"
    assert out["text"].value is None and out["text"].why.startswith("ValueError: could not convert")
