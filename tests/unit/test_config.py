"""The config loader: file, environment on top, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfd.config import api_key, load
from kfd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load(tmp_path / "absent.toml", environ={})
    assert config.agent.max_steps == 100
    assert config.agent.repeat_limit == 3


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nbase_url = "http://file/v1"\nmodel = "file-model"\n')
    config = load(path, environ={"KFD_BASE_URL": "http://env/v1", "KFD_MODEL": "env-model"})
    assert config.model.base_url == "http://env/v1"
    assert config.model.model == "env-model"


def test_the_api_key_comes_from_the_environment_only(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[model]\napi_key_env = "MY_KEY"\n'), environ={})
    assert api_key(config.model, {"MY_KEY": "k1"}) == "k1"
    assert api_key(config.model, {"MY_KEY": "k1", "KFD_API_KEY": "k2"}) == "k2"
    assert api_key(config.model, {}) is None


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[model\nbase_url = 1", ["not valid TOML"]),
        ("[model]\nmax_retries = 'lots'\n", ["Expected `int`", "max_retries"]),
        ("[modle]\nmodel = 'x'\n", ["unknown field `modle`"]),
        ("[agent]\ndefault_mode = 'yolo'\n", ["default_mode"]),
        ("[tools]\nbash = 3\n", ["Expected `object`", "tools.bash"]),
    ],
)
def test_a_broken_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load(path, environ={})
    assert str(path) in str(error.value)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_a_bad_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path / "absent.toml", environ={"KFD_PROVIDER": "nonsense"})
    assert "provider='nonsense'" in str(error.value)
