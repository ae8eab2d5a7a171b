"""`kronos serve`: bad arguments are refused on one line."""

from __future__ import annotations

import argparse

import pytest

from kronos.commands.main import main
from kronos.commands.serve import add_serve_arguments, allowed_hosts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be between 1 and 65535"),
        (["--max-batch", "0"], "--max-batch must be at least 1"),
        (["--max-past-forecasts", "0"], "--max-past-forecasts must be at least 1"),
        (["--max-body-mb", "0"], "--max-body-mb > 0"),
        (["--api-key", " "], "the API key (--api-key or $KRONOS_API_KEY) is empty"),
        (["--model", "/no/such/model"], "/no/such/model"),
        (["--read-timeout", "0"], "--read-timeout must be > 0 seconds"),
        (["--allowed-host", " "], "--allowed-host must name a host"),
        (["--host", "0.0.0.0"], "pass the names clients use, --allowed-host NAME"),
        (["--host", "::"], "--host '::' listens on every address"),
    ],
)
def test_serve_command_refuses_bad_arguments_in_one_line(args, message, capsys):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kronos serve: error:") and message in err and "\n" not in err


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ([], ()),
        (["--host", "localhost"], ()),
        (["--host", "192.168.1.5"], ("192.168.1.5",)),
        (
            ["--host", "0.0.0.0", "--allowed-host", "desk", "--allowed-host", "desk.example"],
            ("desk", "desk.example"),
        ),
        (["--host", "10.0.0.2", "--allowed-host", "10.0.0.2"], ("10.0.0.2",)),
    ],
)
def test_the_server_answers_to_its_own_address_and_the_allowed_names(args, names):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert allowed_hosts(parser.parse_args(args)) == names
