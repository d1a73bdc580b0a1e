"""The Procfile, docker-compose.yml, .env.example and README agree with each other and the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from config.celery import DEFAULT_QUEUE, EVENTS_QUEUE, LIFECYCLE_QUEUE, QUERY_QUEUE
from config.settings import Settings
from worker.demo.procfile import read_procfile

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TYPES = {"lifecycle", "discovery", "beat", "web", "flower", "simulator"}


def procfile() -> dict[str, str]:
    return read_procfile(ROOT / "Procfile")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def setting_variables() -> set[str]:
    return {str(field.validation_alias) for field in Settings.model_fields.values()}


def test_procfile_has_every_process_type() -> None:
    assert set(procfile()) == PROCESS_TYPES


@pytest.mark.parametrize("service", sorted(PROCESS_TYPES))
def test_compose_service_runs_its_procfile_line(service: str) -> None:
    command = compose()["services"][service]["command"]
    assert command[:2] == ["sh", "-c"]
    # Compose turns `$$` into `$`, leaving the expansion to the container's shell.
    assert command[2].replace("$$", "$") == procfile()[service]


@pytest.mark.parametrize("service", sorted(PROCESS_TYPES))
def test_compose_app_services_read_env_and_wait_for_redis(service: str) -> None:
    spec = compose()["services"][service]
    assert spec["env_file"] == [".env"]
    assert spec["build"] == "."
    if service != "simulator":
        assert spec["depends_on"]["redis"]["condition"] == "service_healthy"


def test_simulator_is_behind_a_profile() -> None:
    assert compose()["services"]["simulator"]["profiles"] == ["simulator"]


def test_redis_persists_and_has_a_health_check() -> None:
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_procfile_programs_are_installed() -> None:
    bin_dir = Path(__import__("sys").executable).parent
    for command in procfile().values():
        program = shlex.split(command)[0]
        assert (bin_dir / program).exists(), f"{program} is not installed in {bin_dir}"


def test_celery_processes_use_the_app_module() -> None:
    for name in ("lifecycle", "discovery", "beat", "flower"):
        assert procfile()[name].startswith("celery -A worker ")


def _consumed_queues(name: str) -> set[str]:
    (option,) = [a for a in shlex.split(procfile()[name]) if a.startswith("--queues=")]
    return set(option.removeprefix("--queues=").split(","))


def test_lifecycle_has_a_worker_of_its_own() -> None:
    """Start and stop calls never wait behind polls or callbacks: no process shares their pool.
    The lifecycle worker also reads Celery's default queue, where a booking system's plain
    client sends ``recordings.*`` when it names no queue."""
    assert _consumed_queues("lifecycle") == {LIFECYCLE_QUEUE, DEFAULT_QUEUE}
    assert _consumed_queues("discovery") == {QUERY_QUEUE, EVENTS_QUEUE}


@pytest.mark.parametrize("name", ["lifecycle", "discovery"])
def test_workers_use_threads_and_a_distinct_node_name_per_process(name: str) -> None:
    args = shlex.split(procfile()[name])
    assert "--pool=threads" in args
    # $$ (the shell's pid, which exec hands to celery) keeps two processes scaled on one host
    # apart in Flower and in control replies.
    assert f"--hostname={name}-$$@%h" in args


def env_example_names() -> set[str]:
    """Every variable .env.example sets or shows commented out."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def test_env_example_lists_every_setting() -> None:
    assert setting_variables() - env_example_names() == set()


def test_readme_settings_table_lists_every_setting() -> None:
    text = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, re.MULTILINE))
    assert setting_variables() - documented == set()


def test_dockerfile_installs_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for package in ("config", "schedules", "worker"):
        assert f"COPY {package} ./{package}" in text


def test_compose_runs_one_lifecycle_worker_per_core() -> None:
    assert compose()["services"]["lifecycle"]["deploy"]["replicas"] == 2


def test_env_example_mentions_every_procfile_variable() -> None:
    used = {
        name
        for command in procfile().values()
        for name in re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", command)
    }
    # Where each process listens is the deployment's business (compose and the demo set it).
    local_only = {"WEB_BIND", "FLOWER_ADDRESS", "FLOWER_PORT", "SIMULATOR_HOST", "SIMULATOR_PORT",
                  "SIMULATOR_ARGS", "BEAT_SCHEDULE_FILE"}  # fmt: skip
    assert used - local_only - env_example_names() == set()


def test_env_example_targets_the_vendor_with_the_simulator_commented_out() -> None:
    text = (ROOT / ".env.example").read_text()
    live = dict(re.findall(r"^(ANYRTC_[A-Z_]+_URL)=(\S+)$", text, re.MULTILINE))
    fields = Settings.model_fields
    assert live == {
        "ANYRTC_RECORD_API_URL": fields["anyrtc_record_api_url"].default,
        "ANYRTC_VOD_API_URL": fields["anyrtc_vod_api_url"].default,
    }
    commented = re.findall(r"^# (ANYRTC_[A-Z_]+_URL)=http://simulator:8900", text, re.MULTILINE)
    assert sorted(commented) == ["ANYRTC_RECORD_API_URL", "ANYRTC_VOD_API_URL"]


def test_web_port_mapping_and_health_check_follow_port() -> None:
    web = compose()["services"]["web"]
    assert web["ports"] == ["${PORT:-8000}:${PORT:-8000}"]
    assert web["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "127.0.0.1:$${PORT:-8000}/healthz" in web["healthcheck"]["test"][1]


BEAT_CHECK = "healthcheck beat --schedule=$${BEAT_SCHEDULE_FILE:-/tmp/anyrtc-celerybeat-schedule}"


@pytest.mark.parametrize(
    ("service", "check"),
    [("lifecycle", "healthcheck worker"), ("discovery", "healthcheck worker"),
     ("beat", BEAT_CHECK)],
)  # fmt: skip
def test_celery_processes_have_health_checks(service: str, check: str) -> None:
    test = compose()["services"][service]["healthcheck"]["test"]
    assert " ".join(test[1:]) == f"anyrtc-recorder {check}"
    assert "BEAT_SCHEDULE_FILE:-/tmp/anyrtc-celerybeat-schedule" in procfile()["beat"]


def test_the_images_user_owns_its_home() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "useradd --system --uid 10001 --create-home --home-dir /home/anyrtc anyrtc" in text
    assert "ENV HOME=/home/anyrtc" in text and text.index("USER anyrtc") < text.index("ENV HOME")
