"""OneMap settings: one pydantic-settings class per concern, each with its env prefix.

Everything a deployment changes comes from the environment (or a `.env` file); nothing is
read at import time: `create_app(settings)` and the CLI build their settings explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gis.storage.location import gpkg_path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = REPO_ROOT / "data" / "onemap.gpkg"
DEFAULT_POSTGIS_KEY = REPO_ROOT / "data" / "onemap-postgis.key"


class DatabaseSettings(BaseSettings):
    """Where the city store lives: a PostGIS URL, or a GeoPackage path (the embedded default)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"gpkg:///{DEFAULT_STORE}",
        description="postgresql://user@host/db for PostGIS, gpkg:///path/to/file.gpkg for the embedded store",
    )
    schema_name: str = Field(default="onemap", description="PostGIS schema holding the layer tables")
    statement_timeout_ms: int = Field(default=15_000, ge=100, description="bound on every SQL statement")
    pool_size: int = Field(default=8, ge=1)
    # -- encryption at rest of the sensitive columns (gis.security.encryption) --
    data_key: SecretStr | None = Field(
        default=None, description="the data key as 64 hex digits; prefer data_key_file, which keeps it out of the environment"
    )
    data_key_file: Path | None = Field(
        default=None,
        description="file holding the data key (64 hex digits); default: beside a GeoPackage store (<store>.key), "
        "data/onemap-postgis.key for PostGIS; generated with mode 0600 when missing",
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql", "gpkg:", "sqlite:")):
            raise ValueError("ONEMAP_DATABASE_URL must start with postgresql://, gpkg:/// or sqlite:///")
        return value

    @property
    def is_postgis(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def data_key_path(self) -> Path:
        if self.data_key_file is not None:
            return self.data_key_file
        if self.is_postgis:
            return DEFAULT_POSTGIS_KEY
        store = gpkg_path(self.database_url)
        return store.with_name(store.name + ".key")


class ServerSettings(BaseSettings):
    """How the HTTP service presents itself."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    base_url: str | None = Field(
        default=None, description="public URL of the service; defaults to http://host:port"
    )
    title: str = "OneMap"
    default_items: int = Field(default=10, ge=1)
    max_items: int = Field(default=10_000, ge=1)
    layers_dir: Path = REPO_ROOT / "layers"
    pygeoapi_config: Path = REPO_ROOT / "pygeoapi-config.yml"
    indicators_file: Path | None = Field(
        default=None, description="the indicator registry; default layers_dir/indicators/registry.yml"
    )
    suppression_k: int = Field(default=10, ge=1, description="smallest group of people an aggregate may show")
    tile_cache_dir: Path | None = Field(
        default=REPO_ROOT / "data" / "cache", description="disk tile cache; empty to keep tiles in memory only"
    )
    count_cache_seconds: float = Field(
        default=300.0, ge=0, description="how long an exact numberMatched is reused for one filter"
    )

    @field_validator("tile_cache_dir", mode="before")
    @classmethod
    def _empty_is_memory_only(cls, value):
        # Path("") is Path("."): an empty ONEMAP_TILE_CACHE_DIR would put the cache in the working directory
        return None if isinstance(value, str) and not value.strip() else value

    edit_require_if_match: bool = Field(
        default=True,
        description="PUT/PATCH/DELETE need If-Match (428 without); false lets clients that send none "
        "(QGIS) edit, last writer wins for them, while a stale If-Match is still refused",
    )
    # -- browser pages on other origins (gis.app.cors) --
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default=["*"],
        description="origins whose pages may call the service: * (any; keys never travel in cookies) or "
        "a comma-separated list such as https://portal.city.example,https://gis.city.example",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value):
        if isinstance(value, str):
            value = value.split(",")
        origins = [str(o).strip().rstrip("/") for o in value if str(o).strip()]
        return origins or ["*"]

    # -- access (gis.security) --
    roles_file: Path | None = Field(default=None, description="the roles; default layers_dir/roles/roles.yml")
    oidc_issuer: str | None = Field(default=None, description="issuer (iss) of accepted JWTs")
    oidc_audience: str | None = Field(default=None, description="audience (aud) accepted JWTs must name")
    oidc_jwks_url: str | None = Field(default=None, description="the identity provider's JWKS URL")
    oidc_key: str | None = Field(default=None, description="a PEM public key (or HS256 secret) instead of JWKS")
    oidc_algorithms: list[str] = Field(default=["RS256", "ES256"])
    oidc_role_claim: str = "onemap_role"

    @property
    def indicator_registry(self) -> Path:
        return self.indicators_file or self.layers_dir / "indicators" / "registry.yml"

    @property
    def roles_path(self) -> Path:
        return self.roles_file or self.layers_dir / "roles" / "roles.yml"

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class Settings:
    """The whole configuration, grouped; built once by the caller and passed down."""

    def __init__(self, database: DatabaseSettings | None = None, server: ServerSettings | None = None):
        self.database = database or DatabaseSettings()
        self.server = server or ServerSettings()

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        db_keys = set(DatabaseSettings.model_fields)
        db = DatabaseSettings(**{k: v for k, v in overrides.items() if k in db_keys})
        srv = ServerSettings(**{k: v for k, v in overrides.items() if k not in db_keys})
        return cls(db, srv)
