"""Configuration: one TOML file plus environment overrides, validated before anything starts.

Validation is cheap and happens first (nothing is opened or connected here), so a bad file is
reported at once with the file, the key and what was expected, and a reload can reject a bad new
file while the running configuration stays in force.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tracktiond.errors import ConfigError

CONFIG_ENV = "TRACKTIOND_CONFIG"
DATABASE_URL_ENV = "TRACKTIOND_DATABASE_URL"
GRAPH_ENV = {
    "uri": "TRACKTIOND_GRAPH_URI",
    "user": "TRACKTIOND_GRAPH_USER",
    "password": "TRACKTIOND_GRAPH_PASSWORD",
}
REDACTED = "********"
SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}

# libpq connection parameters a PostgreSQL URL may carry (what hosted providers hand out:
# ``?sslmode=require``); the catalog translates them for asyncpg (catalog/database.py).
# Handed to asyncpg's own libpq-compatible parser:
LIBPQ_DSN_PARAMS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "passfile",
    }
)
# Translated by the catalog itself: connect_timeout (seconds), application_name and
# options ("-c name=value ...") become asyncpg's timeout and server settings.
LIBPQ_TRANSLATED_PARAMS = frozenset({"connect_timeout", "application_name", "options"})
LIBPQ_PARAMS = LIBPQ_DSN_PARAMS | LIBPQ_TRANSLATED_PARAMS


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class LibraryConfig(_Section):
    roots: list[Path] = Field(default_factory=list)
    # Delete catalog rows of files that have been missing this many days; 0 keeps them forever.
    purge_missing_after_days: Annotated[float, Field(ge=0)] = 0
    # Seconds between reconciliations of a root the watcher cannot cover (network mounts, ...).
    poll_interval: Annotated[float, Field(gt=0)] = 300.0
    # Seconds between full reconciliations of every root; 0 disables them.
    full_reconcile_interval: Annotated[float, Field(ge=0)] = 0.0
    # Seconds a file's size and mtime must stay unchanged before it is processed.
    settle_interval: Annotated[float, Field(ge=0)] = 2.0
    follow_symlinks: bool = True

    @field_validator("roots", mode="before")
    @classmethod
    def _roots_are_strings(cls, value: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("expected a list of non-empty directory paths (strings)")
        return value


class ScanConfig(_Section):
    # Files hashed and read at once; 0 picks a value from the CPU count.
    concurrency: Annotated[int, Field(ge=0, le=256)] = 0
    # A file whose processing fails transiently this many times is marked failed for good.
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3


class DatabaseConfig(_Section):
    # May hold a password: kept out of repr(); printed only through redact_url().
    url: str = Field(default="", repr=False)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
            url.port  # noqa: B018 (parsed lazily: a bad port surfaces only here)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(
                f"not a database URL ({exc}); a user name or password holding @ : / # ? or % "
                "must be percent-encoded (%40 for @, %3A for :)"
            ) from None
        driver = url.drivername
        if driver in ("sqlite", "sqlite+pysqlite"):
            driver = "sqlite+aiosqlite"
        elif driver in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
            driver = "postgresql+asyncpg"
        if driver not in SUPPORTED_DRIVERS:
            raise ValueError(
                "expected a sqlite:// or postgresql:// URL "
                f"(drivers: {', '.join(sorted(SUPPORTED_DRIVERS))}), got {url.drivername!r}"
            )
        if driver == "postgresql+asyncpg":
            unknown = sorted(set(url.query) - LIBPQ_PARAMS)
            if unknown:
                raise ValueError(
                    f"unsupported PostgreSQL URL parameter(s) {', '.join(unknown)} "
                    f"(supported: {', '.join(sorted(LIBPQ_PARAMS))})"
                )
            timeout = url.query.get("connect_timeout")
            if timeout is not None:
                try:
                    float(timeout if isinstance(timeout, str) else timeout[0])
                except ValueError:
                    raise ValueError(f"connect_timeout={timeout!r}: expected seconds") from None
        return url.set(drivername=driver).render_as_string(hide_password=False)


class HttpConfig(_Section):
    listen: str = "127.0.0.1:9847"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT with a port between 1 and 65535")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class TaggingConfig(_Section):
    write: bool = False
    overwrite: bool = False
    key_notation: Literal["standard", "camelot", "openkey"] = "standard"
    # Also write the mood/energy estimate into this field (e.g. "MOOD"); empty: not written.
    energy_field: str = ""
    # Also write tempi the analysis marked uncertain (low confidence; docs/analysis.md).
    uncertain_bpm: bool = False


class GraphConfig(_Section):
    uri: str = ""
    user: str = "neo4j"
    password: SecretStr = SecretStr("")
    database: str = "neo4j"

    @field_validator("uri")
    @classmethod
    def _bolt_uri(cls, value: str) -> str:
        schemes = ("bolt://", "bolt+s://", "bolt+ssc://", "neo4j://", "neo4j+s://", "neo4j+ssc://")
        if value and not value.startswith(schemes):
            raise ValueError("expected a bolt:// or neo4j:// URI (or empty for no graph)")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.uri)


class WorkersConfig(_Section):
    # Worker tasks in the daemon; 0 means the number of CPUs.
    count: Annotated[int, Field(ge=0, le=512)] = 0


class AnalysisConfig(_Section):
    enabled: bool = True
    # Analysis worker processes; 0 means half the CPUs (at least one): ingest needs some too.
    workers: Annotated[int, Field(ge=0, le=256)] = 0
    # Last resort for the metrical level: a tempo whose level the signal could not decide is
    # folded into this range (docs/analysis.md, "Tempo"); decided tempi are never moved.
    bpm_min: Annotated[float, Field(gt=0, lt=1000)] = 60.0
    bpm_max: Annotated[float, Field(gt=0, le=1000)] = 210.0
    # Recordings longer than this (seconds) also get a tempo curve and keys per segment.
    long_recording_seconds: Annotated[float, Field(gt=0)] = 900.0
    curve_window_seconds: Annotated[float, Field(ge=5, le=600)] = 30.0
    key_profile: Literal[
        "edma", "edmm", "bgate", "temperley", "krumhansl", "shaath", "diatonic", "noland",
        "faraldo", "tonictriad", "temperley2005", "thpcp", "gomez",
    ] = "temperley"  # fmt: skip
    # Optional essentia TensorFlow mood models (see docs/analysis.md).
    models_dir: Path | None = None
    memory_limit_mb: Annotated[int, Field(ge=128)] = 1536
    # Per-file timeout: timeout_base + timeout_factor * duration (seconds).
    timeout_base: Annotated[float, Field(gt=0)] = 60.0
    timeout_factor: Annotated[float, Field(ge=0)] = 0.25
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 2

    @model_validator(mode="after")
    def _range(self) -> AnalysisConfig:
        if self.bpm_min >= self.bpm_max:
            raise ValueError(f"bpm_min ({self.bpm_min}) must be below bpm_max ({self.bpm_max})")
        return self


class DaemonConfig(_Section):
    shutdown_grace: Annotated[float, Field(ge=0)] = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"


DEFAULT_PATTERN = (
    '{albumartist|artist|"Unknown Artist"}/{album|"Unknown Album"}/'
    "[{disc}-][{track:02} ]{title|filename}"
)
DEFAULT_SET_PATTERN = 'Sets/[{date} ]{artist|"Unknown Artist"} - {title|album|filename}'


class OrganiseConfig(_Section):
    """Renaming and moving files by naming patterns (docs/organise.md). The patterns are
    compiled (and their errors reported with the column) by tracktiond.organise.settings."""

    # The daemon moves new files from the inbox roots into the library. Off unless enabled.
    auto: bool = False
    inbox: list[Path] = Field(default_factory=list)
    # Where organised files go; empty: the [library] root each file is under.
    library: Path | None = None
    pattern: str = DEFAULT_PATTERN
    # Recordings at least set_seconds long (DJ sets, live recordings); empty: `pattern`.
    set_pattern: str = DEFAULT_SET_PATTERN
    set_seconds: Annotated[float, Field(gt=0)] = 900.0
    # Per-format patterns (sniffed format name -> pattern), before set_pattern and pattern.
    formats: dict[str, str] = Field(default_factory=dict)
    collisions: Literal["number", "skip"] = "number"
    transliterate: bool = False
    portable: bool = False
    # The whole target path in characters (0: only the filesystem's limit; portable: 255).
    max_path_chars: Annotated[int, Field(ge=0, le=4096)] = 0
    sidecars: bool = True
    # Steps per journal transaction.
    journal_batch: Annotated[int, Field(ge=1, le=5000)] = 200

    @field_validator("inbox", mode="before")
    @classmethod
    def _inbox_strings(cls, value: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("expected a list of non-empty directory paths (strings)")
        return value


class TracklistsConfig(_Section):
    """Tracklists of DJ sets and live recordings (docs/tracklists.md)."""

    # Read sheets and pasted lists next to audio (and sheets embedded in it) into the catalog.
    enabled: bool = True
    # The code page of sheets that are not UTF-8 ("ANSI" sheets: CUETools, EAC, old players).
    legacy_encoding: str = "cp1252"
    # What `tracklist cue --write` writes: UTF-8 (no BOM), UTF-8 with a BOM, or the legacy page.
    write_encoding: Literal["utf-8", "utf-8-bom", "legacy"] = "utf-8"
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3

    @field_validator("legacy_encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None


class FingerprintConfig(_Section):
    """Identifying the library's tracks inside recorded sets (docs/identify.md)."""

    # Off by default: the index costs CPU once per track and ~300 bytes per second of audio.
    enabled: bool = False
    # Recordings shorter than this are tracks (indexed); longer ones are sets (identified
    # against the index). Default: [analysis] long_recording_seconds.
    track_max_seconds: Annotated[float, Field(gt=0)] | None = None
    # Postings per second of indexed audio: "low" halves the index at some recall.
    density: Literal["low", "normal", "high"] = "normal"
    # Worker processes decoding and fingerprinting (default: one).
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # A set is identified again once the index has not changed for this long.
    identify_debounce_seconds: Annotated[float, Field(ge=0)] = 60.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3


class Config(_Section):
    library: LibraryConfig = LibraryConfig()
    scan: ScanConfig = ScanConfig()
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    tagging: TaggingConfig = TaggingConfig()
    graph: GraphConfig = GraphConfig()
    workers: WorkersConfig = WorkersConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    daemon: DaemonConfig = DaemonConfig()
    organise: OrganiseConfig = OrganiseConfig()
    tracklists: TracklistsConfig = TracklistsConfig()
    fingerprint: FingerprintConfig = FingerprintConfig()

    # Where the configuration came from (None: built-in defaults); not a TOML key.
    source: Path | None = Field(default=None, exclude=True)
    state_dir: Path = Field(default_factory=lambda: default_state_dir(), exclude=True)

    @property
    def database_url(self) -> str:
        """The effective SQLAlchemy URL: configured, else SQLite in the state directory."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.state_dir / 'catalog.db'}"

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, with every secret replaced."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = redact_url(self.database_url)
        data["graph"]["password"] = REDACTED if self.graph.password.get_secret_value() else ""
        data["library"]["roots"] = [str(p) for p in self.library.roots]
        models = self.analysis.models_dir
        data["analysis"]["models_dir"] = str(models) if models else None
        data["organise"]["inbox"] = [str(p) for p in self.organise.inbox]
        library = self.organise.library
        data["organise"]["library"] = str(library) if library else None
        return data


def redact_url(url: str) -> str:
    """A database URL safe for logs and output."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return REDACTED


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """systemd's $STATE_DIRECTORY when set, else the XDG state directory."""
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when several StateDirectory= are set.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tracktiond"


def candidate_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The usual places, in the order they are tried when no --config is given."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths = [Path(xdg) / "tracktiond" / "tracktiond.toml", Path("/etc/tracktiond/tracktiond.toml")]
    if env.get("CONFIGURATION_DIRECTORY"):  # systemd's ConfigurationDirectory=
        paths.insert(0, Path(env["CONFIGURATION_DIRECTORY"].split(":")[0]) / "tracktiond.toml")
    return paths


def find_config_file(
    explicit: Path | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    for path in candidate_paths(env):
        if path.is_file():
            return path
    return None


def load_config(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Find, read and validate the configuration; raises ConfigError with a precise message."""
    env = os.environ if environ is None else environ
    path = find_config_file(explicit, env)
    if path is not None:
        path = Path(os.path.abspath(path))  # reloads must find it whatever the cwd becomes
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
        except PermissionError:
            raise ConfigError(f"{path}: permission denied") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_mapping(raw, path, env)


def config_from_mapping(
    raw: Mapping[str, Any], source: Path | None, environ: Mapping[str, str] | None = None
) -> Config:
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    _apply_env(data, env)
    where = str(source) if source else "built-in defaults"
    try:
        config = Config.model_validate(
            {**data, "source": source, "state_dir": default_state_dir(env)}
        )
    except ValidationError as exc:
        message = _describe(where, exc)
        if DATABASE_URL_ENV in env and "[database] url" in message:
            # The URL came from the environment, not from the file the message names.
            message = message.replace("[database] url", f"[database] url (from {DATABASE_URL_ENV})")
        raise ConfigError(message) from None
    base = source.parent if source else Path.cwd()
    roots = [_resolve_root(p, base) for p in config.library.roots]
    library = config.library.model_copy(update={"roots": roots})
    analysis = config.analysis
    if analysis.models_dir is not None:
        models = _resolve_root(analysis.models_dir, base)
        analysis = analysis.model_copy(update={"models_dir": models})
    return config.model_copy(
        update={
            "library": library,
            "analysis": analysis,
            "organise": _resolve_organise(config.organise, base, where, roots),
        }
    )


def _resolve_organise(
    organise: OrganiseConfig, base: Path, where: str, roots: list[Path]
) -> OrganiseConfig:
    inbox = [_resolve_root(p, base) for p in organise.inbox]
    library = _resolve_root(organise.library, base) if organise.library else None

    def under_a_root(path: Path) -> bool:
        return any(path == r or r in path.parents for r in roots)

    problems = [
        f"  [organise] inbox: {p} is not under any [library] root, so its files are never cataloged"
        for p in inbox
        if not under_a_root(p)
    ]
    if organise.auto and not inbox:
        problems.append("  [organise] auto: needs at least one [organise] inbox directory")
    if library is not None and organise.auto and not under_a_root(library):
        problems.append(
            f"  [organise] library: {library} is not under any [library] root: the files "
            "moved there would leave the catalog"
        )
    if library is not None and any(library == p or p in library.parents for p in inbox):
        problems.append(f"  [organise] library: {library} is inside an inbox: files would loop")
    if problems:
        raise ConfigError("\n".join([f"{where}: invalid configuration", *problems]))
    return organise.model_copy(update={"inbox": inbox, "library": library})


def _resolve_root(path: Path, base: Path) -> Path:
    # Relative roots are relative to the config file, so a config works from any cwd.
    expanded = path.expanduser()
    return Path(os.path.abspath(expanded if expanded.is_absolute() else base / expanded))


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    if env.get(DATABASE_URL_ENV):
        data.setdefault("database", {})
        if isinstance(data["database"], dict):
            data["database"]["url"] = env[DATABASE_URL_ENV]
    for key, var in GRAPH_ENV.items():
        if env.get(var):
            data.setdefault("graph", {})
            if isinstance(data["graph"], dict):
                data["graph"][key] = env[var]


def _describe(where: str, exc: ValidationError) -> str:
    lines = [f"{where}: invalid configuration"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in ("source", "state_dir"):
            continue
        if len(loc) >= 2:
            key = f"[{loc[0]}] {'.'.join(loc[1:])}"
        elif loc:
            key = f"[{loc[0]}]" if err["type"] != "extra_forbidden" else loc[0]
        else:
            key = "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] in ("model_type", "model_attributes_type"):
            msg = "expected a table (section)"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            shown = err["type"] != "missing" and not isinstance(given, dict | SecretStr)
            if shown and "password" not in key and "url" not in key:  # never echo secrets
                msg += f" (got {given!r})"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)
