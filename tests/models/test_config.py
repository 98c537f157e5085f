"""Option groups fail when they are made, naming the option, the value and what is allowed."""

from __future__ import annotations

import pickle

import pytest

from serval.exceptions import ConfigError
from serval.models import CacheConfig, StoreConfig
from serval.models._sizes import format_bytes, parse_bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (512, 512),
        ("512", 512),
        ("2GiB", 2 * 1024**3),
        ("512 MB", 512 * 10**6),
        ("1.5G", 1_500_000_000),
        ("64kib", 64 * 1024),
        (".5KB", 500),
    ],
)
def test_byte_sizes(text: object, size: int) -> None:
    assert parse_bytes(text, "max_bytes") == size


@pytest.mark.parametrize("bad", ["lots", "2 GiBs", "-1", -1, 1.5, True, None, float("inf")])
def test_bad_byte_sizes_name_the_option(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"invalid max_bytes .*'512MiB'"):
        parse_bytes(bad, "max_bytes")


def test_format_bytes() -> None:
    assert format_bytes(1536 * 1024**2) == "1.5 GiB"
    assert format_bytes(300 * 1024**2) == "300.0 MiB"
    assert format_bytes(12) == "12 B"


def test_cache_config_defaults_repr_and_pickle() -> None:
    config = CacheConfig(max_bytes="2GiB", admission="tinylfu")
    assert (
        config.max_bytes == 2 * 1024**3 and config.max_models == 3 and config.policy == "popularity"
    )
    assert "max_bytes=2147483648" in repr(config) and "admission='tinylfu'" in repr(config)
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_bytes": "lots"}, "max_bytes"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_models": 0}, "max_models"),
        ({"policy": "fifo"}, "policy"),
        ({"admission": "bouncer"}, "admission"),
        ({"max_concurrent_loads": 0}, "max_concurrent_loads"),
        ({"load_timeout_s": 0}, "load_timeout_s"),
        ({"load_retries": -1}, "load_retries"),
        ({"retry_backoff_s": float("nan")}, "retry_backoff_s"),
        ({"max_modles": 3}, "max_modles"),
    ],
)
def test_bad_cache_options(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CacheConfig(**options)  # type: ignore[arg-type]
    assert named in str(caught.value)


def test_store_config() -> None:
    config = StoreConfig(registry="s3://models", warm="redis://cache:6379/0", hmac_key="k" * 16)
    assert "k" * 16 not in repr(config) and "hmac_key='***'" in repr(config)
    assert StoreConfig(warm="disk:/var/cache/serval").warm_max_bytes == 10 * 1024**3
    assert StoreConfig(warm_max_bytes="50GiB").warm_max_bytes == 50 * 1024**3
    assert StoreConfig(loader="tests.models.test_loaders:upper").loader is not None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"warm": "ftp://cache"}, "warm"),
        ({"warm": "disk:"}, "warm"),
        ({"warm": "redis://cache:6379/0"}, "hmac_key"),
        ({"hmac_key": "short"}, "hmac_key"),
        ({"warm_max_bytes": "lots"}, "warm_max_bytes"),
        ({"warm_policy": "random"}, "warm_policy"),
        ({"loader": "safetensors"}, "loader"),
        ({"registry": "  "}, "registry"),
        ({"warm_retry_s": 0}, "warm_retry_s"),
    ],
)
def test_bad_store_options(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StoreConfig(**options)  # type: ignore[arg-type]
    assert named in str(caught.value)
