"""Configuration: the public keys, environment overrides, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracktiond.config import Config, default_state_dir, load_config
from tracktiond.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tracktiond.toml"
    path.write_text(text)
    return path


def test_public_keys_work_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(
        tmp_path,
        """
[library]
roots = ["~/Music", "relative/dir", "/srv/music"]
[database]
url = "postgresql://tracktiond:s3cret@db.example:5432/catalog"
[http]
listen = "127.0.0.1:9999"
[tagging]
write = false
[graph]
uri = "bolt://localhost:7687"
user = "neo4j"
password = "graphpass"
database = "music"
""",
    )
    config = load_config(path, environ={})
    assert config.library.roots == [
        tmp_path / "home" / "Music",
        tmp_path / "relative" / "dir",  # relative to the config file
        Path("/srv/music"),
    ]
    # plain postgresql:// is normalised to the async driver
    assert config.database_url == "postgresql+asyncpg://tracktiond:s3cret@db.example:5432/catalog"
    assert (config.http.host, config.http.port) == ("127.0.0.1", 9999)
    assert config.tagging.write is False
    assert config.graph.enabled and config.graph.database == "music"
    assert config.graph.password.get_secret_value() == "graphpass"
    assert config.source == path


def test_environment_overrides_deployment_details_and_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///x.db"\n[graph]\nuri = "bolt://a:1"\n')
    env = {
        "TRACKTIOND_DATABASE_URL": "postgresql+asyncpg://u:pw@h/db",
        "TRACKTIOND_GRAPH_URI": "neo4j://graph:7687",
        "TRACKTIOND_GRAPH_USER": "svc",
        "TRACKTIOND_GRAPH_PASSWORD": "hunter2",
    }
    config = load_config(path, environ=env)
    assert config.database_url == "postgresql+asyncpg://u:pw@h/db"
    assert config.graph.uri == "neo4j://graph:7687"
    assert config.graph.user == "svc"
    assert config.graph.password.get_secret_value() == "hunter2"


def test_default_database_is_sqlite_in_the_state_directory(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={"STATE_DIRECTORY": "/var/lib/tracktiond"})
    assert config.database_url == "sqlite+aiosqlite:////var/lib/tracktiond/catalog.db"
    xdg = default_state_dir({"XDG_STATE_HOME": "/x/state"})
    assert xdg == Path("/x/state/tracktiond")


def test_config_file_search_order(tmp_path: Path) -> None:
    env_file = write(tmp_path, '[library]\nroots = ["/from/env"]\n')
    xdg = tmp_path / "xdg"
    (xdg / "tracktiond").mkdir(parents=True)
    (xdg / "tracktiond" / "tracktiond.toml").write_text('[library]\nroots = ["/from/xdg"]\n')
    env = {"TRACKTIOND_CONFIG": str(env_file), "XDG_CONFIG_HOME": str(xdg)}
    assert load_config(None, environ=env).library.roots == [Path("/from/env")]
    del env["TRACKTIOND_CONFIG"]
    assert load_config(None, environ=env).library.roots == [Path("/from/xdg")]
    explicit = tmp_path / "other.toml"
    explicit.write_text('[library]\nroots = ["/explicit"]\n')
    assert load_config(explicit, environ=env).library.roots == [Path("/explicit")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[library]\nrots = []\n", "[library] rots: unknown key"),
        ("[libary]\nroots = []\n", "libary: unknown key"),
        ("[library]\nroots = 42\n", "[library] roots: expected a list of non-empty directory"),
        ('[http]\nlisten = "127.0.0.1:70000"\n', "[http] listen: expected HOST:PORT"),
        ('[tagging]\nwrite = "yes please"\n', "[tagging] write: Input should be a valid boolean"),
        (
            '[database]\nurl = "mysql://x/y"\n',
            "[database] url: expected a sqlite:// or postgresql://",
        ),
        ('[graph]\nuri = "http://x"\n', "[graph] uri: expected a bolt:// or neo4j:// URI"),
        ("[workers]\ncount = -1\n", "[workers] count: Input should be greater than or equal to 0"),
        ("library = 3\n", "[library]: expected a table"),
        ("[library\n", "invalid TOML"),
    ],
)
def test_errors_name_the_file_the_key_and_the_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_secrets_never_appear_in_errors_or_redacted_output(tmp_path: Path) -> None:
    path = write(tmp_path, '[graph]\npassword = ["not", "a", "string"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "not" not in str(err.value).split("password", 1)[1]
    config = load_config(
        write(tmp_path, '[graph]\npassword = "topsecret"\n'),
        environ={"TRACKTIOND_DATABASE_URL": "postgresql://u:dbsecret@h/db"},
    )
    dumped = repr(config.redacted()) + repr(config) + str(config)
    assert "topsecret" not in dumped and "dbsecret" not in dumped


def test_defaults_are_valid() -> None:
    config = Config()
    assert config.tagging.write is False
    assert not config.graph.enabled
    assert config.http.host == "127.0.0.1"
