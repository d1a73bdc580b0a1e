.PHONY: bootstrap test lint demo simulator

bootstrap:
	@bash scripts/bootstrap.sh

test: bootstrap
	.venv/bin/python -m pytest -q

lint: bootstrap
	.venv/bin/ruff check .

demo: bootstrap
	.venv/bin/python -m worker.demo_quick

simulator: bootstrap
	.venv/bin/python -m worker.anyrtc.simulator --port 8900
