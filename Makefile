.PHONY: run test lint bench
run:
	./scripts/run
test:
	./scripts/test
lint:
	./scripts/setup-venv dev && .venv/bin/ruff check src tests bench && .venv/bin/mypy && .venv/bin/lint-imports
bench:
	./scripts/setup-venv dev && .venv/bin/python bench/run.py
