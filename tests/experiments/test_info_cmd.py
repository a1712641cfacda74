"""``byai info`` says what a file is: reference data with its tolerance, or the audit's surrogate predictions."""

from experiments._info_cmd import describe


def test_info_tells_predictions_from_imported_data(tiny_run):
    _, out = tiny_run
    data = describe(out / "data" / "test.h5")
    assert isinstance(data["tolerance"], dict) and data["tolerance"]["rtol"] > 0
    predictions = describe(out / "audit" / "predictions.h5")
    assert predictions["source"] == "byai audit predictions"
    assert predictions["tolerance"].startswith("none (surrogate predictions")
    assert "imported" not in predictions["tolerance"]
