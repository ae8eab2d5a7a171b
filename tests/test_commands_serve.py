"""`kronos serve`: bad arguments are refused on one line."""

from __future__ import annotations

import pytest

from kronos.commands.main import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be between 1 and 65535"),
        (["--max-batch", "0"], "--max-batch must be at least 1"),
        (["--max-past-forecasts", "0"], "--max-past-forecasts must be at least 1"),
        (["--max-body-mb", "0"], "--max-body-mb > 0"),
        (["--api-key", " "], "the API key (--api-key or $KRONOS_API_KEY) is empty"),
        (["--model", "/no/such/model"], "/no/such/model"),
    ],
)
def test_serve_command_refuses_bad_arguments_in_one_line(args, message, capsys):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kronos serve: error:") and message in err and "\n" not in err
