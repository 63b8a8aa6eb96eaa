"""Credentials: read only from the environment (or a file it names), never shown."""

from __future__ import annotations

import pytest

from worker.config import load_settings
from worker.errors import ConfigError
from worker.secrets import load_credentials

BASE = {"target.base_url": "https://rest.zuora.com"}


def test_missing_credentials_name_the_variables():
    """Missing credentials for the chosen auth mode are a config error naming the variable."""
    with pytest.raises(ConfigError, match="ZUORA_PASSWORD"):
        load_settings("run", {**BASE, "target.auth": "legacy"}, {"ZUORA_USERNAME": "u"})
    with pytest.raises(ConfigError, match="ZUORA_CLIENT_ID"):
        load_settings("run", BASE, {})


def test_a_secret_can_come_from_a_file_the_environment_names(tmp_path):
    """ZUORA_CLIENT_SECRET_FILE (systemd LoadCredential, Kubernetes secret volumes): the file's
    content, stripped; the value never shows in repr."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret-from-file\n")
    creds = load_credentials({"ZUORA_CLIENT_ID": "id",
                              "ZUORA_CLIENT_SECRET_FILE": str(secret)}, "oauth")
    assert creds.client_secret == "s3cret-from-file"
    assert "s3cret" not in repr(creds)
    assert creds.secrets() == ["s3cret-from-file", "id"]


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_variable_does_not_hide_the_file_it_names(tmp_path, empty):
    """``ZUORA_CLIENT_SECRET=`` left empty (a template, a Kubernetes env with no value) beside
    ``ZUORA_CLIENT_SECRET_FILE``: the file is read (it was ignored: 'required ... set it')."""
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    creds = load_credentials({"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": empty,
                              "ZUORA_CLIENT_SECRET_FILE": str(secret)}, "oauth")
    assert creds.client_secret == "from-the-file"


@pytest.mark.parametrize("name", ["ZUORA_PASSWORD", "ZUORA_USERNAME", "ZUORA_ENTITY_ID"])
def test_a_credential_with_a_line_break_is_a_config_error(name):
    """A value sent in a header (legacy credentials, the entity id) cannot hold a control
    character; it is refused at load naming the variable, never its value."""
    env = {"ZUORA_USERNAME": "user", "ZUORA_PASSWORD": "hunter2-pass", name: "abc\ndef-ghi"}
    with pytest.raises(ConfigError, match=name) as caught:
        load_credentials(env, "legacy")
    assert "def-ghi" not in str(caught.value)


def test_a_secret_file_that_is_a_directory_is_a_config_error(tmp_path):
    """A Secret volume mounted at the file's path (a common slip): exit 2 naming it, not a
    traceback."""
    with pytest.raises(ConfigError, match=r"ZUORA_CLIENT_SECRET_FILE: .* is a directory"):
        load_credentials({"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET_FILE": str(tmp_path)},
                         "oauth")
