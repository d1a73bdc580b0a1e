.PHONY: bootstrap test test-unit lint demo demo-quick simulator

bootstrap:
	@bash scripts/bootstrap.sh

test: bootstrap
	.venv/bin/python -m pytest -q

test-unit: bootstrap
	.venv/bin/python -m pytest -q tests/unit

lint: bootstrap
	.venv/bin/ruff check .

DEMO_ARGS ?= --once

demo: bootstrap
	.venv/bin/python -m worker.demo $(DEMO_ARGS)

demo-quick: bootstrap
	.venv/bin/python -m worker.demo.quick

simulator: bootstrap
	.venv/bin/python -m worker.simulator --port 8900
