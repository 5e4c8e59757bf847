"""Latency profile files: the shipped one, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmperf.emulator.faults import FaultKind
from pytest_llmperf.emulator.profiles import (
    default_profiles_path,
    load_catalogue,
    normalize_model_name,
)
from pytest_llmperf.errors import ProfileError


def test_shipped_profiles_have_the_three_tiers_in_realistic_proportions() -> None:
    models = load_catalogue().models
    small, medium, large = models["llama3.2:1b"], models["llama3.2:3b"], models["llama3:8b"]
    assert small.load_s < medium.load_s < large.load_s
    assert small.tokens_per_s > medium.tokens_per_s > large.tokens_per_s
    assert small.prompt_tokens_per_s > medium.prompt_tokens_per_s > large.prompt_tokens_per_s
    assert all(0 < m.jitter < 0.2 for m in (small, medium, large))


def test_shipped_file_is_found_in_the_checkout() -> None:
    assert default_profiles_path().name == "profiles.toml"
    assert default_profiles_path().is_file()


def test_names_get_the_latest_tag() -> None:
    assert normalize_model_name("llama3") == "llama3:latest"
    assert normalize_model_name("llama3:8b") == "llama3:8b"
    assert (
        normalize_model_name("registry.local:5000/team/model")
        == "registry.local:5000/team/model:latest"
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_faults_and_overrides_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
num_parallel = 4
keep_alive = "-1m"

[models.flaky]
tokens_per_s = 100
faults = [{kind = "stall", after = 2, seconds = 0.5, every = 2}]
""",
    )
    catalogue = load_catalogue(path)
    assert catalogue.server.num_parallel == 4
    assert catalogue.server.keep_alive_s == float("inf")
    flaky = catalogue.models["flaky:latest"]
    assert flaky.tokens_per_s == 100.0
    assert flaky.faults[0].kind is FaultKind.STALL
    assert flaky.faults[0].every == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[models.a]\ntokens_per_s = -1\n",
            r"models\.'a'\.tokens_per_s must be a number >= 0, got -1",
        ),
        ("[models.a]\nspeed = 1\n", r"\[models\.'a'\] has unknown key\(s\) \['speed'\]"),
        ("[models.a]\nresponse_tokens = [5, 2]\n", r"response_tokens must be \[min, max\]"),
        ("[models.a]\njitter = 1.5\n", r"jitter must be below 1\.0"),
        ("[server]\nnum_parallel = 0\n", r"server\.num_parallel must be a whole number >= 1"),
        ('[server]\nkeep_alive = "3600"\n', r'missing unit in duration "3600"'),
        ("[extra]\n", r"unknown top-level table"),
        (
            "[models.a]\nsize = 100\nsize_vram = 101\n",
            r"models\.'a'\.size_vram must be a whole number of bytes from 0 \(all in main "
            r"memory\) to size \(100: all in GPU memory\), got 101",
        ),
        (
            '[models.a]\nsize_vram = "all"\n',
            r"models\.'a'\.size_vram must be a whole number >= 0, got 'all'",
        ),
        (
            '[models.a]\nquantization_level = "q4"\n',
            r"models\.'a'\.quantization_level must be one of F32, F16, BF16, Q8_0, .*, got 'q4'",
        ),
        ('[models.a]\nfaults = [{kind = "boom"}]\n', r"faults\[0\]: unknown fault kind 'boom'"),
        ("this is = = not toml", r"cannot read latency profile file"),
    ],
)
def test_bad_files_name_file_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError, match=message) as failure:
        load_catalogue(path)
    assert str(path) in str(failure.value)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist; pass an existing TOML file"):
        load_catalogue(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[models.a]\ntokens_per_s = 0\n",
            "models.'a'.tokens_per_s must be a number above 0, got 0",
        ),
        ('[models.a]\nload_s = "2"\n', "models.'a'.load_s must be a number >= 0, got '2'"),
        (
            "[models.a]\nfirst_token_s = nan\n",
            "models.'a'.first_token_s must be a number >= 0, got nan",
        ),
        ("[models.a]\nsize = 1.5\n", "models.'a'.size must be a whole number >= 1, got 1.5"),
        ("[server]\nmax_queue = true\n", "server.max_queue must be a whole number >= 0, got True"),
        ("[server]\ntime_scale = inf\n", "server.time_scale must be a number >= 0, got inf"),
        (
            '[server]\nkeep_alive = "soon"\n',
            '[server].keep_alive must be a duration such as "5m" or "1h30m", a number of seconds, '
            "or a negative number (for ever), got 'soon' (time: invalid duration \"soon\")",
        ),
        (
            '[models.a]\nfaults = [{kind = "stall", seconds = "long"}]\n',
            "models.'a'.faults[0]: fault 'stall': seconds must be a number of seconds >= 0, got "
            "'long' (in fault {'kind': 'stall', 'seconds': 'long'})",
        ),
    ],
)
def test_a_bad_field_names_the_field_and_what_it_takes(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as failure:
        load_catalogue(path)
    assert str(failure.value) == f"{path}: {message}"


def test_vram_defaults_to_the_whole_model_and_reads_a_partial_offload(tmp_path: Path) -> None:
    assert all(m.vram == m.size for m in load_catalogue().models.values())
    path = write(
        tmp_path,
        '[models.big]\nsize = 1000\nsize_vram = 250\nquantization_level = "F16"\n',
    )
    big = load_catalogue(path).models["big:latest"]
    assert (big.size, big.vram, big.quantization_level) == (1000, 250, "F16")
