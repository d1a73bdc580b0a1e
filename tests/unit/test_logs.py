import io
import json
import logging

import pytest

from worker.logs import JsonFormatter, SecretFilter, configure_logging

SECRET = "tok-3f9c1b7e"


@pytest.fixture
def captured() -> logging.Logger:
    logger = logging.getLogger(f"test.logs.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def _handler(stream: io.StringIO, formatter: logging.Formatter) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(SecretFilter([SECRET]))
    return handler


def test_secret_is_scrubbed_from_message_args_and_traceback(captured: logging.Logger) -> None:
    stream = io.StringIO()
    captured.addHandler(_handler(stream, logging.Formatter("%(message)s")))
    captured.info("token is %s", SECRET)
    captured.warning(f"inline {SECRET} too")
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        captured.exception("boom")
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("***") == 3
    assert "RuntimeError: failed with ***" in text


def test_json_lines_carry_level_logger_message_and_extras(captured: logging.Logger) -> None:
    stream = io.StringIO()
    captured.addHandler(_handler(stream, JsonFormatter()))
    captured.info("started room %s", "R1", extra={"room_id": "R1", "attempt": 2})
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "INFO"
    assert entry["logger"] == captured.name
    assert entry["message"] == "started room R1"
    assert entry["room_id"] == "R1" and entry["attempt"] == 2
    assert entry["time"].endswith("+00:00")


def test_json_exception_is_scrubbed(captured: logging.Logger) -> None:
    stream = io.StringIO()
    captured.addHandler(_handler(stream, JsonFormatter()))
    try:
        raise ValueError(SECRET)
    except ValueError:
        captured.exception("bad")
    entry = json.loads(stream.getvalue())
    assert SECRET not in stream.getvalue()
    assert "ValueError: ***" in entry["exception"]


def test_configure_logging_installs_one_scrubbing_handler(capsys: pytest.CaptureFixture) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(log_format="json", level="INFO", secrets=[SECRET])
        logging.getLogger("x").info("leak %s", SECRET)
        assert len(root.handlers) == 1
        out = capsys.readouterr().out
        assert SECRET not in out and json.loads(out)["message"] == "leak ***"
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_json_extras_are_nested_json_and_scrubbed(captured: logging.Logger) -> None:
    stream = io.StringIO()
    captured.addHandler(_handler(stream, JsonFormatter()))
    data = {"id": "x1", "kwargs": {"room_id": "R2", "token": SECRET}, "args": ("a", 1)}
    captured.info("Task %(id)s received", data, extra={"data": data})
    entry = json.loads(stream.getvalue())
    assert entry["data"] == {"id": "x1", "kwargs": {"room_id": "R2", "token": "***"},
                             "args": ["a", 1]}  # fmt: skip
    assert entry["room_id"] == "R2"
    assert SECRET not in stream.getvalue()


def test_a_celery_line_about_an_action_names_its_booking_and_action(
    captured: logging.Logger,
) -> None:
    stream = io.StringIO()
    captured.addHandler(_handler(stream, JsonFormatter()))
    data = {"id": "start:b-7:3", "name": "recordings.perform", "kwargs": "{'action': '...'}"}
    captured.info("Task %(name)s[%(id)s] succeeded", data, extra={"data": data})
    entry = json.loads(stream.getvalue())
    assert (entry["action"], entry["booking_id"]) == ("start:b-7:3", "b-7")
    assert "room_id" not in entry


def test_context_fields_of_tasks() -> None:
    from worker.logs import context_fields

    assert context_fields("op:room:9:2") == {"action": "op:room:9:2", "room_id": "room:9"}
    assert context_fields("uuid-1", [], {"booking_id": "b", "room_id": "r"}) == {
        "booking_id": "b",
        "room_id": "r",
    }
    payload = {"groupId": "g1", "fileId": "f1", "downloadUrl": "http://x"}
    assert context_fields("uuid-2", [payload], {}) == {"room_id": "g1", "file_id": "f1"}
    assert context_fields(None, None, None) == {}
